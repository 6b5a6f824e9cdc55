"""One load balancer (HTTPS, self-signed, at the end from an ACME server) over
three app hosts: the fleet of playbooks/site.yml, from the collection as
ansible-galaxy installs it.

The tests run in file order: each deploy builds on the one before.
"""

import json
import os
import re
import subprocess
import time

import testinfra

from conftest import (Load, assert_no_request_failed, ensure_test_tools, assert_timer_renews_without_restart, converge, example_source,
                      http_get, pebble_root, run_playbook, served_certificate, serving)

# The tests drive the fleet from the load balancer; app hosts via app_host().
testinfra_hosts = ["ansible://gun-lb"]

SITE = "shop.test"
LB = "172.30.57.10"
APPS = {"gun-app1": "172.30.57.11", "gun-app2": "172.30.57.12", "gun-app3": "172.30.57.13"}
# The same hosts' IPv6 addresses (molecule.yml): Docker's DNS answers the
# names with both, IPv6 first.
LB6 = "fd57:57::10"
APPS6 = {"gun-app1": "fd57:57::11", "gun-app2": "fd57:57::12", "gun-app3": "fd57:57::13"}
# The controller on the fleet's network: the client every host sees.
CLIENT = "172.30.57.1"


def fleet_load(lb):
    """A steady stream (about 400 requests/s) through the load balancer: it
    leaves the two CPUs to the four hosts, so deploys take their own time."""
    return Load(lb, "https://127.0.0.1/", host_header=SITE, connections=4, pause=0.01)


def app_host(name):
    return ensure_test_tools(testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]))


def through_lb(path="/", headers=None):
    return http_get(f"https://{LB}{path}", headers={"Host": SITE, **(headers or {})})


def releases_served(requests=30):
    """App host -> release, from answers through the load balancer (round robin)."""
    served = {}
    for _ in range(requests):
        reply = through_lb()
        assert reply.status == 200, reply.body
        served[reply.json()["host"]] = reply.json()["release"]
    return served


def converge_fleet_under_load(lb, extra_vars, limit="all"):
    """The site playbook, as a user runs it (on the hosts of `limit`), while
    load runs through the load balancer; returns (rc, output, load counts)."""
    load = fleet_load(lb)
    try:
        time.sleep(2)
        started = time.monotonic()
        rc, output = converge(limit, extra_vars)
        print(f"site playbook under load: {time.monotonic() - started:.1f} s")
        time.sleep(2)
    finally:
        counts = load.stop()
    print(counts)
    return rc, output, counts


def test_the_playbooks_come_from_the_collection_ansible_galaxy_installed():
    """The environment converge() runs ansible-playbook in (as Molecule's own
    converge) finds the collection only where the dependency step put it."""
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    listing = subprocess.run(["ansible-galaxy", "collection", "list", "pyweb.gunicorn_uvicorn_nginx", "--format", "json"],
                             capture_output=True, text=True, check=True)
    assert list(json.loads(listing.stdout)) == [f"{ephemeral}/collections/ansible_collections"], listing.stdout


def test_ansible_reaches_the_hosts_over_ssh_as_an_unprivileged_user_with_sudo(host):
    for target in [host] + [app_host(name) for name in APPS]:
        assert target.check_output("whoami") == "root"
        # sudo from the user of the inventory, over the SSH connection.
        assert target.check_output("echo $SUDO_USER") == "debian"
    inventory = host.ansible.get_variables()
    assert inventory["ansible_connection"] == "ssh" and "ansible_host" not in inventory
    assert "nginx_lb_address" not in inventory


def test_requests_through_the_load_balancer_reach_every_app_host():
    assert releases_served() == {name: "1" for name in APPS}


def site_file(target):
    return target.file("/etc/nginx/sites-available/app.conf").content_string


def test_hosts_known_by_name_are_resolved_on_the_hosts(host):
    """No addresses in the inventory: the load balancer's upstream has each
    app host's most preferred address (IPv6 here), and the app hosts believe
    forwarded headers from every address of the load balancer's name."""
    site = site_file(host)
    for address in APPS6.values():
        assert f"server [{address}]:80 " in site, site
    assert "server gun-app" not in site
    app_site = site_file(app_host("gun-app1"))
    for address in (LB, LB6):
        assert f"set_real_ip_from {address};" in app_site, app_site


def test_load_balancer_answers_over_ipv6():
    reply = http_get(f"https://[{LB6}]/", headers={"Host": SITE})
    assert reply.status == 200, reply.body
    assert reply.json()["release"] == "1"


