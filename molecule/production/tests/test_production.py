"""Two apps on one host, under the faults and changes production brings.

The tests run in file order: the last one removes the shop.
"""

import asyncio
import concurrent.futures
import hashlib
import http.client
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import time

import pytest
import websockets

from conftest import (EXAMPLES, PLAYBOOKS, assert_no_request_failed, children, converge, converge_under_load,
                      example_source, gixy_problems, installed, main_pid, only_on, process_user, run_playbook, serving)

SHOP = {"host": "shop.test", "scheme": "http"}
BLOG = {"host": "blog.test", "scheme": "https"}
WIKI = {"host": "wiki.test", "scheme": "http"}
BLOG_TLS = "/etc/nginx/tls/gunicorn-blog"


def get(http, address, site, path="/", timeout=10, method="GET", data=None):
    url = f"{site['scheme']}://{address}{path}"
    return http(url, headers={"Host": site["host"]}, timeout=timeout, method=method, data=data)


def shop(host):
    return serving(host, "shop")


def blog(host):
    return serving(host, "blog", port=8001)


def releases(host, app="shop"):
    return set(host.check_output(f"ls /srv/{app}/releases").split())


def shop_source(workdir, release, change=None):
    return example_source(workdir, "asgi-app", "main.py", release, change)


def wiki_source(workdir, release):
    return example_source(workdir, "django-app", "notes/views.py", release)


def add_note(http, address, text):
    reply = get(http, address, WIKI, "/notes", method="POST", data=text.encode())
    assert reply.status == 200, reply.body


def wiki_notes(http, address):
    reply = get(http, address, WIKI, "/notes")
    assert reply.status == 200, reply.body
    return reply.json()["notes"]


def enqueue(http, address, seconds):
    """Queue a job for the wiki's worker processes, through nginx; its id."""
    reply = get(http, address, WIKI, "/jobs", method="POST", data=json.dumps({"seconds": seconds}).encode())
    assert reply.status == 200, reply.body
    return reply.json()["id"]


def job(http, address, job_id, state="done", seconds=30):
    """The job's record once it is in STATE."""
    deadline = time.monotonic() + seconds
    while True:
        record = get(http, address, WIKI, f"/jobs/{job_id}").json()
        if record["state"] == state or time.monotonic() > deadline:
            assert record["state"] == state, record
            return record
        time.sleep(0.2)


WORKERS = ["gunicorn-wiki.worker@1.service", "gunicorn-wiki.worker@2.service"]


def main_pids(host, units):
    return [main_pid(host, unit) for unit in units]


def stops_of(host, unit, since):
    """When systemd began to stop UNIT since the time SINCE (seconds), from the journal."""
    out = host.check_output(f"journalctl --output json --no-pager --since @{int(since)} --unit {unit}")
    return [int(entry["__REALTIME_TIMESTAMP"]) / 1e6 for entry in map(json.loads, out.splitlines())
            if str(entry.get("MESSAGE", "")).startswith(f"Stopping {unit}")]


@pytest.fixture
def wiki(host):
    """The Django example is deployed on Debian 13 only (see molecule.yml)."""
    if "wiki" not in host.ansible.get_variables()["deploy"]:
        pytest.skip("the Django example is deployed on Debian 13 only")


def test_two_apps_have_their_own_units_venvs_and_sites(host, address, http):
    shop_now, blog_now = shop(host), blog(host)
    for now in (shop_now, blog_now):
        assert host.service(now["unit"]).is_running
        assert host.service(now["socket_unit"]).is_running
    assert host.socket(f"unix://{shop_now['socket']}").is_listening
    assert host.socket(f"tcp://127.0.0.1:{blog_now['port']}").is_listening
    assert not [name for name in installed(host, shop_now["venv"]) if name.startswith("flask==")]
    assert not [name for name in installed(host, blog_now["venv"]) if name.startswith("starlette==")]
    assert get(http, address, SHOP).json()["message"].startswith("Hello from gunicorn + uvicorn")
    assert get(http, address, BLOG).json()["message"].startswith("Hello from Flask")
    # The shop's hourly clean-up job (removed with the shop: the removal test).
    assert host.service("gunicorn-shop.cleanup.timer").is_running
    assert host.service("gunicorn-shop.cleanup.timer").is_enabled


