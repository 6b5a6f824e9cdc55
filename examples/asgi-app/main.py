"""Sample ASGI app of gunicorn_uvicorn_nginx: the demo and the tests deploy it."""

import os
import socket

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def index(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "message": "Hello from gunicorn + uvicorn behind nginx",
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
    )


async def headers(request: Request) -> JSONResponse:
    """What the app receives from nginx: lets tests check the forwarded headers."""
    return JSONResponse(
        {
            "headers": dict(request.headers),
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
        }
    )


app = Starlette(routes=[Route("/", index), Route("/headers", headers)])
