"""Verify code shared by every Molecule scenario.

Tests look at the hosts from the outside: systemd, the process table, files,
and HTTP requests sent from the controller to the container's address, the
way a client would reach nginx. Expected values come from the role's
documented defaults overlaid with the scenario's inventory variables, never
from the role's own tasks.
"""

import base64
import json
import os
import pathlib
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import jinja2
import pytest
import yaml

SHARED = pathlib.Path(__file__).parent / "shared"
EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
PLAYBOOKS = pathlib.Path(__file__).parent.parent / "playbooks"
ROLE_DEFAULTS = pathlib.Path(__file__).parent.parent / "roles/gunicorn_uvicorn_nginx/defaults/main"


# What the tests use to look around on a host. The images are as bare as a
# minimal Debian (scripts/lib.sh), so these come only now, after the role's
# first converge and idempotence ran without them.
TEST_TOOLS = {"curl": "curl", "ss": "iproute2", "ps": "procps", "openssl": "openssl"}


def ensure_test_tools(host):
    """Install the tests' own tools on the host, once."""
    missing = [package for command, package in TEST_TOOLS.items()
               if host.run(f"command -v {command}").rc != 0]
    if missing:
        install = f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {' '.join(missing)}"
        if host.run(install).rc != 0:
            host.check_output(f"apt-get update -q && {install}")
    return host


@pytest.fixture(scope="module", autouse=True)
def host_test_tools(host):
    ensure_test_tools(host)


@pytest.fixture(scope="module")
def role_vars(host):
    """The role's defaults with the scenario's variables for this host on top.

    Defaults that refer to other variables (gunicorn_user, gunicorn_app_root,
    ...) are rendered the way Ansible would.
    """
    defaults = {name: value for path in sorted(ROLE_DEFAULTS.glob("*.yml"))
                for name, value in yaml.safe_load(path.read_text()).items()}
    values = {**defaults, **host.ansible.get_variables()}
    # README: gunicorn_bind_mode auto is tcp when the address or port is set.
    bind_set = [values[name] for name in ("gunicorn_bind_address", "gunicorn_bind_port") if values[name] not in (None, "")]
    values["__gunicorn_bind_mode"] = (values["gunicorn_bind_mode"] if values["gunicorn_bind_mode"] != "auto"
                                      else "tcp" if bind_set else "unix")
    values["bind_mode"] = values["__gunicorn_bind_mode"]
    values["bind_address"] = values["gunicorn_bind_address"] or "127.0.0.1"
    values["bind_port"] = int(values["gunicorn_bind_port"] or 8000)
    for _ in range(3):
        for key in defaults:
            value = values[key]
            if isinstance(value, str) and "{{" in value:
                values[key] = jinja2.Template(value).render(**values)
    values["state_dir"] = f"/var/lib/gunicorn-{values['gunicorn_app_name']}"
    return values


def serving(host, app, root=None, port=8000):
    """What serves the app now, read from the host: the unit pair (blue or
    green: its service, socket unit, unix socket and tcp port; and the other
    pair's service), the release
    (id, directory, virtualenv) and its environment file."""
    root = root or f"/srv/{app}"
    slot = host.check_output(f"cat {root}/slot")
    idle = "blue" if slot == "green" else "green"
    release = json.loads(host.check_output(f"cat {root}/current/release.json"))
    return {
        "slot": slot,
        "idle_unit": f"gunicorn-{app}-{idle}.service",
        "unit": f"gunicorn-{app}-{slot}.service",
        "socket_unit": f"gunicorn-{app}-{slot}.socket",
        "socket": f"/run/gunicorn-{app}-{slot}.sock",
        "port": port + (1 if slot == "green" else 0),
        "release": release["id"],
        "release_dir": f"{root}/releases/{release['id']}",
        "venv": f"{root}/venvs/{release['venv']}",
        "env_file": f"/etc/gunicorn/{app}/{release['id']}.env",
    }


@pytest.fixture
def live(host, role_vars):
    """serving() for the scenario's app, read anew for each test: deploys
    in earlier tests switch unit pairs."""
    return serving(host, role_vars["gunicorn_app_name"], role_vars["gunicorn_app_root"],
                   role_vars["bind_port"])


@pytest.fixture(scope="module")
def address(host):
    """The container's address on the Docker network, as a client sees it."""
    return host.check_output("hostname -I").split()[0]


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        # The bytes as sent (still compressed when the server gzipped them).
        self.raw = raw

    @property
    def body(self):
        return self.raw.decode()

    def json(self):
        return json.loads(self.body)