def test_the_poetry_project_gets_its_locked_main_group_and_never_its_dev_group(host):
    """examples/wsgi-app is a Poetry project (prepare.yml locks it): its
    virtualenv holds what poetry.lock pins for the main group (Flask and what Flask needs, at
    their locked versions), never the dev group's pytest."""
    blog_venv = installed(host, blog(host)["venv"])
    lock = (pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "wsgi-app/poetry.lock").read_text()
    for name in ("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker"):
        version = re.search(rf'name = "{name}"\nversion = "([^"]+)"', lock).group(1)
        assert f"{name}=={version}" in blog_venv
    assert not [name for name in blog_venv if name.startswith(("pytest==", "pluggy==", "iniconfig=="))]
    assert "gunicorn==27.0.1" in blog_venv


def test_workers_auto_follows_the_cpu_count(host):
    cpus = int(host.check_output("nproc"))
    assert len(children(host, main_pid(host, shop(host)["unit"]))) == min(16, max(2, cpus))


def test_gthread_worker_serves_requests_concurrently(host, address, http):
    master = main_pid(host, blog(host)["unit"])
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
    unit = shop(host)["unit"]
    master = main_pid(host, unit)
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
    assert "WORKER TIMEOUT" in host.check_output(f"journalctl --unit {unit} --since -2min --no-pager")


def test_shared_path_is_linked_into_the_release_and_writable_only_there(host, address, http):
    now = shop(host)
    link = host.file(f"{now['release_dir']}/data")
    assert link.is_symlink and link.linked_to == "/var/lib/gunicorn-shop/data"
    data = host.file("/var/lib/gunicorn-shop/data")
    assert (data.user, data.group, data.mode) == ("shop", "shop", 0o750)
    visits = get(http, address, SHOP, "/visits", method="POST").json()["visits"]
    assert host.file("/var/lib/gunicorn-shop/data/visits").content_string == str(visits)
    # The release itself stays read-only to the app.
    assert host.run(f"runuser -u shop -- touch {now['release_dir']}/x").rc != 0


def test_redeploy_of_code_and_environment_under_load_fails_no_request(host, address, http, workdir):
    # Debian 13's shop then has a release to roll back to (test_rollback_...).
    only_on(host, "gun-debian13")
    before = shop(host)
    visits = host.file("/var/lib/gunicorn-shop/data/visits").content_string
    rc, output, result, seconds = converge_under_load(host, {
        "deploy": ["shop"], "shop_src": str(shop_source(workdir, "2")),
        "shop_env": {"APP_MODE": "production", "APP_SECRET": "second-secret"}}, SHOP["host"])
    assert rc == 0, output
    print(f"redeploy under load: {seconds:.1f} s, {result}")
    assert_no_request_failed(result)
    after = shop(host)
    assert get(http, address, SHOP).json()["release"] == "2"
    seen = get(http, address, SHOP, "/env-sha256/APP_SECRET").json()["sha256"]
    assert seen == hashlib.sha256(b"second-secret").hexdigest()
    # The new release ran beside the old one and took over its place.
    assert after["release"] != before["release"] and after["slot"] != before["slot"]
    assert host.run(f"systemctl is-active {before['unit']}").stdout.strip() == "inactive"
    assert not host.service(before["unit"]).is_enabled
    assert host.check_output("cat /srv/shop/history").split() == [before["release"], after["release"]]
    # The app's data is the same data.
    assert host.file("/var/lib/gunicorn-shop/data/visits").content_string == visits


