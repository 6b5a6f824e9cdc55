"""plugins/module_utils/health.py (start_pair's gate, health_request's check):
requests against a real HTTP server on a unix socket and on TCP (systemd's
part of start_pair needs a host), and health_request's URLs."""

import http.server
import os
import socketserver
import threading

import pytest

from plugin_loader import load, run_module

gate = load("plugins/module_utils/health.py")
request = load("plugins/modules/health_request.py")


class Answers(http.server.BaseHTTPRequestHandler):
    """Answers the statuses of the server's list in turn (the last one from then on)."""

    def do_GET(self):
        server = self.server
        server.seen.append((self.path, self.headers["Host"]))
        status = server.statuses.pop(0) if len(server.statuses) > 1 else server.statuses[0]
        self.send_response(status)
        if status in (301, 302):
            self.send_header("Location", "https://example.test/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class UnixServer(socketserver.UnixStreamServer):
    def get_request(self):
        request, _ = super().get_request()
        return request, ("local", 0)


@pytest.fixture
def server(tmp_path):
    started = []

    def start(statuses, unix=True):
        if unix:
            path = str(tmp_path / "app.sock")
            srv = UnixServer(path, Answers)
            connect = lambda: gate.UnixConnection(path, 5)  # noqa: E731
        else:
            srv = http.server.HTTPServer(("127.0.0.1", 0), Answers)
            port = srv.server_address[1]
            connect = lambda: gate.http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # noqa: E731
        srv.statuses, srv.seen = list(statuses), []
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return srv, connect

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


def test_the_gate_asks_until_the_app_answers_with_the_sites_host_header(server):
    srv, connect = server([503, 503, 200])
    slept = []
    status, message = gate.wait_healthy(connect, "/health", "shop.example.test", 30, sleep=slept.append)
    assert (status, message) == (200, "200 OK")
    assert srv.seen == [("/health", "shop.example.test")] * 3 and len(slept) == 2


def test_a_redirect_passes_the_gate_and_is_not_followed(server):
    srv, connect = server([301], unix=False)
    assert gate.wait_healthy(connect, "/", "_", 5)[0] == 301
    assert srv.seen == [("/", "_")]


def test_an_app_that_keeps_failing_is_given_up_on_after_the_timeout_with_its_last_answer(server):
    srv, connect = server([500])
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    status, message = gate.wait_healthy(connect, "/health", "_", 2, clock=lambda: now[0], sleep=sleep)
    assert (status, message) == (500, "500 Internal Server Error")
    assert len(srv.seen) == 9  # at 0, 0.25, ..., 2.0 s


def test_nothing_listening_is_no_answer_and_named_so(tmp_path):
    missing = str(tmp_path / "none.sock")
    status, message = gate.ask(lambda: gate.UnixConnection(missing, 1), "/health", "_")
    assert status == -1 and message.startswith("no answer:") and "No such file" in message
    assert not os.path.exists(missing)


def test_the_connector_speaks_tcp_to_an_address_in_brackets_or_not(server):
    srv, _ = server([204], unix=False)
    port = srv.server_address[1]
    for address in ("127.0.0.1", "[127.0.0.1]"):
        assert gate.ask(gate.connector("http", address, port), "/up", "site.test") == (204, "204 No Content")
    assert srv.seen == [("/up", "site.test")] * 2


def test_nothing_listening_is_no_answer_not_an_error(tmp_path):
    status, message = gate.ask(gate.connector(unix_socket=str(tmp_path / "none.sock")), "/", "_")
    assert status == -1 and message.startswith("no answer:")


def test_health_request_takes_http_and_https_urls_with_an_address_only():
    assert request.target("https://127.0.0.1:8443/health?deep=1") == ("https", "127.0.0.1", 8443, "/health?deep=1")
    assert request.target("http://127.0.0.1") == ("http", "127.0.0.1", 80, "/")
    assert request.target("https://[::1]/up") == ("https", "::1", 443, "/up")
    for url in ("ftp://127.0.0.1/", "127.0.0.1/health", "http:///health"):
        with pytest.raises(ValueError):
            request.target(url)


def test_a_server_that_stopped_ends_the_wait_at_once_saying_why(server):
    srv, connect = server([500])
    asked = []

    def stopped():
        asked.append(1)
        return "app.service is no longer running (failed)" if len(asked) == 2 else None

    status, message = gate.wait_healthy(connect, "/health", "site.test", 60, pause=0.01, stopped=stopped)
    assert status == 500
    assert message == "app.service is no longer running (failed) (last answer: 500 Internal Server Error)"
    assert len(srv.seen) == 2


@pytest.mark.parametrize("statuses", [[200], [500]])
def test_health_request_ends_the_runs_locks_whatever_it_was_answered(server, tmp_path, statuses):
    srv, _ = server(statuses, unix=False)
    locks = [tmp_path / "app.deploy", tmp_path / "nginx.lock"]
    for lock in locks:
        lock.mkdir()
        (lock / "holder").write_text("{}\n")
    result, status = run_module("plugins/modules/health_request.py", {
        "url": f"http://127.0.0.1:{srv.server_address[1]}/health", "host": "site.test", "timeout": 0,
        "unlock": [str(lock) for lock in locks]}, str(tmp_path))
    assert status == 0 and result["status"] == statuses[0]
    assert result["unlocked"] == [str(lock) for lock in locks]
    assert not any(lock.exists() for lock in locks)