def http_get(url, headers=None, timeout=10, method="GET", data=None):
    """A request from the controller, bypassing any proxy of the environment.
    HTTPS certificates are not checked here: tests that judge them use curl
    and sslyze with the host's CA as the trust anchor."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=timeout) as reply:
            return Response(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.headers, error.read())


@pytest.fixture(scope="module")
def http():
    return http_get


def main_pid(host, unit):
    return int(host.check_output(f"systemctl show --property MainPID --value {unit}"))


def children(host, pid):
    out = host.check_output(f"ps -o pid= --ppid {pid} || true")
    return sorted(int(p) for p in out.split())


def process_user(host, pid):
    return host.check_output(f"ps -o user= -p {pid}").strip()


def installed(host, venv):
    """"name==version" (lower case) of every distribution in a virtualenv
    (uv makes them without pip)."""
    script = "import importlib.metadata as m; print(*(f'{d.name}=={d.version}' for d in m.distributions()))"
    return set(host.check_output(f"{venv}/bin/python -c \"{script}\"").lower().split())


def playbook_command(hostname, extra_vars, diff=False, options=(), env=None, playbook=None):
    """(argv, environment) of the scenario's converge playbook (or another
    `playbook`) run again on the hosts `hostname` names, as a user would with
    `ansible-playbook -e` (and `options`, and `env` on top of the environment)."""
    ephemeral = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    own = pathlib.Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", "/nonexistent")) / "converge.yml"
    playbook = playbook or (own if own.is_file() else SHARED / "converge.yml")
    # The scenario's own ansible.cfg (Molecule's, or the shipped one the fleet uses).
    env = {**os.environ, **(env or {})}
    env.setdefault("ANSIBLE_CONFIG", str(ephemeral / "ansible.cfg"))
    argv = ["ansible-playbook", "--inventory", str(ephemeral / "inventory"), "--limit", hostname,
            "--extra-vars", json.dumps(extra_vars), *(["--diff"] if diff else []), *options, str(playbook)]
    return argv, env


def run_playbook(hostname, extra_vars, diff=False, options=(), env=None, playbook=None):
    """Run the converge playbook (or another) again (playbook_command); returns the finished process."""
    argv, env = playbook_command(hostname, extra_vars, diff, options, env, playbook)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    # The newest ansible-core's run (scripts/test): what it deprecates, the
    # next one removes.
    if os.environ.get("GUN_FORBID_DEPRECATIONS"):
        assert "[DEPRECATION WARNING]" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def killed_run(hostname, extra_vars, task):
    """Run the converge playbook again and kill -9 ansible-playbook with
    every process it started (its workers, their connections) as soon as it
    prints the header of `task` (a task's name): the tasks before it ran,
    this one may have been sent to the host or not. Returns the output; fails
    if the run ended without reaching that task (the task list changed)."""
    argv, env = playbook_command(hostname, extra_vars, env={"PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("TASK [") and line.rstrip().rstrip("*").rstrip().endswith(f" : {task}]"):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait()
    output = "".join(lines)
    assert process.returncode == -signal.SIGKILL, f"the run never reached the task {task!r}:\n{output[-3000:]}"
    return output


def wait_until_no_run_works_on(host, seconds=120):
    """Until no process on the host works for a run of the role any more
    (each carries GUNICORN_UVICORN_NGINX_RUN in its environment): what a killed
    run had sent to the host finishes there on its own."""
    deadline = time.monotonic() + seconds
    while host.run("grep -lsa GUNICORN_UVICORN_NGINX_RUN= /proc/[0-9]*/environ").stdout.strip():
        assert time.monotonic() < deadline, "a process of a killed run still works on the host"
        time.sleep(0.5)


def reboot(host):
    """Shut the host's systemd down (SIGRTMIN+3: what `systemctl halt` asks
    for), then start the container again: /run is empty, enabled units start."""
    name = host.backend.get_hostname()
    subprocess.run(["docker", "kill", "--signal", "SIGRTMIN+3", name], check=True, capture_output=True)
    subprocess.run(["docker", "wait", name], check=True, capture_output=True)
    subprocess.run(["docker", "start", name], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while host.run("systemctl is-system-running --wait").stdout.strip() not in ("running", "degraded"):
        assert time.monotonic() < deadline, "the host did not come back"
        time.sleep(1)


def converge(hostname, extra_vars, diff=False, options=()):
    """run_playbook(), returning (return code, output)."""
    result = run_playbook(hostname, extra_vars, diff, options)
    return result.returncode, result.stdout + result.stderr


def only_on(host, hostname):
    """Checks of the role's own logic, which does not differ between Debian 12
    and 13, run on one host each: the suite has a time budget (README, Tests)."""
    if host.backend.get_hostname() != hostname:
        pytest.skip(f"run on {hostname} only: the role's logic is the same on both")


PEBBLE_CA = "/etc/pebble-test/ca.pem"


def pebble_root(host):
    """Where on the host the root of its pebble (molecule/shared/pebble.yml)
    now is: pebble makes a new one each time it starts."""
    host.check_output(f"curl -sf --cacert {PEBBLE_CA} https://localhost:15000/roots/0 -o /root/pebble-root.pem")
    return "/root/pebble-root.pem"


def served_certificate(host, name, field="-serial"):
    """A field (openssl x509 option) of the certificate nginx on the host
    serves for this name."""
    return host.check_output(
        f"openssl s_client -connect 127.0.0.1:443 -servername {name} </dev/null 2>/dev/null"
        f" | openssl x509 -noout {field}")


def assert_timer_renews_without_restart(host, name):
    """Starting certbot's timer service renews the (due) certificate, nginx
    serves the new one under the same master process, and the role's deploy
    hook wrote its line to the journal. Returns the new certificate's serial."""
    before = served_certificate(host, name)
    nginx = main_pid(host, "nginx.service")
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    host.check_output("systemctl start certbot.service")
    for _ in range(20):
        after = served_certificate(host, name)
        if after != before:
            break
        time.sleep(0.5)
    assert after != before
    assert main_pid(host, "nginx.service") == nginx
    journal = host.check_output(f"journalctl --no-pager --since '{since}' -t certbot-deploy-hook")
    assert "nginx reloaded" in journal, journal
    return after


