"""Sample WSGI app (Flask) of gunicorn_uvicorn_nginx, served by gthread workers."""

import os
import threading
import time

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(message="Hello from Flask on gunicorn behind nginx", pid=os.getpid())


@app.get("/slow")
def slow():
    """Takes a second: concurrent requests show how many threads serve at once."""
    time.sleep(1)
    return jsonify(pid=os.getpid(), thread=threading.current_thread().name)