@pytest.mark.parametrize(("fault", "hostname"), [("import", "gun-debian12"), ("health", "gun-debian13")])
def test_refused_release_fails_the_run_and_no_request(host, address, http, workdir, fault, hostname):
    only_on(host, hostname)
    before = shop(host)
    serving_release = get(http, address, SHOP).json()["release"]
    if fault == "import":
        source = shop_source(workdir, "broken", lambda text: text + "\ndef broken(:\n")
        extra = {"deploy": ["shop"], "shop_src": str(source)}
        reason = "SyntaxError"
    else:
        extra = {"deploy": ["shop"], "shop_env": {"APP_MODE": "production", "APP_SECRET": "second-secret", "APP_UNHEALTHY": "1"},
                 "shop_src": str(shop_source(workdir, "2"))}
        reason = "answered 500"
    rc, output, result, seconds = converge_under_load(host, extra, SHOP["host"])
    print(f"release refused ({fault}) under load: {seconds:.1f} s, {result}")
    assert rc != 0
    assert reason in output, output[-3000:]
    assert "was refused" in output
    assert_no_request_failed(result)
    # The old release serves on, and the refused one left nothing behind.
    assert shop(host) == before
    assert get(http, address, SHOP).json()["release"] == serving_release
    assert releases(host) == set(host.check_output("cat /srv/shop/history").split())
    assert host.check_output("ls /etc/gunicorn/shop").split() == sorted(
        ["build.env"] + [f"{r}.env" for r in releases(host)])
    assert host.run(f"systemctl is-active {before['idle_unit']}").stdout.strip() != "active"


def test_rollback_under_load_serves_the_previous_release(host, address, http):
    only_on(host, "gun-debian13")
    before = shop(host)
    previous = host.check_output("cat /srv/shop/history").split()[-2]
    rc, output, result, seconds = converge_under_load(host, {"deploy": ["shop"], "shop_entry": "rollback"},
                                                      SHOP["host"])
    assert rc == 0, output
    print(f"rollback under load: {seconds:.1f} s (whole ansible-playbook run), {result}")
    assert_no_request_failed(result)
    assert shop(host)["release"] == previous
    assert get(http, address, SHOP).json()["release"] == "1"
    seen = get(http, address, SHOP, "/env-sha256/APP_SECRET").json()["sha256"]
    assert seen == hashlib.sha256(b"first-secret").hexdigest()
    # The release rolled back from is history: the next rollback goes further back.
    assert host.check_output("cat /srv/shop/history").split() == [previous]
    # A rollback prunes nothing: the release it left stays until the next deploy.
    assert before["release"] in releases(host)


def test_two_runs_at_once_deploy_one_after_the_other_and_old_releases_are_pruned(host, address, http, workdir):
    """Two code-only releases started together: the second run waits for the
    deploy lock, then deploys on top of the first. Both reuse the virtualenv."""
    only_on(host, "gun-debian12")
    hostname = host.backend.get_hostname()
    venv = shop(host)["venv"]
    sources = {release: str(shop_source(workdir, release)) for release in ("3", "4")}
    # The app owns what is in its data directory and may swap a shared path
    # for a link to anywhere: the deploys must not chown or chmod through it.
    host.check_output("install -d -o root -g root -m 0755 /srv/victim && cd /var/lib/gunicorn-shop && "
                      "runuser -u shop -- sh -c 'mv data data.real && ln -s /srv/victim data'")
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            first = pool.submit(converge, hostname, {"deploy": ["shop"], "shop_src": sources["3"]})
            for _ in range(120):
                if host.file("/run/gunicorn-uvicorn-nginx/shop.deploy/holder").exists or first.done():
                    break
                time.sleep(0.5)
            second = pool.submit(converge, hostname, {"deploy": ["shop"], "shop_src": sources["4"]})
            rc, output = first.result()
            first_done = time.monotonic() - started
            assert rc == 0, output
            rc, output = second.result()
            second_done = time.monotonic() - started
            assert rc == 0, output
        victim = host.file("/srv/victim")
        assert (victim.user, victim.group, victim.mode) == ("root", "root", 0o755)
    finally:
        host.check_output("cd /var/lib/gunicorn-shop && rm data && mv data.real data && rmdir /srv/victim")
    print(f"code-only release 3: {first_done:.1f} s (whole ansible-playbook run); release 4, started while "
          f"3 held the lock: done {second_done - first_done:.1f} s after it")
    assert get(http, address, SHOP).json()["release"] == "4"
    assert shop(host)["venv"] == venv
    history = host.check_output("cat /srv/shop/history").split()
    assert 'RELEASE = "3"' in host.file(f"/srv/shop/releases/{history[-2]}/main.py").content_string
    assert history[-1] == shop(host)["release"]
    # gunicorn_keep_releases is 2 here.
    assert releases(host) == set(history[-2:])
    assert host.check_output("ls /srv/shop/venvs").split() == [venv.rsplit("/", 1)[1]]
    # No test after this one on Debian 12 looks at the shop's release.