def test_addresses_given_in_the_inventory_are_used_as_they_are(host, workdir):
    """nginx_lb_address on every host (IPv4 here): the upstream and the
    trusted proxies carry exactly those, and requests still reach every app
    host with the client's address."""
    addresses = workdir / "addresses.yml"
    addresses.write_text(json.dumps({"all": {"hosts": {
        "gun-lb": {"nginx_lb_address": LB}, **{name: {"nginx_lb_address": address} for name, address in APPS.items()}}}}))
    # The load balancer and one app host suffice (the others would do the same).
    rc, output = converge("gun-lb,gun-app1", {}, options=["--inventory", str(addresses)])
    assert rc == 0, output[-3000:]
    site = site_file(host)
    for address in APPS.values():
        assert f"server {address}:80 " in site, site
    assert "fd57:57::" not in site
    app_site = site_file(app_host("gun-app1"))
    assert f"set_real_ip_from {LB};" in app_site and LB6 not in app_site, app_site
    assert releases_served() == {name: "1" for name in APPS}
    seen = through_lb("/headers", {"X-Forwarded-For": "203.0.113.7"}).json()
    assert seen["client"] == CLIENT, seen


def test_only_nginx_listens_on_a_network_address(host):
    for target in [host] + [app_host(name) for name in APPS]:
        listeners = target.check_output("ss -Hltnp").splitlines()
        # sshd is how Ansible reaches the host.
        exposed = [line for line in listeners if not line.split()[3].startswith(("127.", "[::1]", "[::ffff:127."))
                   and '"sshd"' not in line]
        assert exposed, listeners
        assert all('"nginx"' in line for line in exposed), exposed
        # On IPv6 as well as IPv4.
        assert [line for line in exposed if line.split()[3].startswith("[::]:")], exposed
        # gunicorn has no TCP socket at all: the app hosts use the unix socket.
        assert not [line for line in listeners if "gunicorn" in line], listeners


def test_app_hosts_believe_forwarded_headers_from_the_load_balancer_only():
    forged = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    # Through the load balancer: the client's own address and scheme (TLS ends there).
    seen = through_lb("/headers", {**forged, "X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"}).json()
    assert (seen["client"], seen["scheme"]) == (CLIENT, "https"), seen
    # Neither tier passes on a host name the client made up.
    assert "evil.example" not in json.dumps(seen["headers"]), seen
    # Straight to an app host: its forged headers are replaced.
    direct = http_get(f"http://{APPS['gun-app2']}/headers", headers={"Host": SITE, **forged}).json()
    assert (direct["client"], direct["scheme"]) == (CLIENT, "http"), direct
    assert direct["headers"]["x-forwarded-for"] == CLIENT


def test_load_balancer_site_is_https_and_carries_no_app(host):
    redirect = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' -H 'Host: {SITE}' http://127.0.0.1/")
    assert redirect == f"301 https://{SITE}/"
    assert not host.file("/srv/app").exists
    assert not host.package("python3-venv").is_installed


def once_runs():
    """App host -> how many times the fleet's release command that runs once
    per deploy ran there (molecule.yml: a line per run)."""
    return {name: len(app_host(name).run("cat /var/lib/gunicorn-app/once.log").stdout.split()) for name in APPS}


def test_the_first_deploy_ran_the_release_commands_once_on_one_host():
    # Three new hosts deployed at once: one of them ran it, the first.
    assert once_runs() == {"gun-app1": 1, "gun-app2": 0, "gun-app3": 0}


def test_rolling_deploy_under_load_fails_no_request_and_ends_on_the_new_release(host, workdir):
    rc, output, counts = converge_fleet_under_load(
        host, {"gunicorn_app_src": str(example_source(workdir, "asgi-app", "main.py", "2"))})
    assert rc == 0, output[-3000:]
    assert_no_request_failed(counts)
    assert set(counts["hosts"]) == set(APPS), counts
    assert releases_served() == {name: "2" for name in APPS}
    # One host per batch, and the role that ran is the installed collection's.
    assert output.count("PLAY [Roll the release over the serving app hosts") == len(APPS), output[-3000:]
    assert "pyweb.gunicorn_uvicorn_nginx.gunicorn_uvicorn_nginx : " in output
    # Once per deploy: on the canary, before it switched; the later batches skipped it.
    assert once_runs() == {"gun-app1": 2, "gun-app2": 0, "gun-app3": 0}


def test_broken_release_stops_at_the_first_host_and_the_fleet_serves_on(host, workdir):
    before = {name: serving(app_host(name), "app") for name in APPS}
    broken = example_source(workdir, "asgi-app", "main.py", "broken", lambda text: text + "\ndef broken(:\n")
    rc, output, counts = converge_fleet_under_load(host, {"gunicorn_app_src": str(broken)})
    assert rc != 0
    assert "SyntaxError" in output, output[-3000:]
    assert_no_request_failed(counts)
    # Every serving host built it first and refused it there: no batch started.
    assert "PLAY [Build the release on the serving app hosts" in output, output[-3000:]
    assert output.count("PLAY [Roll the release over the serving app hosts") == 0, output[-3000:]
    assert all(f"fatal: [{name}]" in output for name in APPS), output[-3000:]
    assert {name: serving(app_host(name), "app") for name in APPS} == before
    assert releases_served() == {name: "2" for name in APPS}