VALIDATION_TASKS = ("Validating arguments against arg spec", "Refuse values the role cannot take")


# Every file and directory where the role or an attack through its variables
# could leave something (path, mode, owner, size, time of change), and /tmp's
# top level.
TREE_SNAPSHOT = ("{ find /etc /srv /opt /usr/local /var/lib/gunicorn-* /run/gunicorn-uvicorn-nginx "
                 "-xdev -printf '%p %m %u %g %s %C@\\n' 2>/dev/null; ls -A /tmp /var/tmp; } | sha256sum")


def invalid_value_tests(cases, hostname):
    """For a test module: the module fixture `invalid_runs`, and the test, one
    per (variable, value, *(other, value)) case, that the case's run stopped
    in validation naming the variable and changed nothing.

    All cases go in one ansible-playbook run of the converge playbook: each is
    an alias of `hostname` (same connection, the scenario's group variables)
    carrying the case's values as host variables, the way an inventory gives
    them. Validation runs on the controller before any task reaches the host,
    and does not depend on the Debian release; a case that got past it would
    show as a task of its alias after the validation tasks.

        invalid_runs, test_invalid_value_fails_in_validation = invalid_value_tests(CASES, "gun-debian13")
    """
    aliases = [f"invalid-{index}" for index in range(len(cases))]

    @pytest.fixture(scope="module", name="invalid_runs")
    def runs(host):
        only_on(host, hostname)
        connection = host.ansible.get_variables()["ansible_connection"]
        inventory = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "invalid-cases.json"
        inventory.write_text(json.dumps({"all": {"hosts": {
            alias: {"ansible_host": hostname, "ansible_connection": connection, case[0]: case[1], **dict(case[2:])}
            for alias, case in zip(aliases, cases)}}}))
        # Results as data: which task each alias stopped in, and its message.
        # In check mode: a case that got past validation by mistake must not
        # deploy its values on the host the later tests look at.
        before = host.check_output(TREE_SNAPSHOT)
        run = run_playbook("invalid-*", {}, options=["--inventory", str(inventory), "--check"],
                           env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
        assert run.returncode != 0, run.stdout + run.stderr
        # Nothing on the host changed, whatever a case tried.
        assert host.check_output(TREE_SNAPSHOT) == before
        return {alias: host_results(run.stdout, alias) for alias in aliases}

    @pytest.mark.parametrize("index", range(len(cases)), ids=[f"{case[0]}={case[1]!r}" + "".join(
        f",{name}={value!r}" for name, value in case[2:]) for case in cases])
    def test(invalid_runs, index):
        assert_failed_in_validation(cases[index][0], invalid_runs[aliases[index]])

    return runs, test


def changed_tasks(output):
    """The names of the tasks that reported changed in a playbook's output
    (colours stripped), for a failed idempotence assertion."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    changed, task = [], None
    for line in plain.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):].rstrip("* ").rstrip("]")
        elif line.startswith("changed:") and task not in changed:
            changed.append(task)
    return changed


def host_results(report, hostname):
    """(task name, result) of each task that ran for the host, in order, from
    the output of the ansible.posix.json callback."""
    return [(task["task"]["name"], task["hosts"][hostname]) for play in json.loads(report)["plays"]
            for task in play["tasks"] if hostname in task["hosts"]]


def assert_failed_in_validation(variable, results):
    """The host's last task was one of the validation tasks and failed naming
    the variable; no task changed anything. `results` are the host's
    (task name, result) pairs in the order they ran."""
    assert results, "no task ran"
    name, result = results[-1]
    assert any(task in name for task in VALIDATION_TASKS), results
    assert result.get("failed"), results
    assert not [task for task, outcome in results if outcome.get("changed")], results
    # The message, not the whole result (argument_specs' result carries the
    # spec, which names every variable).
    said = "\n".join([str(result.get("msg", "")), *map(str, result.get("argument_errors", []))])
    assert variable in said, said


class Load:
    """molecule/shared/files/load.py running on the host under test, against
    nginx on loopback, until stop() collects its counts."""

    def __init__(self, host, url, host_header=None, connections=8, max_seconds=240, pause=0):
        self.host = host
        script = base64.b64encode((SHARED / "files/load.py").read_bytes()).decode()
        host.check_output(f"echo {script} | base64 -d > /root/load.py && rm -f /root/load.stop /root/load.json")
        header = f"--host-header {host_header}" if host_header else ""
        host.check_output(
            f"setsid nohup python3 /root/load.py {url} {header} --connections {connections} "
            f"--max-seconds {max_seconds} --pause {pause} --stop-file /root/load.stop > /root/load.json 2>&1 < /dev/null &")

    def stop(self):
        self.host.check_output("touch /root/load.stop")
        for _ in range(120):
            out = self.host.run("cat /root/load.json").stdout.strip()
            if out.endswith("}"):
                return json.loads(out)
            time.sleep(0.5)
        raise AssertionError("the load generator did not report")


def converge_under_load(host, extra_vars, host_header=None):
    """converge() on this host while Load sends requests through nginx on
    loopback; returns (rc, output, load counts, seconds of the converge).
    Each connection pauses 5 ms between requests: still about 1,300 requests
    a second over every moment of the run, but the run keeps its CPUs (at
    full speed the same redeploy took 75-78 s instead of 41-46 s)."""
    load = Load(host, "http://127.0.0.1/", host_header=host_header, pause=0.005)
    try:
        time.sleep(2)
        started = time.monotonic()
        rc, output = converge(host.backend.get_hostname(), extra_vars)
        seconds = time.monotonic() - started
        time.sleep(2)
    finally:
        counts = load.stop()
    return rc, output, counts, seconds


def assert_no_request_failed(counts):
    """Every request of a Load run was answered, with 200."""
    assert counts["requests"] > 100, counts
    assert counts["errors"] == 0, counts
    assert counts["statuses"] == {"200": counts["requests"]}, counts


def gixy_problems(host):
    """gixy-ng's findings on the host's whole nginx configuration (`nginx -T`,
    which includes Debian's files as well as the role's), as
    "check: reason" strings."""
    dump = host.check_output("nginx -T 2>/dev/null")
    ephemeral = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    path = ephemeral / f"nginx-T-{host.backend.get_hostname()}.conf"
    path.write_text(dump + "\n")
    result = subprocess.run(["gixy", "--format", "json", str(path)], capture_output=True, text=True, check=False)
    findings = json.loads(result.stdout or "[]")
    return [f"{finding['plugin']}: {finding['reason']}" for finding in findings]


def nginx_files(host):
    """Path -> sha256 of every file under /etc/nginx: what a rejected run must leave as it was."""
    out = host.check_output("find /etc/nginx -type f -exec sha256sum {} +")
    return {path: digest for digest, path in (line.split(None, 1) for line in out.splitlines())}


@pytest.fixture
def workdir():
    path = pathlib.Path(tempfile.mkdtemp())
    yield path
    shutil.rmtree(path)


def example_source(workdir, example, module, release, change=None):
    """A copy of examples/<example> whose RELEASE (in `module`) is `release`;
    `change` may rewrite that module's text further."""
    source = workdir / f"{example}-{release}"
    shutil.copytree(EXAMPLES / example, source, ignore=shutil.ignore_patterns("__pycache__"))
    code = source / module
    text = code.read_text().replace('RELEASE = "1"', f'RELEASE = "{release}"')
    code.write_text(change(text) if change else text)
    return source