def test_a_release_is_not_switched_while_nginx_is_skipped(host, address, http, workdir):
    only_on(host, "gun-debian13")
    before = shop(host)
    rc, output = converge(host.backend.get_hostname(), {"deploy": ["shop"], "shop_src": str(shop_source(workdir, "5"))},
                          options=["--skip-tags", "nginx"])
    assert rc != 0
    assert "but the nginx tag is skipped" in output, output[-3000:]
    assert shop(host) == before
    assert get(http, address, SHOP).json()["release"] == "1"
    assert host.run(f"systemctl is-active {before['idle_unit']}").stdout.strip() != "active"


def test_a_second_run_waits_for_the_deploy_lock_then_fails_naming_it(host):
    only_on(host, "gun-debian12")
    host.check_output("mkdir /run/gunicorn-uvicorn-nginx/shop.deploy && echo someone > /run/gunicorn-uvicorn-nginx/shop.deploy/holder")
    try:
        rc, output = converge(host.backend.get_hostname(), {"deploy": ["shop"], "gunicorn_lock_timeout": 2})
    finally:
        host.check_output("rm -r /run/gunicorn-uvicorn-nginx/shop.deploy")
    assert rc != 0
    assert "Another run holds the deploy lock of shop (someone)" in output
    # Only root can make a lock there: no local user can hold an app's deploys.
    assert host.run("runuser -u nobody -- mkdir /run/gunicorn-uvicorn-nginx/shop.deploy").rc != 0
    assert host.file("/run/gunicorn-uvicorn-nginx").mode == 0o700


def test_django_release_commands_migrated_and_nginx_serves_the_collected_static_file(host, address, http, wiki):
    now = serving(host, "wiki")
    database = host.file("/var/lib/gunicorn-wiki/data/db.sqlite3")
    assert (database.user, database.group) == ("wiki", "wiki")
    # The health path counts rows: the migration made the table.
    assert get(http, address, WIKI).json() == {"message": "Hello from Django", "release": "1", "notes": 0}
    collected = host.file(f"{now['release_dir']}/staticfiles/notes/site.css")
    assert collected.user == "root"
    # Django (DEBUG off) answers 404 under /static/: a 200 with the file came from nginx.
    reply = get(http, address, WIKI, "/static/notes/site.css")
    assert reply.status == 200
    assert reply.body == (EXAMPLES / "django-app/notes/static/notes/site.css").read_text()
    assert reply.headers["Cache-Control"] == "public, max-age=3600"


def test_django_worker_processes_run_jobs_from_the_serving_release_as_the_app(host, address, http, wiki):
    now = serving(host, "wiki")
    for unit in WORKERS:
        service = host.service(unit)
        assert service.is_running and service.is_enabled
        pid = main_pid(host, unit)
        # bash runs the Procfile's command in its own place: TERM reaches the worker.
        assert host.file(f"/proc/{pid}/cmdline").content.split(b"\0")[:3] == [b"python", b"manage.py", b"work"]
        assert process_user(host, pid) == "wiki"
        assert host.check_output(f"systemctl show {unit} -p WorkingDirectory --value") == now["release_dir"]
    properties = host.check_output(f"systemctl show {WORKERS[0]} -p NoNewPrivileges -p ProtectSystem "
                                   "-p TimeoutStopUSec -p KillMode -p Restart")
    assert set(properties.splitlines()) == {"NoNewPrivileges=yes", "ProtectSystem=strict", "TimeoutStopUSec=1min",
                                            "KillMode=mixed", "Restart=always"}
    done = [job(http, address, enqueue(http, address, 0.5)) for _ in range(4)]
    assert {record["release"] for record in done} == {"1"}
    assert host.check_output("journalctl --no-pager -t gunicorn-wiki.worker --grep 'done by release 1' | wc -l") != "0"


