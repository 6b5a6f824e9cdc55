"""Sample ASGI app of gunicorn_uvicorn_nginx: the demo and the tests deploy it."""

import hashlib
import os
import pathlib
import socket
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

# Which code is serving: tests deploy a copy of this file with another value.
RELEASE = "1"


async def index(request: Request) -> JSONResponse:
    body = {
        "message": "Hello from gunicorn + uvicorn behind nginx",
        "release": RELEASE,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    # Tests deploy a release that imports but is broken: its health path fails.
    return JSONResponse(body, status_code=500 if os.environ.get("APP_UNHEALTHY") else 200)


async def headers(request: Request) -> JSONResponse:
    """What the app receives from nginx: lets tests check the forwarded headers."""
    return JSONResponse(
        {
            "headers": dict(request.headers),
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
        }
    )


async def env_digest(request: Request) -> JSONResponse:
    """SHA-256 of one environment variable: proves the app sees a secret without showing it."""
    value = os.environ.get(request.path_params["name"])
    digest = hashlib.sha256(value.encode()).hexdigest() if value is not None else None
    return JSONResponse({"sha256": digest})


async def visits(request: Request) -> JSONResponse:
    """Counts visits in the app's state directory, the one place it may write;
    in data/ if it is deployed with gunicorn_shared_paths: [data]."""
    data = pathlib.Path("data")
    counter = (data if data.is_dir() else pathlib.Path(os.environ["STATE_DIRECTORY"])) / "visits"
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    return JSONResponse({"visits": count})


async def block(request: Request) -> JSONResponse:
    """Blocks this worker's event loop: what a hung worker looks like to gunicorn.

    POST, so that nginx never re-sends it to another worker when gunicorn kills
    this one (it would re-send a GET whose connection broke).
    """
    seconds = float(request.query_params.get("seconds", "1"))
    time.sleep(seconds)
    return JSONResponse({"slept": seconds})


async def own_headers(request: Request) -> PlainTextResponse:
    """Sends its own X-Frame-Options: nginx passes it on instead of adding its own."""
    return PlainTextResponse("own headers\n", headers={"X-Frame-Options": "SAMEORIGIN"})


async def echo(websocket: WebSocket) -> None:
    """WebSocket echo: every text message comes back, prefixed."""
    await websocket.accept()
    async for message in websocket.iter_text():
        await websocket.send_text(f"echo: {message}")


app = Starlette(
    routes=[
        Route("/", index),
        Route("/headers", headers),
        Route("/env-sha256/{name}", env_digest),
        Route("/visits", visits, methods=["POST"]),
        Route("/block", block, methods=["GET", "POST"]),
        Route("/own-headers", own_headers),
        WebSocketRoute("/ws", echo),
    ]
)
