# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Asking a health path over HTTP, HTTPS or a unix socket, until it answers
2xx or 3xx: the new unit pair's gunicorn (start_pair), the site through nginx
(health_request). The standard library only: Ansible's url helpers cost a
module run about half a second of imports."""

import http.client
import socket
import ssl
import time

AGENT = "gunicorn_uvicorn_nginx health gate"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connector(scheme="http", address="127.0.0.1", port=80, unix_socket=None, timeout=5):
    """A function that opens a new connection each time. HTTPS checks no
    certificate (it names the site, not the address asked) and sends no SNI
    for an address: nginx's Host header then picks the site."""
    if unix_socket:
        return lambda: UnixConnection(unix_socket, timeout)
    address = address.strip("[]")
    if scheme == "https":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return lambda: http.client.HTTPSConnection(address, port, timeout=timeout, context=context)
    return lambda: http.client.HTTPConnection(address, port, timeout=timeout)


def ask(connect, path, host):
    """(status, message) of one GET of PATH (no redirect followed), or (-1, why) when nothing answered."""
    connection = connect()
    try:
        connection.request("GET", path, headers={"Host": host, "User-Agent": AGENT})
        answer = connection.getresponse()
        answer.read()
        return answer.status, f"{answer.status} {answer.reason}"
    except (OSError, http.client.HTTPException) as error:
        return -1, f"no answer: {error}"
    finally:
        connection.close()


def wait_healthy(connect, path, host, timeout, clock=time.monotonic, sleep=time.sleep, pause=0.25, stopped=None):
    """Ask until a 2xx or 3xx answer or TIMEOUT seconds; return the last
    (status, message). STOPPED, if given, is asked after each failed answer:
    a text (why the server is gone) ends the wait at once with it as the
    message, as no later answer can come (an app that does not import would
    otherwise hold the run for the whole timeout)."""
    deadline = clock() + timeout
    while True:
        status, message = ask(connect, path, host)
        if 200 <= status < 400 or clock() >= deadline:
            return status, message
        gone = stopped() if stopped else None
        if gone:
            return status, f"{gone} (last answer: {message})"
        sleep(pause)
