"""A FastAPI app as gunicorn's uvicorn workers serve it (gunicorn_app: shop.main:app)."""

import importlib.metadata
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def index() -> dict:
    # The installed package's version: proof that the project itself was installed.
    return {"message": "Hello from a uv project", "version": importlib.metadata.version("shop"),
            "pid": os.getpid()}
