"""Automatic HTTPS from a real ACME server (pebble on each host, prepare.yml).

Requests go from inside the host to nginx by the site's names (which
/etc/hosts points at 127.0.0.1), so that curl checks the certificate the way
a browser would: for the name, up to a trust anchor it is given.
The tests run in file order: the last ones change the host.
"""

import os
import pathlib
import re
import tomllib

import pytest

from conftest import (PEBBLE_CA, assert_timer_renews_without_restart, converge, installed, invalid_value_tests,
                      only_on, pebble_root, served_certificate, serving)

NAMES = ["acme.test", "www.acme.test"]
LINEAGE = "gunicorn-app"
LIVE = f"/etc/letsencrypt/live/{LINEAGE}"
ARCHIVE = f"/etc/letsencrypt/archive/{LINEAGE}"
WEBROOT = "/var/lib/gunicorn-acme"


@pytest.fixture(scope="module")
def root(host):
    return pebble_root(host)


def served_serial(host):
    return served_certificate(host, "acme.test")


def certificates(host):
    """Certificates certbot has put in the lineage's archive: cert1.pem, ..."""
    return [f for f in host.check_output(f"ls {ARCHIVE}").split() if f.startswith("cert")]


def test_https_certificate_chains_to_pebble_root_for_each_name(host, root):
    for name in NAMES:
        out = host.check_output(
            f"curl -sS --cacert {root} -o /dev/null -w '%{{http_code}} %{{http_version}}' https://{name}/")
        assert out == "200 2", (name, out)
    # The same request fails against another trust anchor: curl really checks.
    wrong = host.run(f"curl -sS --cacert {PEBBLE_CA} -o /dev/null https://acme.test/")
    assert wrong.rc == 60, wrong.stderr
    # A certificate browsers trust: HSTS without being asked for (nginx_tls_hsts unset).
    headers = host.check_output(f"curl -sS --cacert {root} -D - -o /dev/null https://acme.test/").lower()
    assert "strict-transport-security: max-age=63072000" in headers, headers


def test_the_uv_package_serves_from_its_lock_with_the_project_installed(host, root):
    """examples/uv-app is what uv init makes (a package in src/): the lock's
    versions are installed, and the project itself, built into the
    virtualenv (not an editable link back to a release)."""
    body = host.check_output(f"curl -sS --cacert {root} https://acme.test/")
    assert '"message":"Hello from a uv project"' in body and '"version":"0.1.0"' in body, body
    lock = tomllib.loads((pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "uv-app/uv.lock").read_text())
    locked = {normal(package["name"]): package["version"] for package in lock["package"]}
    venv = serving(host, "app")["venv"]
    have = {normal(name): version for name, version in (entry.split("==") for entry in installed(host, venv))}
    assert {"fastapi", "starlette", "pydantic", "shop"} <= have.keys(), have
    assert {name: version for name, version in have.items() if name in locked} == {
        name: locked[name] for name in have if name in locked}
    record = host.check_output(f"cat {venv}/lib/python3*/site-packages/shop-0.1.0.dist-info/RECORD")
    assert "shop/main.py" in record and ".pth" not in record, record


