"""Runs killed anywhere: kill -9 of ansible-playbook (with its workers and
their connections) at points picked from the task list, over a release and a
rollback of an API beside the shop and the blog on Debian 12, under steady
load through nginx. After each kill: nginx serves the old or the new release;
after a reboot, the same one; the next plain run finishes without a hand on
the host (taking over the killed run's locks), serves the new release, and
the run after it changes nothing. Not one request fails."""

import asyncio
import concurrent.futures
import re
import time

import pytest
import websockets

from conftest import (Load, converge, example_source, http_get, killed_run, only_on, reboot,
                      wait_until_no_run_works_on)

API = "api.test"
# (entry point, the task at whose start the run is killed): after each step
# of the build, the start (its health gate and the records it writes once
# the new pair answers: the one module run start_pair), nginx's write and
# reload (which releases the host's nginx lock in the same module run), the
# retirement of the old pair, and of a rollback.
KILL_POINTS = [
    ("main", "Check that the app imports with its environment, as the app user"),
    ("main", "Seal and record the release (root-owned, read-only to the app; static files readable by nginx)"),
    ("main", "Start the new pair's gunicorn on a renewed socket, check that it answers its health path, and record it"),
    ("main", "Take the host's nginx lock and read nginx's files and state as they are now"),
    ("main", "Write the site, validate the new nginx configuration and reload nginx with it"),
    ("main", "Retire the unit pair that no longer serves, start the serving one at boot, and prune old releases"),
    ("main", "Request the health path through nginx until it answers"),
    ("rollback", "Start the new pair's gunicorn on a renewed socket, check that it answers its health path, and record it"),
    ("rollback", "Write the site, validate the new nginx configuration and reload nginx with it"),
    ("rollback", "Retire the unit pair that no longer serves, start the serving one at boot, and prune old releases"),
]


def served(address):
    """The release nginx serves the API from, or None if it does not answer."""
    try:
        reply = http_get(f"http://{address}/", headers={"Host": API}, timeout=5)
    except OSError:
        return None
    return reply.json()["release"] if reply.status == 200 else None


def failed(counts):
    """Requests of a Load run that were not answered 200."""
    return counts["requests"] - counts["statuses"].get("200", 0)


def api(source):
    """A deploy of the API from source."""
    return {"deploy": ["api"], "api_src": str(source)}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The sample app's source whose index names a release, one copy per release."""
    workdir, made = tmp_path_factory.mktemp("api"), {}

    def source(release):
        if release not in made:
            made[release] = example_source(workdir, "asgi-app", "main.py", release)
        return made[release]
    return source


