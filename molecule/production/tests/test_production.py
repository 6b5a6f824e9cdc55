"""Two apps on one host, under the faults and changes production brings.

The tests run in file order: the last one removes the shop.
"""

import asyncio
import concurrent.futures
import hashlib
import http.client
import pathlib
import shutil
import ssl
import subprocess
import tempfile
import time

import pytest
import websockets

from conftest import Load, children, converge, gixy_problems, main_pid

SHOP = {"unit": "gunicorn-shop.service", "socket": "/run/gunicorn-shop.sock", "host": "shop.test", "scheme": "http"}
BLOG = {"unit": "gunicorn-blog.service", "port": 8001, "host": "blog.test", "scheme": "https"}
EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"
BLOG_TLS = "/etc/nginx/tls/gunicorn-blog"


def get(http, address, site, path="/", timeout=10, method="GET"):
    url = f"{site['scheme']}://{address}{path}"
    return http(url, headers={"Host": site["host"]}, timeout=timeout, method=method)


def test_two_apps_have_their_own_units_venvs_and_sites(host, address, http):
    for site in (SHOP, BLOG):
        assert host.service(site["unit"]).is_running
        assert host.service(site["unit"].replace(".service", ".socket")).is_running
    assert host.socket(f"unix://{SHOP['socket']}").is_listening
    assert host.socket(f"tcp://127.0.0.1:{BLOG['port']}").is_listening
    assert host.file("/srv/shop/venv/bin/gunicorn").exists and host.file("/srv/blog/venv/bin/gunicorn").exists
    assert "flask" not in host.check_output("/srv/shop/venv/bin/pip freeze").lower()
    assert "starlette" not in host.check_output("/srv/blog/venv/bin/pip freeze").lower()
    assert get(http, address, SHOP).json()["message"].startswith("Hello from gunicorn + uvicorn")
    assert get(http, address, BLOG).json()["message"].startswith("Hello from Flask")


def test_workers_auto_follows_the_cpu_count(host):
    cpus = int(host.check_output("nproc"))
    assert len(children(host, main_pid(host, SHOP["unit"]))) == min(16, max(2, cpus))


def test_gthread_worker_serves_requests_concurrently(host, address, http):
    master = main_pid(host, BLOG["unit"])
    assert len(children(host, master)) == 1
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: get(http, address, BLOG, "/slow").json(), range(4)))
    elapsed = time.monotonic() - started
    # Four one-second requests on one worker: together, not one after another.
    assert elapsed < 2.5, elapsed
    assert len({reply["pid"] for reply in replies}) == 1
    assert len({reply["thread"] for reply in replies}) == 4


def test_hung_worker_is_replaced_while_other_requests_are_answered(host, address, http):
    master = main_pid(host, SHOP["unit"])
    before = set(children(host, master))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # POST: nginx re-sends a GET whose connection broke, and would hang the next worker with it.
        hung = pool.submit(get, http, address, SHOP, "/block?seconds=60", 60, "POST")
        time.sleep(1)
        others = [get(http, address, SHOP, timeout=15).status for _ in range(20)]
        cut_off = hung.result()
    assert others == [200] * 20
    # gunicorn_timeout is 5 s: the master kills the silent worker long before 60 s.
    assert cut_off.status == 502
    after = set(children(host, master))
    assert len(after) == len(before) and after != before
    assert "WORKER TIMEOUT" in host.check_output(f"journalctl --unit {SHOP['unit']} --since -2min --no-pager")


def test_redeploy_of_code_and_environment_under_load_fails_no_request(host, address, http):
    hostname = host.backend.get_hostname()
    workdir = pathlib.Path(tempfile.mkdtemp())
    try:
        new_src = workdir / "asgi-app"
        shutil.copytree(EXAMPLES / "asgi-app", new_src)
        main = new_src / "main.py"
        main.write_text(main.read_text().replace('RELEASE = "1"', 'RELEASE = "2"'))
        load = Load(host, "http://127.0.0.1/", host_header=SHOP["host"])
        time.sleep(2)
        rc, output = converge(hostname, {"shop_src": str(new_src),
                                         "shop_env": {"APP_MODE": "production", "APP_SECRET": "second-secret"}})
        time.sleep(2)
        result = load.stop()
    finally:
        shutil.rmtree(workdir)
    assert rc == 0, output
    print(f"redeploy under load: {result}")
    assert result["requests"] > 100
    assert result["errors"] == 0, result
    assert result["statuses"] == {"200": result["requests"]}, result
    assert get(http, address, SHOP).json()["release"] == "2"
    seen = get(http, address, SHOP, "/env-sha256/APP_SECRET").json()["sha256"]
    assert seen == hashlib.sha256(b"second-secret").hexdigest()


@pytest.fixture
def blog_certificate(host, tmp_path):
    """The CA that signed the blog's self-signed certificate: the trust anchor
    of curl and sslyze, which then check the chain and the name for real."""
    path = tmp_path / "blog-ca.pem"
    path.write_text(host.file(f"{BLOG_TLS}/ca.pem").content_string)
    return path