def normal(name):
    """A distribution name as uv.lock writes it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_served_certificate_is_the_lineage_and_names_the_site(host):
    live = host.check_output(f"openssl x509 -noout -serial -in {LIVE}/cert.pem")
    assert served_serial(host) == live
    sans = host.check_output(f"openssl x509 -noout -ext subjectAltName -in {LIVE}/cert.pem")
    assert sorted(re.findall(r"DNS:([^,\s]+)", sans)) == sorted(NAMES)
    assert "Pebble" in host.check_output(f"openssl x509 -noout -issuer -in {LIVE}/cert.pem")


def test_converge_and_idempotence_issued_one_certificate(host):
    # The first run ordered; the idempotence run (and any re-run) must not.
    assert certificates(host) == ["cert1.pem"]


def test_http_redirects_to_https_but_challenges_answer_over_http(host):
    host.check_output(f"mkdir -p {WEBROOT}/.well-known/acme-challenge")
    host.check_output(f"echo token-content > {WEBROOT}/.well-known/acme-challenge/probe-token")
    try:
        out = host.check_output(
            "curl -sS -w ' %{http_code}' http://acme.test/.well-known/acme-challenge/probe-token")
        assert out == "token-content\n 200"
        missing = host.check_output(
            "curl -sS -o /dev/null -w '%{http_code}' http://acme.test/.well-known/acme-challenge/none")
        assert missing == "404"
    finally:
        host.check_output(f"rm -f {WEBROOT}/.well-known/acme-challenge/probe-token")
    for name in NAMES:
        out = host.check_output(
            f"curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{name}/some/path?q=1")
        assert out == "301 https://acme.test/some/path?q=1", (name, out)


def test_private_key_is_root_only(host):
    key = host.file(f"{LIVE}/privkey.pem")
    assert key.is_symlink
    target = host.file(key.linked_to)
    assert (target.user, target.group, target.mode) == ("root", "root", 0o600)
    for top in ("/etc/letsencrypt/archive", "/etc/letsencrypt/live"):
        directory = host.file(top)
        assert (directory.user, directory.mode) == ("root", 0o700), top


def test_renewal_is_configured(host):
    conf = host.file(f"/etc/letsencrypt/renewal/{LINEAGE}.conf").content_string
    # certbot writes the line commented out: the role's is the one that counts.
    assert re.search(r"^renew_before_expiry = 30 days$", conf, re.MULTILINE), conf
    assert "server = https://localhost:14000/dir" in conf
    assert "authenticator = webroot" in conf
    timer = host.service("certbot.timer")
    assert timer.is_enabled and timer.is_running
    env = host.check_output("systemctl show --property Environment --value certbot.service")
    assert f"REQUESTS_CA_BUNDLE={PEBBLE_CA}" in env
    hook = host.file("/etc/letsencrypt/renewal-hooks/deploy/gunicorn-uvicorn-nginx")
    assert hook.user == "root" and hook.mode == 0o755


def test_check_mode_with_the_certificate_in_place_changes_nothing(host):
    only_on(host, "gun-debian12")
    rc, out = converge(host.backend.get_hostname(), {}, options=["--check", "--diff"])
    assert rc == 0, out
    assert re.search(r"gun-debian12 +: ok=\d+ +changed=0 ", re.sub(r"\x1b\[[0-9;]*m", "", out)), out[-3000:]


INVALID = [
    ("nginx_server_name", "_"),
    ("nginx_server_name", "*.acme.test"),
    ("nginx_tls_self_signed", True),
    ("nginx_acme_renew_days", 0),
    ("nginx_acme_directory", "letsencrypt"),
    ("nginx_acme_ca_bundle", "/etc/my ca.pem"),
]

invalid_runs, test_invalid_acme_value_fails_in_validation = invalid_value_tests(INVALID, "gun-debian13")


def test_failed_order_fails_with_the_ca_error_and_keeps_serving(host, root):
    before = served_serial(host)
    rc, out = converge(host.backend.get_hostname(),
                       {"nginx_server_name": "acme.test www.acme.test nope.test"})
    assert rc != 0, out
    assert "certbot could not get a certificate for acme.test, www.acme.test, nope.test" in out
    # pebble's own words: it could not resolve the new name.
    assert re.search(r"Domain: nope\.test", out), out
    assert re.search(r"Detail: .*nope\.test.*(no such host|NXDOMAIN|resolv|misbehaving|DNS)", out), out
    assert served_serial(host) == before
    ok = host.check_output(f"curl -sS --cacert {root} -o /dev/null -w '%{{http_code}}' https://acme.test/")
    assert ok == "200"
    assert certificates(host) == ["cert1.pem"]
    # The next test's run puts the names back.


def test_timer_renews_and_nginx_serves_the_new_certificate_without_restart(host, root):
    # Renewal due at once: pebble's certificates last five years. In
    # maintenance: challenges must still be answered.
    rc, out = converge(host.backend.get_hostname(), {"nginx_acme_renew_days": 3650, "nginx_maintenance": True})
    assert rc == 0, out
    # From the host's network address (the host's own requests reach the app).
    own = host.check_output("hostname -I").split()[0]
    host.check_output(f"mkdir -p {WEBROOT}/.well-known/acme-challenge")
    host.check_output(f"echo token-content > {WEBROOT}/.well-known/acme-challenge/probe-token")
    try:
        out = host.check_output(f"curl -sS --resolve acme.test:80:{own} -w ' %{{http_code}}' "
                                "http://acme.test/.well-known/acme-challenge/probe-token")
        assert out == "token-content\n 200"
    finally:
        host.check_output(f"rm -f {WEBROOT}/.well-known/acme-challenge/probe-token")
    out = host.check_output(f"curl -sS --cacert {root} --resolve acme.test:443:{own} -o /dev/null "
                            "-w '%{http_code}' https://acme.test/")
    assert out == "503"
    conf = host.file(f"/etc/letsencrypt/renewal/{LINEAGE}.conf").content_string
    assert re.search(r"^renew_before_expiry = 3650 days$", conf, re.MULTILINE), conf
    # The role itself never replaces a valid certificate.
    assert certificates(host) == ["cert1.pem"]
    renewed = assert_timer_renews_without_restart(host, "acme.test")
    assert certificates(host) == ["cert1.pem", "cert2.pem"]
    assert renewed == host.check_output(f"openssl x509 -noout -serial -in {ARCHIVE}/cert2.pem")
    # (acme.test is the host's loopback here: its own requests reach the app.)
    out = host.check_output(f"curl -sS --cacert {root} -o /dev/null -w '%{{http_code}}' https://acme.test/")
    assert out == "200"


def test_removal_deletes_the_certificate_and_the_timer_setting(host):
    only_on(host, "gun-debian13")
    rc, out = converge(host.backend.get_hostname(), {"gunicorn_state": "absent"})
    assert rc == 0, out
    for path in (LIVE, ARCHIVE, f"/etc/letsencrypt/renewal/{LINEAGE}.conf",
                 "/etc/systemd/system/certbot.service.d/gunicorn-app.conf", "/etc/nginx/gunicorn-maintenance/app.html",
                 "/etc/nginx/gunicorn-maintenance/app.on"):
        assert not host.file(path).exists, path
    env = host.check_output("systemctl show --property Environment --value certbot.service")
    assert "REQUESTS_CA_BUNDLE" not in env