def test_a_failing_release_command_once_stops_the_deploy_before_any_host_switches(host, workdir):
    before = {name: serving(app_host(name), "app") for name in APPS}
    source = example_source(workdir, "asgi-app", "main.py", "migration-fails")
    rc, output, counts = converge_fleet_under_load(host, {
        "gunicorn_app_src": str(source),
        "gunicorn_release_commands_once": ["echo migrating; exit 3"]})
    assert rc != 0
    said = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", output).split())
    assert "The release commands that run once per deploy failed on gun-app1" in said, output[-3000:]
    assert "release command failed with exit status 3" in said
    assert_no_request_failed(counts)
    # They ran while the serving hosts built the release: no batch started.
    assert output.count("PLAY [Roll the release over the serving app hosts") == 0, output[-3000:]
    assert {name: serving(app_host(name), "app") for name in APPS} == before
    assert releases_served() == {name: "2" for name in APPS}


def test_an_app_host_going_down_under_load_fails_no_request(host, workdir):
    before = serving(app_host("gun-app2"), "app")
    load = fleet_load(host)
    try:
        time.sleep(3)
        # A clean shutdown, as for maintenance: systemd stops nginx and gunicorn.
        app_host("gun-app2").run("systemctl poweroff")
        subprocess.run(["docker", "wait", "gun-app2"], check=True, capture_output=True, timeout=120)
        time.sleep(5)
    finally:
        counts = load.stop()
    print(f"gun-app2 shut down under load: {counts}")
    assert_no_request_failed(counts)
    assert releases_served() == {"gun-app1": "2", "gun-app3": "2"}

    # Back up: its units start at boot, and the load balancer takes it back
    # once its fail_timeout has passed.
    subprocess.run(["docker", "start", "gun-app2"], check=True, capture_output=True)
    deadline = time.monotonic() + 90
    while "gun-app2" not in releases_served(9) and time.monotonic() < deadline:
        time.sleep(2)
    assert releases_served() == {name: "2" for name in APPS}
    # The same release in the same unit pair, and a re-run of the fleet finds
    # nothing to change, on the host that came back (its /run was lost) too:
    # nothing rolls, the app hosts are re-run all at once, and the load
    # balancer beside them (no app host gets a new release).
    assert serving(app_host("gun-app2"), "app") == before
    rc, output = converge("all", {"gunicorn_app_src": str(example_source(workdir, "asgi-app", "main.py", "2"))})
    assert rc == 0, output[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    assert sorted(re.findall(r"^(gun-\S+) +: ok=\d+ +changed=(\d+)", plain, re.MULTILINE)) == [
        (name, "0") for name in sorted([*APPS, "gun-lb"])], output[-3000:]
    current = plain.split("PLAY [Re-run the app hosts", 1)[1].split("PLAY [", 1)[0]
    assert all(f"[{name}]" in current for name in [*APPS, "gun-lb"]), output[-3000:]
    after = plain.split("PLAY [Put the load balancers in front of the app hosts]", 1)[1]
    assert after.lstrip("*\n ").startswith("skipping: no hosts matched"), output[-3000:]
    rolled = plain.split("PLAY [Roll the release over the serving app hosts, one batch at a time]", 1)[1]
    assert rolled.lstrip("*\n ").startswith("skipping: no hosts matched"), output[-3000:]


def test_site_playbook_on_a_single_app_host_is_one_plain_role_run(workdir):
    """An inventory of one app host and no load balancer (here: gun-app2 as
    the group "solo", the load balancers' group named one that is empty) is
    deployed by site.yml's last play alone, the role as a plain playbook
    runs it: nothing to sort, stage or roll. The same release and settings
    (it still trusts the load balancer's addresses), so nothing changes."""
    solo = workdir / "solo.yml"
    solo.write_text(json.dumps({"solo": {"hosts": {"gun-app2": {}}}}))
    rc, output = converge("gun-app2", {
        "gunicorn_app_group": "solo", "gunicorn_lb_group": "solo_lb", "nginx_lb_trusted_proxies": ["gun-lb"],
        "gunicorn_app_src": str(example_source(workdir, "asgi-app", "main.py", "2"))},
        options=["--inventory", str(solo)])
    assert rc == 0, output[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    assert re.findall(r"^(gun-\S+) +: ok=\d+ +changed=(\d+)", plain, re.MULTILINE) == [("gun-app2", "0")], output[-3000:]
    plays = re.findall(r"^PLAY \[(.*?)\] \**\n(skipping: no hosts matched)?", plain, re.MULTILINE)
    assert [name for name, skipped in plays if not skipped] == ["Deploy the app on its only host"], plays
    assert plays[-1][0] == "Deploy the app on its only host"
    assert len(plays) == 7, plays


def test_a_batch_with_one_failed_host_is_the_last_batch(host, workdir):
    """Two hosts per batch; the release imports everywhere (every host
    builds it first) but fails its health path on gun-app1 only: gun-app2
    (same batch) finishes its deploy, gun-app3 (next batch) never switches,
    and gun-app1 removes the release it built."""
    before = {name: serving(app_host(name), "app") for name in APPS}
    source = example_source(workdir, "asgi-app", "main.py", "3", lambda text: text.replace(
        'os.environ.get("APP_UNHEALTHY")', 'socket.gethostname() == "gun-app1"'))
    rc, output, counts = converge_fleet_under_load(host, {"gunicorn_app_src": str(source), "gunicorn_serial": 2})
    assert rc != 0
    assert "answered 500 Internal Server Error" in output, output[-3000:]
    assert_no_request_failed(counts)
    # The second batch started only to stop, naming the host that failed.
    assert output.count("PLAY [Roll the release over the serving app hosts") == 2, output[-3000:]
    assert "Not deploying gun-app3: the run failed on gun-app1" in output, output[-3000:]
    assert serving(app_host("gun-app1"), "app") == before["gun-app1"]
    assert serving(app_host("gun-app3"), "app") == before["gun-app3"]
    assert releases_served() == {"gun-app1": "2", "gun-app2": "3", "gun-app3": "2"}
    # gun-app1 removed the release it refused; gun-app3 keeps it built, unused
    # (release ids differ per host: the environment's HMAC; the source does not).
    source = json.loads(app_host("gun-app2").check_output("cat /srv/app/current/release.json"))["source"]
    built = {name: app_host(name).run(f"grep -l '\"source\": \"{source}\"' /srv/app/releases/*/release.json")
             .stdout.strip() for name in ("gun-app1", "gun-app3")}
    assert built["gun-app1"] == "" and built["gun-app3"].endswith("/release.json"), built
    # Once, on the first host that built it, before any host switched.
    assert once_runs() == {"gun-app1": 3, "gun-app2": 0, "gun-app3": 0}


def test_maintenance_goes_on_and_off_on_the_load_balancer_without_a_failed_request(host):
    # From the load balancer's fleet address: its own loopback requests reach the app.
    load = Load(host, f"https://{LB}/", host_header=SITE, connections=4, pause=0.01)
    try:
        time.sleep(1)
        on = run_playbook("all", {"state": "on"}, playbook="pyweb.gunicorn_uvicorn_nginx.maintenance")
        assert on.returncode == 0, on.stdout[-3000:]
        # Only the load balancer ran it.
        assert not re.search(r"gun-app[0-9] +: ok=", on.stdout), on.stdout[-2000:]
        reply = through_lb()
        assert reply.status == 503 and reply.headers["Retry-After"] == "300" and "maintenance" in reply.body
        # The app hosts serve on behind it.
        for address in APPS.values():
            assert http_get(f"http://{address}/", headers={"Host": SITE}).status == 200
        off = run_playbook("all", {"state": "off"}, playbook="pyweb.gunicorn_uvicorn_nginx.maintenance")
        assert off.returncode == 0, off.stdout[-3000:]
        time.sleep(1)
    finally:
        counts = load.stop()
    print(counts)
    assert counts["errors"] == 0 and set(counts["statuses"]) == {"200", "503"}, counts
    assert through_lb().status == 200


def test_load_balancer_turns_to_acme_under_load_and_certbot_renews_there(host):
    """nginx_acme on the load balancer, whose prepare step runs an ACME server
    (molecule/shared/pebble.yml): the certificate lives there, HTTPS answers
    with the self-signed certificate until certbot's is served, and certbot's
    timer renews it there."""
    rc, output, counts = converge_fleet_under_load(host, {"lb_acme": True}, limit="gun-lb")
    assert rc == 0, output[-3000:]
    assert_no_request_failed(counts)
    root = pebble_root(host)
    out = host.check_output(f"curl -sS --cacert {root} -o /dev/null -w '%{{http_code}}' https://{SITE}/")
    assert out == "200"
    assert "Pebble" in served_certificate(host, SITE, "-issuer")
    # The copies of the self-signed certificate the role had made are gone.
    assert not host.file("/etc/nginx/tls/gunicorn-app").exists
    # Due at once (pebble's certificates last five years).
    host.check_output("sed -i 's/^renew_before_expiry = .*/renew_before_expiry = 3650 days/' "
                      "/etc/letsencrypt/renewal/gunicorn-app.conf")
    assert_timer_renews_without_restart(host, SITE)