def curl_blog(address, certificate, *args, path="/"):
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--noproxy", "*", "--cacert", str(certificate),
         "--resolve", f"blog.test:443:{address}", *args, f"https://blog.test{path}"],
        capture_output=True, text=True, timeout=30, check=False)


def test_https_answers_with_http2_and_a_certificate_for_the_site(address, blog_certificate):
    result = curl_blog(address, blog_certificate, "--http2", "--output", "/dev/null",
                       "--write-out", "%{http_version} %{http_code}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 200"


def test_http_redirects_to_https(address):
    connection = http.client.HTTPConnection(address, 80, timeout=10)
    connection.request("GET", "/some/page?x=1", headers={"Host": "blog.test"})
    reply = connection.getresponse()
    assert reply.status == 301
    assert reply.getheader("Location") == "https://blog.test/some/page?x=1"


def test_https_sends_hsts_and_the_security_headers(address, http):
    reply = get(http, address, BLOG)
    assert reply.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert reply.headers["Server"] == "nginx"


def test_tls_key_is_readable_by_root_only(host):
    key = host.file(f"{BLOG_TLS}/key.pem")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    assert host.file(BLOG_TLS).mode == 0o700


def test_sslyze_finds_https_compliant_with_mozilla_intermediate(address, blog_certificate):
    result = subprocess.run(
        ["sslyze", "--mozilla_config=intermediate", f"--certinfo_ca_file={blog_certificate}",
         f"blog.test:443{{{address}}}"],
        capture_output=True, text=True, timeout=600, check=False)
    report = result.stdout[result.stdout.upper().find("COMPLIANCE AGAINST"):]
    print(report)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "blog.test:443" in report and "OK - Compliant." in report, result.stdout[-4000:]


def test_gixy_finds_no_problem_in_two_sites_with_tls(host):
    assert gixy_problems(host) == []


def test_websocket_outlives_the_proxy_timeout_of_plain_requests(address):
    # The shop's gunicorn_timeout is 5 s, so nginx gives a plain request 15 s;
    # an upgraded connection may stay silent for nginx_websocket_timeout.
    async def exchange():
        async with websockets.connect("ws://shop.test/ws", host=address, port=80, open_timeout=10) as socket:
            await socket.send("before")
            first = await asyncio.wait_for(socket.recv(), 10)
            await asyncio.sleep(20)
            await socket.send("after")
            return first, await asyncio.wait_for(socket.recv(), 10)

    assert asyncio.run(exchange()) == ("echo: before", "echo: after")


def test_certificate_from_the_controller_is_served_and_its_key_never_printed(host, address, tmp_path):
    hostname = host.backend.get_hostname()
    certificate, key = tmp_path / "blog.crt", tmp_path / "blog.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "90",
         "-noenc", "-subj", "/CN=blog.test", "-addext", "subjectAltName=DNS:blog.test",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True)
    try:
        rc, output = converge(hostname, {"blog_tls_certificate": str(certificate),
                                         "blog_tls_certificate_key": str(key)}, diff=True)
        assert rc == 0, output
        key_lines = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
        assert not any(line in output for line in key_lines)
        served = ssl.get_server_certificate((address, 443), timeout=10)
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(certificate.read_text())
        stored = host.file(f"{BLOG_TLS}/key.pem")
        assert (stored.user, stored.group, stored.mode) == ("root", "root", 0o600)
    finally:
        rc, output = converge(hostname, {})
        assert rc == 0, output
    # Back to a self-signed certificate of the role's own.
    served = ssl.get_server_certificate((address, 443), timeout=10)
    assert ssl.PEM_cert_to_DER_cert(served) != ssl.PEM_cert_to_DER_cert(certificate.read_text())


def test_removal_takes_the_app_away_and_keeps_its_data_and_the_other_site(host, address, http):
    hostname = host.backend.get_hostname()
    assert get(http, address, SHOP, "/visits").status == 405  # POST only
    visits = http(f"http://{address}/visits", headers={"Host": SHOP["host"]}, method="POST").json()["visits"]
    rc, output = converge(hostname, {"shop_state": "absent"})
    assert rc == 0, output
    for unit in (SHOP["unit"], SHOP["unit"].replace(".service", ".socket")):
        assert not host.file(f"/etc/systemd/system/{unit}").exists
        assert host.run(f"systemctl is-active {unit}").stdout.strip() in ("inactive", "")
    for path in ("/srv/shop", "/etc/gunicorn/shop.env", "/etc/nginx/sites-enabled/shop.conf",
                 "/etc/nginx/sites-available/shop.conf", SHOP["socket"]):
        assert not host.file(path).exists, path
    assert not host.user("shop").exists
    assert not host.group("shop").exists
    # What the app wrote stays.
    assert host.file("/var/lib/gunicorn-shop/visits").content_string == str(visits)
    assert get(http, address, BLOG).status == 200
    assert host.service("nginx").is_running
    # Removing again changes nothing.
    rc, output = converge(hostname, {"shop_state": "absent"})
    assert rc == 0, output
    assert " changed=0 " in output, output


@pytest.fixture(autouse=True)
def _blog_still_answers(address, http):
    yield
    assert get(http, address, BLOG).status == 200