def test_django_nightly_job_is_scheduled_and_runs_its_command_as_typed(host, wiki):
    timer = host.service("gunicorn-wiki.nightly.timer")
    assert timer.is_running and timer.is_enabled
    assert "OnCalendar=*-*-* 03:00:00" in host.check_output("systemctl cat gunicorn-wiki.nightly.timer")
    assert host.check_output("systemctl show gunicorn-wiki.nightly.timer -p NextElapseUSecRealtime --value")
    reports = "/var/lib/gunicorn-wiki/data/reports"
    before = set(host.check_output(f"ls {reports} 2>/dev/null || true").split())
    # A oneshot: start returns once the job has run.
    host.check_output("systemctl start gunicorn-wiki.nightly.service")
    made = set(host.check_output(f"ls {reports}").split()) - before
    assert len(made) == 1
    report = json.loads(host.file(f"{reports}/{made.pop()}").content_string)
    # The quotes, the % and the $ reached bash as typed; bash expanded the variable.
    assert (report["label"], report["data_dir"], report["release"]) == (
        "nightly 100%", "/var/lib/gunicorn-wiki", "1")
    assert host.check_output("systemctl show gunicorn-wiki.nightly.service -p Result -p User") in (
        "Result=success\nUser=wiki", "User=wiki\nResult=success")
    assert '"label": "nightly 100%"' in host.check_output(
        "journalctl --no-pager -t gunicorn-wiki.nightly --output cat | tail -n 1")


def test_django_data_outlives_a_release_under_load_and_a_rollback(host, address, http, wiki, workdir):
    add_note(http, address, "written by release 1")
    written = wiki_notes(http, address)
    # A task of 40 s held by a worker when the deploy begins: the new release
    # restarts the workers, and the one holding it must finish it first.
    old_workers = main_pids(host, WORKERS)
    long_job = enqueue(http, address, 40)
    job(http, address, long_job, "running")
    began = time.time()
    rc, output, result, seconds = converge_under_load(
        host, {"deploy": ["wiki"], "wiki_src": str(wiki_source(workdir, "2"))}, WIKI["host"])
    assert rc == 0, output
    print(f"Django release under load (a worker finishing a 40 s task): {seconds:.1f} s, {result}")
    assert_no_request_failed(result)
    assert get(http, address, WIKI).json()["release"] == "2"
    assert wiki_notes(http, address) == written
    finished = job(http, address, long_job)
    assert finished["release"] == "1" and finished["finished"] - finished["started"] >= 40, finished
    held_by = f"gunicorn-wiki.worker@{finished['copy']}.service"
    assert [stop for stop in stops_of(host, held_by, began) if finished["started"] < stop < finished["finished"]], \
        "the worker was not told to stop while it held the task"
    new_workers = main_pids(host, WORKERS)
    assert not set(new_workers) & set(old_workers)
    assert job(http, address, enqueue(http, address, 0))["release"] == "2"
    # What the new release writes is data too: a rollback keeps it. (The
    # shop's rollback is the one under load: the role's steps are the same.)
    add_note(http, address, "written by release 2")
    rc, output = converge(host.backend.get_hostname(), {"deploy": ["wiki"], "wiki_entry": "rollback"})
    assert rc == 0, output
    assert get(http, address, WIKI).json()["release"] == "1"
    assert wiki_notes(http, address) == written + ["written by release 2"]
    # The workers came back with it.
    assert job(http, address, enqueue(http, address, 0))["release"] == "1"
    assert not set(main_pids(host, WORKERS)) & set(new_workers)


def test_django_failing_release_command_keeps_the_old_release_and_its_data(host, address, http, wiki, workdir):
    before = serving(host, "wiki")
    # (With the release the rollback above left: a rollback prunes nothing.)
    kept = releases(host, "wiki")
    workers = main_pids(host, WORKERS)
    written = wiki_notes(http, address)
    # A deploy gate people add: Django's deployment checks, failing on warnings
    # (this example does not set the HTTPS-only settings, so they fail).
    commands = host.ansible.get_variables()["wiki_release_commands"] + [
        "python manage.py check --deploy --fail-level WARNING"]
    # (Requests during a refused release: the shop's tests under load.)
    rc, output = converge(host.backend.get_hostname(),
                          {"deploy": ["wiki"], "wiki_src": str(wiki_source(workdir, "3")), "wiki_release_commands": commands})
    assert rc != 0
    assert "release command failed with exit status 1: python manage.py check --deploy" in output, output[-3000:]
    assert "security.W008" in output  # Django's own words
    assert "was refused" in output
    assert serving(host, "wiki") == before
    assert get(http, address, WIKI).json()["release"] == "1"
    assert wiki_notes(http, address) == written
    # The refused release left nothing behind.
    assert releases(host, "wiki") == kept
    # A refused release never touches the processes.
    assert main_pids(host, WORKERS) == workers