def test_a_run_killed_anywhere_leaves_the_host_serving_and_the_next_run_heals_it(host, address, sources):
    only_on(host, "gun-debian12")
    hostname = host.backend.get_hostname()
    rc, output = converge(hostname, api(sources("k0")))
    assert rc == 0, output
    serving = "k0"
    rows, problems = [], []
    for number, (entry, task) in enumerate(KILL_POINTS, start=1):
        if entry == "main":
            old, new = serving, f"k{number}"
            run = api(sources(new))
        else:
            # Something to roll back from: a release deployed on top of the serving one.
            rc, output = converge(hostname, api(sources(f"k{number}")))
            assert rc == 0, output
            old, new = f"k{number}", serving
            run = {"deploy": ["api"], "api_entry": "rollback"}
        load = Load(host, "http://127.0.0.1/", host_header=API, pause=0.005)
        killed_run(hostname, run, task)
        wait_until_no_run_works_on(host)
        after_kill = served(address)
        during = load.stop()
        reboot(host)
        after_reboot = served(address)
        # The next plain run: the same deploy, or after a rollback the deploy
        # of the release rolled back to.
        load = Load(host, "http://127.0.0.1/", host_header=API, pause=0.005)
        started = time.monotonic()
        rc, output = converge(hostname, api(sources(new)))
        seconds = time.monotonic() - started
        after_run = served(address)
        rc_again, output_again = converge(hostname, api(sources(new)))
        after = load.stop()
        serving = new
        rows.append((number, entry, task, old, new, after_kill, after_reboot, after_run, seconds,
                     failed(during) + failed(after), during["requests"] + after["requests"]))
        if after_kill not in (old, new) or after_reboot != after_kill or after_run != new:
            problems.append(f"{number}: served {after_kill} after the kill, {after_reboot} after the reboot, "
                            f"{after_run} after the next run (old {old}, new {new})")
        if rc != 0 or rc_again != 0 or " changed=0 " not in output_again:
            problems.append(f"{number}: the next run or the one after it did not converge:\n"
                            f"{(output if rc else output_again)[-3000:]}")
        if failed(during) or failed(after) or during["errors"] or after["errors"]:
            problems.append(f"{number}: requests failed: {during} {after}")
    print("\nkill point | entry | killed at the start of | old -> new | served after the kill | after a reboot "
          "| after the next run (its seconds) | failed requests / requests")
    for number, entry, task, old, new, after_kill, after_reboot, after_run, seconds, failures, requests in rows:
        print(f"{number} | {entry} | {task} | {old} -> {new} | {after_kill} | {after_reboot} | {after_run} "
              f"({seconds:.1f} s) | {failures} / {requests}")
    assert not problems, "\n".join(problems)


def test_a_killed_runs_locks_are_taken_over_by_the_next_run_at_once(host, address, sources):
    """Without a reboot in between (which empties /run), the deploy lock and
    the host's nginx lock of a run killed while it held both are taken over by
    the next run from the same controller as soon as it starts, naming the
    killed run."""
    only_on(host, "gun-debian12")
    hostname = host.backend.get_hostname()
    # Both are held from the read of nginx's files until nginx_apply.
    killed_run(hostname, api(sources("locked")),
               "Write the site, validate the new nginx configuration and reload nginx with it")
    wait_until_no_run_works_on(host)
    held = host.run("ls /run/gunicorn-uvicorn-nginx").stdout.split()
    assert "api.deploy" in held and "nginx.lock" in held, held
    started = time.monotonic()
    rc, output = converge(hostname, api(sources("locked")))
    seconds = time.monotonic() - started
    assert rc == 0, output
    # Ansible may wrap a warning over several lines.
    said = " ".join(output.split())
    taken = re.findall(r"Took over the .*? has ended", said)
    print(f"\nthe next run took the killed run's locks over and finished in {seconds:.1f} s:", *taken, sep="\n")
    assert len(taken) == 2, output[-3000:]
    assert taken[0].startswith("Took over the deploy lock of api of a run that is over"), taken
    assert taken[1].startswith("Took over the nginx lock of this host of a run that is over"), taken
    assert all("its ansible-playbook (process" in line for line in taken), taken
    assert served(address) == "locked"
    assert sorted(host.run("ls /run/gunicorn-uvicorn-nginx").stdout.split()) == ["nginx.reloaded"]


def test_two_apps_deployed_at_once_both_take_effect(host, address, http, sources):
    """The API's new release and a server snippet of the shop, deployed at
    the same moment: the host's nginx lock lets one run write, test and reload
    nginx's files at a time, and both changes take effect."""
    only_on(host, "gun-debian12")
    hostname = host.backend.get_hostname()
    snippet = {"name": "at-once", "content": 'add_header X-At-Once "yes" always;'}
    shop = {"deploy": ["shop"], "nginx_server_snippets": [snippet]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(converge, hostname, api(sources("together"))),
                pool.submit(converge, hostname, shop)]
        for future in runs:
            rc, output = future.result()
            assert rc == 0, output
    assert served(address) == "together"
    assert http(f"http://{address}/", headers={"Host": "shop.test"}).headers["X-At-Once"] == "yes"
    rc, output = converge(hostname, {"deploy": ["shop"]})
    assert rc == 0, output
    assert "X-At-Once" not in http(f"http://{address}/", headers={"Host": "shop.test"}).headers
    # An http snippet's name is the host's (conf.d): the API's is refused for the shop, naming the API.
    rc, output = converge(hostname, {**api(sources("together")), "nginx_snippets": [
        {"name": "api-gzip", "content": "gzip_min_length 512;"}]})
    assert rc == 0, output
    rc, output = converge(hostname, {"deploy": ["shop"], "nginx_snippets": [{"name": "api-gzip", "content": "#"}]})
    assert rc != 0
    assert "/etc/nginx/conf.d/api-gzip.conf (written for the app api)." in " ".join(output.split()), output[-3000:]
    assert host.file("/etc/nginx/conf.d/api-gzip.conf").contains("gzip_min_length 512;")


