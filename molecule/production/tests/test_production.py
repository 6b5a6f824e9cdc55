"""Two apps on one host, under the faults and changes production brings.

The tests run in file order: the last one removes the shop.
"""

import concurrent.futures
import hashlib
import pathlib
import shutil
import tempfile
import time

import pytest

from conftest import Load, children, converge, main_pid

SHOP = {"unit": "gunicorn-shop.service", "socket": "/run/gunicorn-shop.sock", "host": "shop.test"}
BLOG = {"unit": "gunicorn-blog.service", "port": 8001, "host": "blog.test"}
EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def get(http, address, site, path="/", timeout=10, method="GET"):
    return http(f"http://{address}{path}", headers={"Host": site["host"]}, timeout=timeout, method=method)


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