def test_django_fewer_workers_and_a_job_no_longer_listed_are_stopped_and_removed(host, address, http, wiki):
    hostname = host.backend.get_hostname()
    kept = main_pid(host, WORKERS[0])
    rc, output = converge(hostname, {"deploy": ["wiki"], "wiki_schedules": [],
                                     "wiki_processes": [{"name": "worker", "count": 1, "stop_timeout": 60}]})
    assert rc == 0, output
    assert not host.service(WORKERS[1]).is_running and not host.service(WORKERS[1]).is_enabled
    # Same release, same file: the remaining copy was not restarted.
    assert main_pid(host, WORKERS[0]) == kept
    for unit in ("gunicorn-wiki.nightly.timer", "gunicorn-wiki.nightly.service"):
        assert not host.file(f"/etc/systemd/system/{unit}").exists
        assert host.run(f"systemctl is-active {unit}").stdout.strip() in ("inactive", "")
    assert job(http, address, enqueue(http, address, 0))["copy"] == "1"
    # The status playbook lists what runs now.
    run = run_playbook(hostname, {"gunicorn_app_group": "all", "ansible_become": False, "gunicorn_app_name": "wiki",
                                  "nginx_server_name": "wiki.test"}, playbook=PLAYBOOKS / "status.yml")
    said = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout)
    assert run.returncode == 0, said[-3000:]
    assert "gunicorn-wiki.worker@1.service active/running" in said, said[-3000:]
    assert "worker@2" not in said and "nightly" not in said, said[-3000:]


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


def served_certificate(address, name=None):
    """The certificate nginx's port 443 shows a client that names `name`
    (SNI; None: a client that names none), unverified, as DER."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, 443), timeout=10) as connection:
        with context.wrap_socket(connection, server_hostname=name) as tls:
            return tls.getpeercert(binary_form=True)


def request_over_tls(address, name, host):
    """A GET of / over TLS naming `name` (SNI; None: no name) with the Host
    header `host`: the status, or None when nginx closed the connection
    without an answer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPConnection(address, 443, timeout=10)
    try:
        connection.sock = context.wrap_socket(socket.create_connection((address, 443), timeout=10),
                                              server_hostname=name)
        connection.request("GET", "/", headers={"Host": host})
        return connection.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionError):
        return None
    finally:
        connection.close()


def test_https_answers_only_for_the_sites_names(host, address):
    """An unknown host name over HTTPS, in the handshake or in the Host
    header, never reaches the app (password-reset link poisoning): the
    default server of the port closes the connection without an answer. A
    client that names no server still reaches the site its Host names."""
    assert request_over_tls(address, "blog.test", "blog.test") == 200
    assert request_over_tls(address, "blog.test", "evil.example") is None
    assert request_over_tls(address, "evil.example", "evil.example") is None
    assert request_over_tls(address, None, "evil.example") is None
    assert request_over_tls(address, None, "blog.test") == 200
    # Who names the site gets its certificate; anyone else a throwaway one.
    site = ssl.PEM_cert_to_DER_cert(host.file(f"{BLOG_TLS}/certificate.pem").content_string)
    assert served_certificate(address, "blog.test") == site
    assert served_certificate(address, "evil.example") != site
    assert served_certificate(address) != site


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