def test_host_wide_nginx_settings_other_apps_disagree_with_are_refused_naming_them(host, address, sources):
    """nginx.conf serves every app of the host: an app that wants another
    worker_connections than the shop and the blog were deployed with is
    refused before anything changes, naming both; made the host's value, it
    is recorded for every app, whose next run must agree."""
    only_on(host, "gun-debian12")
    hostname = host.backend.get_hostname()
    conf = host.file("/etc/nginx/nginx.conf").content_string
    rc, output = converge(hostname, {**api(sources("wide")), "nginx_worker_connections": 2048})
    assert rc != 0
    # Ansible may wrap the message over several lines.
    said = " ".join(output.split())
    for app in ("blog", "shop"):
        assert (f"nginx_worker_connections: 2048 for api, but the app {app} on this host was deployed with 1024"
                in said), output[-3000:]
    assert "Nothing was changed" in said
    assert served(address) == "together" and host.file("/etc/nginx/nginx.conf").content_string == conf
    # Made the host's value, then the shop disagrees until it is the host's again.
    rc, output = converge(hostname, {**api(sources("together")), "nginx_worker_connections": 2048,
                                     "nginx_host_settings_override": True})
    assert rc == 0, output
    assert "worker_connections 2048;" in host.file("/etc/nginx/nginx.conf").content_string
    rc, output = converge(hostname, {"deploy": ["shop"]})
    assert rc != 0 and "nginx_worker_connections: 1024 for shop, but the app api" in " ".join(output.split()), output
    rc, output = converge(hostname, {"deploy": ["shop"], "nginx_host_settings_override": True})
    assert rc == 0, output
    assert host.file("/etc/nginx/nginx.conf").content_string == conf


def test_a_websocket_outside_nginx_websocket_locations_gets_the_timeouts_of_any_request(host, address, sources):
    """The shop's /ws is in its nginx_websocket_locations and outlives its
    15 s (test_production.py); the API's is not: with the same 5 s worker
    timeout, nginx closes a WebSocket silent for 20 s."""
    only_on(host, "gun-debian12")
    rc, output = converge(host.backend.get_hostname(), {**api(sources("together")), "gunicorn_timeout": 5})
    assert rc == 0, output

    async def exchange():
        async with websockets.connect(f"ws://{API}/ws", host=address, port=80, open_timeout=10) as socket:
            await socket.send("before")
            assert await asyncio.wait_for(socket.recv(), 10) == "echo: before"
            await asyncio.sleep(20)
            await socket.send("after")
            return await asyncio.wait_for(socket.recv(), 10)

    with pytest.raises(websockets.ConnectionClosed):
        asyncio.run(exchange())


def test_the_api_is_removed_and_leaves_the_host_as_it_was(host, address, http):
    only_on(host, "gun-debian12")
    rc, output = converge(host.backend.get_hostname(), {"deploy": ["api"], "api_state": "absent"})
    assert rc == 0, output
    assert served(address) is None
    assert host.run("ls /etc/nginx/sites-enabled").stdout.split() == ["blog.conf", "shop.conf"]
    assert host.run("nginx -t").rc == 0