def test_websocket_outlives_the_proxy_timeout_of_plain_requests(host, address):
    only_on(host, "gun-debian12")
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
    only_on(host, "gun-debian13")
    hostname = host.backend.get_hostname()
    certificate, key = tmp_path / "blog.crt", tmp_path / "blog.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "90",
         "-noenc", "-subj", "/CN=blog.test", "-addext", "subjectAltName=DNS:blog.test",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True)
    try:
        rc, output = converge(hostname, {"deploy": ["blog"], "blog_tls_certificate": str(certificate),
                                         "blog_tls_certificate_key": str(key)}, diff=True)
        assert rc == 0, output
        key_lines = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
        assert not any(line in output for line in key_lines)
        served = served_certificate(address, "blog.test")
        assert served == ssl.PEM_cert_to_DER_cert(certificate.read_text())
        stored = host.file(f"{BLOG_TLS}/key.pem")
        assert (stored.user, stored.group, stored.mode) == ("root", "root", 0o600)
    finally:
        rc, output = converge(hostname, {"deploy": ["blog"]})
        assert rc == 0, output
    # Back to a self-signed certificate of the role's own.
    assert served_certificate(address, "blog.test") != ssl.PEM_cert_to_DER_cert(certificate.read_text())


def test_removal_takes_the_app_away_and_keeps_its_data_and_the_other_site(host, address, http):
    hostname = host.backend.get_hostname()
    assert get(http, address, SHOP, "/visits").status == 405  # POST only
    visits = get(http, address, SHOP, "/visits", method="POST").json()["visits"]
    rc, output = converge(hostname, {"deploy": ["shop"], "shop_state": "absent"})
    assert rc == 0, output
    for slot in ("blue", "green"):
        for unit in (f"gunicorn-shop-{slot}.service", f"gunicorn-shop-{slot}.socket"):
            assert not host.file(f"/etc/systemd/system/{unit}").exists
            assert host.run(f"systemctl is-active {unit}").stdout.strip() in ("inactive", "")
    for unit in ("gunicorn-shop.cleanup.timer", "gunicorn-shop.cleanup.service"):
        assert not host.file(f"/etc/systemd/system/{unit}").exists
        assert host.run(f"systemctl is-active {unit}").stdout.strip() in ("inactive", "")
    assert not host.file("/etc/systemd/system/timers.target.wants/gunicorn-shop.cleanup.timer").exists
    for path in ("/srv/shop", "/etc/gunicorn/shop", "/etc/nginx/sites-enabled/shop.conf",
                 "/etc/nginx/sites-available/shop.conf", "/run/gunicorn-shop-blue.sock", "/run/gunicorn-shop-green.sock"):
        assert not host.file(path).exists, path
    assert not host.user("shop").exists
    assert not host.group("shop").exists
    # What the app wrote stays.
    assert host.file("/var/lib/gunicorn-shop/data/visits").content_string == str(visits)
    assert get(http, address, BLOG).status == 200
    assert host.service("nginx").is_running
    # Removing again changes nothing (on one host: the tasks are the same).
    if hostname == "gun-debian13":
        rc, output = converge(hostname, {"deploy": ["shop"], "shop_state": "absent"})
        assert rc == 0, output
        assert " changed=0 " in output, output


def test_a_first_deploy_nginx_rejects_leaves_nginx_whole(host, address, http):
    """After the removal: the shop deployed anew with a server snippet nginx
    rejects. The run fails with nginx's error, and nothing of the shop stays
    in nginx's configuration (no dangling sites-enabled link): nginx -t
    passes, nginx restarts, the blog serves on."""
    only_on(host, "gun-debian12")
    rc, output = converge("gun-debian12", {"deploy": ["shop"], "nginx_server_snippets": [
        {"name": "typo", "content": "no_such_directive on;"}]})
    assert rc != 0
    assert 'unknown directive "no_such_directive"' in output, output[-3000:]
    listing = host.check_output("ls -A /etc/nginx/sites-enabled /etc/nginx/sites-available")
    assert "shop" not in listing, listing
    assert host.run("ls -A /etc/nginx/snippets/gunicorn-shop 2>/dev/null").stdout == ""
    assert host.run("nginx -t").rc == 0
    assert host.run("systemctl restart nginx").rc == 0
    assert get(http, address, BLOG).status == 200


@pytest.fixture(autouse=True)
def _blog_still_answers(address, http):
    yield
    assert get(http, address, BLOG).status == 200
