#!/usr/bin/env python3
"""Benchmark the deployed stack against its peers (run it through scripts/bench).

Deploys the role with the sample app into a fresh local Debian 13 systemd
container, reached over SSH as an unprivileged user with sudo (as users reach
their hosts), times the role (first converge, idempotent re-runs with and
without pipelining, a code-only release, one with changed requirements, a
rollback, a code-only release of a 5,000-file app; the re-run and the rollback
also over docker exec, how this benchmark reached the host before 0.8.0), adds the peer configurations (benchmarks/peers.yml), then loads
each configuration with wrk from inside the same container, against loopback
only, bounded in time and connections. Configurations are interleaved, the
order rotating each round so that none always follows another. This machine's
speed drifts over minutes, so each round's throughput is divided by the same
round's "gunicorn directly" run, and the report gives the median of those
paired ratios, with medians of the rest; it goes to docs/benchmarks.md and
docs/benchmarks.png.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAME = "gunicorn-uvicorn-nginx-bench"
# The minimal image with sudo (site.yml becomes root), built by scripts/lib.sh.
IMAGE = "gunicorn-uvicorn-nginx/debian-ssh:13"
INVENTORY = ROOT / "benchmarks/inventory.yml"

# key, label, port inside the container, path, unit of the gunicorn that serves it
CONFIGS = [
    ("direct", "gunicorn directly over TCP, no nginx (reference)", 8000, "/", "gunicorn-apptcp-blue.service"),
    ("default", "nginx -> unix socket + keepalive (role default)", 80, "/", "gunicorn-app-blue.service"),
    ("tcp", "nginx -> TCP + keepalive (role, gunicorn_bind_mode: tcp)", 81, "/", "gunicorn-apptcp-blue.service"),
    ("docs-unix", "nginx -> unix socket, no keepalive (gunicorn docs example)", 8101, "/", "gunicorn-app-blue.service"),
    ("docs-tcp", "nginx -> TCP, no keepalive, HTTP/1.0 (gunicorn docs style)", 8102, "/", "gunicorn-apptcp-blue.service"),
    ("static", "static file from disk by nginx (nginx_static_locations, 334 B)", 80, "/static/app.css",
     "gunicorn-app-blue.service"),
]
# A small pure-Python package: a new virtualenv, not a long download, is what is timed.
REQUIREMENT_ADDED = "itsdangerous==2.2.0"
# A real-sized app: the sample plus this many small modules.
BIG_APP_MODULES = 5000
# Issue 18's goals for whole ansible-playbook runs, in seconds (and a ratio).
GOAL_CODE_ONLY = 12
GOAL_NEW_REQUIREMENTS = 18
GOAL_BIG_VS_SMALL = 1.5
GOAL_VS_DIRECT = 0.85
GOAL_VS_DOCS = 3.0
# Issue 22's: runs cost what they change.
GOAL_UNCHANGED = 6
GOAL_ROLLBACK = 6


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(argv, env=None, check=True):
    return subprocess.run(argv, env=env, check=check, text=True, capture_output=True)


def in_container(command, check=True):
    return run(["docker", "exec", NAME, "sh", "-c", command], check=check)


def start_container():
    run(["docker", "rm", "-f", NAME], check=False)
    run([
        "docker", "run", "-d", "--name", NAME, "--hostname", NAME,
        "--cap-add", "SYS_ADMIN", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--cgroupns=host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--security-opt", "seccomp=unconfined", IMAGE,
    ])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = in_container("systemctl is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise SystemExit("the benchmark container's systemd did not come up")


def address():
    return run(["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                NAME]).stdout.strip()


def playbook(path, pipelining=True, extra_vars=None, transport="ssh"):
    """Run a playbook against the container, over SSH (or "docker": docker
    exec); return (seconds, changed count)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_PIPELINING=str(pipelining))
    reach = ({"ansible_host": address()} if transport == "ssh"
             else {"ansible_connection": "community.docker.docker"})
    extra = ["--extra-vars", json.dumps({**reach, **(extra_vars or {})})]
    start = time.monotonic()
    result = run(["ansible-playbook", "-i", str(INVENTORY), *extra, str(ROOT / path)], env=env, check=False)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        print(result.stdout[-5000:], result.stderr[-2000:], sep="\n")
        raise SystemExit(f"{path} failed")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", result.stdout))
    return seconds, changed


def time_releases():
    """Seconds of a code-only release, a release with changed requirements and
    a rollback (whole ansible-playbook runs), on the host the role deployed."""
    with tempfile.TemporaryDirectory() as workdir:
        source = pathlib.Path(workdir) / "asgi-app"
        shutil.copytree(ROOT / "examples/asgi-app", source, ignore=shutil.ignore_patterns("__pycache__"))
        main = source / "main.py"
        main.write_text(main.read_text().replace('RELEASE = "1"', 'RELEASE = "2"'))
        log("Timing a code-only release")
        code_only, _ = playbook("playbooks/site.yml", extra_vars={"gunicorn_app_src": str(source)})
        pyproject = source / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('"starlette==', f'"{REQUIREMENT_ADDED}", "starlette=='))
        log(f"Timing a release with changed requirements (+ {REQUIREMENT_ADDED})")
        new_venv, _ = playbook("playbooks/site.yml", extra_vars={"gunicorn_app_src": str(source)})
        log("Timing a rollback")
        rollback, _ = playbook("playbooks/rollback.yml", extra_vars={"gunicorn_app_src": str(source)})
        log("The release rolled back from again (untimed), then a rollback over docker exec")
        playbook("playbooks/site.yml", extra_vars={"gunicorn_app_src": str(source)})
        rollback_docker, _ = playbook("playbooks/rollback.yml", extra_vars={"gunicorn_app_src": str(source)},
                                      transport="docker")
        big = pathlib.Path(workdir) / "big-app"
        shutil.copytree(source, big)
        for index in range(BIG_APP_MODULES):
            module = big / f"bulk/part{index // 500}/module_{index}.py"
            module.parent.mkdir(parents=True, exist_ok=True)
            module.write_text(f'"""Module {index} of a real-sized app."""\n\nVALUE = {index}\n')
        log(f"First release of a {BIG_APP_MODULES}-file app (untimed), then a code-only release of it")
        playbook("playbooks/site.yml", extra_vars={"gunicorn_app_src": str(big)})
        main = big / "main.py"
        main.write_text(main.read_text().replace('RELEASE = "2"', 'RELEASE = "3"'))
        big_code_only, _ = playbook("playbooks/site.yml", extra_vars={"gunicorn_app_src": str(big)})
    # The first release again (still on the host): blue -> green -> blue ->
    # rollback to green -> blue, the unit pair CONFIGS and peers.yml name.
    log("Back to the first release")
    playbook("playbooks/site.yml")
    slot = in_container("cat /srv/app/slot").stdout.strip()
    if slot != "blue":
        raise SystemExit(f"the app serves from the {slot} unit pair, expected blue")
    return code_only, new_venv, rollback, big_code_only, rollback_docker


def parse_wrk(output):
    def duration_ms(text):
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]

    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    result["p50"] = duration_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    result["p99"] = duration_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["errors"] = sum(int(n) for n in errors.groups()) if errors else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    return result


def rss_mb(unit):
    """RSS of the unit's gunicorn master, of its workers together, and of all nginx processes."""
    master = in_container(f"systemctl show --property MainPID --value {unit}").stdout.strip()
    master_kb = int(in_container(f"ps -o rss= -p {master}").stdout)
    workers_kb = sum(int(n) for n in in_container(f"ps -o rss= --ppid {master}").stdout.split())
    nginx_kb = sum(int(n) for n in in_container("ps -o rss= -C nginx").stdout.split())
    return master_kb / 1024, workers_kb / 1024, nginx_kb / 1024


def wrk(port, path, seconds, connections, threads):
    command = f"wrk -t{threads} -c{connections} -d{seconds}s --timeout 5s --latency http://127.0.0.1:{port}{path}"
    return in_container(command).stdout


def app_venv():
    """The serving release's virtualenv (a fresh container serves from the blue unit pair)."""
    release = json.loads(in_container("cat /srv/app/current/release.json").stdout)
    return f"/srv/app/venvs/{release['venv']}"


def versions():
    # uv builds the virtualenvs without pip: ask the distributions' metadata.
    script = "import importlib.metadata as m; print(*(d.name + '==' + d.version for d in m.distributions()))"
    pip_freeze = in_container(f'{app_venv()}/bin/python -c "{script}"').stdout.lower().split()
    wanted = ("gunicorn", "uvicorn", "uvicorn-worker", "uvloop", "httptools", "starlette")
    packages = ", ".join(p for p in pip_freeze if p.split("==")[0] in wanted)
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "unknown")
    return {
        "CPUs (host / container)": f"{os.cpu_count()} / {in_container('nproc').stdout.strip()} ({cpu_model})",
        "kernel": os.uname().release,
        "container": f"Debian {in_container('cat /etc/debian_version').stdout.strip()}, systemd as PID 1",
        "nginx": in_container("nginx -v 2>&1").stdout.strip().removeprefix("nginx version: "),
        "wrk": in_container("wrk -v 2>&1 | head -1", check=False).stdout.strip(),
        "Python in the app's venv": in_container(f"{app_venv()}/bin/python -V").stdout.strip(),
        "Python packages": packages,
        "ansible-core": run(["ansible", "--version"]).stdout.splitlines()[0],
    }


def chart(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [row["label"] for row in rows][::-1]
    ratios = [row["ratio"] for row in rows][::-1]
    colours = ["#2b7bba" if row["key"] == "default" else "#9aa5b1" for row in rows][::-1]
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=110)
    bars = ax.barh(labels, ratios, color=colours)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(GOAL_VS_DIRECT, color="#c0392b", linewidth=0.8, linestyle="--", label=f"goal {GOAL_VS_DIRECT}x")
    for bar, row in zip(bars, rows[::-1]):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2,
                f"{row['ratio']:.2f}x  ({row['rps']:,.0f} req/s)", va="center", fontsize=9)
    ax.set_xlim(0, max(ratios) * 1.35)
    ax.set_xlabel("throughput relative to gunicorn reached directly (median of paired rounds)")
    ax.set_title("Sample ASGI app, 2 uvicorn workers: what nginx in front costs")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def arguments(doc, rounds, kept, written, argv=None):
    """The options of scripts/bench, shared by this benchmark and benchmarks/fleet.py."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--seconds", type=int, default=6, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--keep", action="store_true", help=f"leave {kept} running")
    parser.add_argument("--out", default=str(ROOT / "docs"), help=f"where {written} go")
    return parser.parse_args(argv)


def main():
    args = arguments(__doc__, 5, "the container", "benchmarks.md and .png")
    began = time.monotonic()

    log(f"Starting a fresh Debian 13 container ({NAME})")
    start_container()
    log("Timing the role: first converge on the fresh host")
    first, first_changed = playbook("playbooks/site.yml")
    reruns = {True: [], False: []}
    for pipelining in (True, False, True, False, True, False):
        seconds, changed = playbook("playbooks/site.yml", pipelining=pipelining)
        if changed:
            raise SystemExit(f"a re-run changed {changed} things: the role is not idempotent")
        reruns[pipelining].append(seconds)
    reruns_docker = []
    for _ in range(3):
        seconds, changed = playbook("playbooks/site.yml", transport="docker")
        if changed:
            raise SystemExit(f"a re-run over docker exec changed {changed} things")
        reruns_docker.append(seconds)
    releases = time_releases()
    log("Deploying the peer configurations (benchmarks/peers.yml) and wrk")
    playbook("benchmarks/peers.yml")
    in_container("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null")

    log("Warming up every configuration")
    for _, _, port, path, _ in CONFIGS:
        wrk(port, path, 2, args.connections, args.threads)
    samples = {key: [] for key, *_ in CONFIGS}
    for round_ in range(args.rounds):
        shift = round_ % len(CONFIGS)
        for key, label, port, path, unit in CONFIGS[shift:] + CONFIGS[:shift]:
            log(f"round {round_ + 1}/{args.rounds}: {label}")
            result = parse_wrk(wrk(port, path, args.seconds, args.connections, args.threads))
            result["rss_master"], result["rss_workers"], result["rss_nginx"] = rss_mb(unit)
            samples[key].append(result)
    for key in samples:
        for result, reference in zip(samples[key], samples["direct"]):
            result["ratio"] = result["rps"] / reference["rps"]
    machine = versions()
    if not args.keep:
        run(["docker", "rm", "-f", NAME], check=False)

    rows = []
    for key, label, _, _, _ in CONFIGS:
        runs = samples[key]
        row = {"key": key, "label": label}
        for field in ("rps", "ratio", "p50", "p99", "rss_master", "rss_workers", "rss_nginx"):
            row[field] = statistics.median(r[field] for r in runs)
        row["errors"] = sum(r["errors"] for r in runs)
        row["non2xx"] = sum(r["non2xx"] for r in runs)
        rows.append(row)
    by_key = {row["key"]: row for row in rows}
    default = by_key["default"]
    vs_docs = statistics.median(
        d["rps"] / p["rps"] for d, p in zip(samples["default"], samples["docs-tcp"]))
    clean = all(row["errors"] == 0 and row["non2xx"] == 0 for row in rows)

    table = [
        "| configuration | req/s | ratio | p50 ms | p99 ms | errors | non-2xx | RSS master / workers / nginx (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        rss = f"{row['rss_master']:.0f} / {row['rss_workers']:.0f} / {row['rss_nginx'] if row['key'] != 'direct' else 0:.0f}"
        table.append(
            f"| {row['label']} | {row['rps']:,.0f} | **{row['ratio']:.2f}x** | {row['p50']:.2f} | {row['p99']:.2f} "
            f"| {row['errors']} | {row['non2xx']} | {rss} |")
    goals = [
        f"- role default vs gunicorn directly: **{default['ratio']:.2f}x** (goal >= {GOAL_VS_DIRECT}x): "
        f"{'met' if default['ratio'] >= GOAL_VS_DIRECT else 'NOT met'}",
        f"- role default vs gunicorn-docs-style nginx over TCP: **{vs_docs:.1f}x** (goal >= {GOAL_VS_DOCS}x): "
        f"{'met' if vs_docs >= GOAL_VS_DOCS else 'NOT met'}",
        f"- failed requests (socket errors + non-2xx) in all runs: **{sum(r['errors'] + r['non2xx'] for r in rows)}** "
        f"(goal 0): {'met' if clean else 'NOT met'}",
    ]
    timing = [
        "| role run | seconds |",
        "|---|---:|",
        f"| first converge on a fresh Debian 13 container ({first_changed} changes) | {first:.1f} |",
        f"| idempotent re-run, pipelining on (shipped ansible.cfg), median of 3 | {statistics.median(reruns[True]):.1f} |",
        f"| idempotent re-run, pipelining off (before), median of 3 | {statistics.median(reruns[False]):.1f} |",
        f"| idempotent re-run over docker exec (before 0.8.0), median of 3 | {statistics.median(reruns_docker):.1f} |",
        f"| release with changed code only (reuses the virtualenv) | {releases[0]:.1f} |",
        f"| release with changed requirements (+ `{REQUIREMENT_ADDED}`: a new virtualenv) | {releases[1]:.1f} |",
        f"| rollback to the previous release (`playbooks/rollback.yml`) | {releases[2]:.1f} |",
        f"| the same rollback over docker exec (before 0.8.0) | {releases[4]:.1f} |",
        f"| release with changed code only, {BIG_APP_MODULES:,}-file app | {releases[3]:.1f} |",
    ]
    release_goals = [
        "| release | now | goal | |",
        "|---|---:|---:|---|",
        f"| code-only change | {releases[0]:.1f} s | <= {GOAL_CODE_ONLY} s | "
        f"{'met' if releases[0] <= GOAL_CODE_ONLY else 'NOT met'} |",
        f"| changed dependencies (one package added) | {releases[1]:.1f} s | <= {GOAL_NEW_REQUIREMENTS} s | "
        f"{'met' if releases[1] <= GOAL_NEW_REQUIREMENTS else 'NOT met'} |",
        f"| a {BIG_APP_MODULES:,}-file app vs the sample, code-only change | {releases[3] / releases[0]:.2f}x | "
        f"<= {GOAL_BIG_VS_SMALL}x | {'met' if releases[3] / releases[0] <= GOAL_BIG_VS_SMALL else 'NOT met'} |",
        f"| unchanged re-run (median of 3) | {statistics.median(reruns[True]):.1f} s | <= {GOAL_UNCHANGED} s | "
        f"{'met' if statistics.median(reruns[True]) <= GOAL_UNCHANGED else 'NOT met'} |",
        f"| rollback | {releases[2]:.1f} s | <= {GOAL_ROLLBACK} s | "
        f"{'met' if releases[2] <= GOAL_ROLLBACK else 'NOT met'} |",
    ]

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chart(rows, out / "benchmarks.png")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    document = [
        "# Benchmarks",
        "",
        f"Written by `scripts/bench` on {when}; run it again to refresh this page and the chart.",
        "",
        "The role deploys the sample app (`examples/asgi-app`, Starlette, `GET /` answers about 100 bytes",
        "of JSON) with its defaults (2 uvicorn workers) into a fresh Debian 13 systemd container;",
        "`benchmarks/peers.yml` adds the configurations it is compared with on the same host. wrk runs",
        f"inside the container against loopback: {args.threads} threads, {args.connections} connections, "
        f"{args.seconds} s per run,",
        f"configurations interleaved in an order that rotates each round, {args.rounds} rounds.",
        "The ratio is the median over rounds of each run's throughput divided by that round's",
        "\"gunicorn directly\" run (the machine's speed drifts over minutes; pairing cancels most of it);",
        "the other columns are medians, errors and non-2xx are totals over all rounds.",
        "wrk shares the container's CPUs with nginx and gunicorn, so the ratios carry over to other",
        "machines better than the absolute numbers do.",
        "",
        "![throughput relative to gunicorn directly](benchmarks.png)",
        "",
        *table,
        "",
        "Goals:",
        "",
        *goals,
        "",
        "## The role's own speed",
        "",
        "Whole `ansible-playbook` runs from this machine, reaching the container as users reach their hosts:",
        "over SSH (pipelining, ControlPersist) as an unprivileged user with sudo. Until 0.8.0 this page",
        "reached it with `docker exec` (about a tenth of a second more per module run); both are given",
        "for the unchanged re-run and the rollback.",
        "",
        *timing,
        "",
        "Goals of whole `ansible-playbook` runs (issues 18 and 22; same host, same run):",
        "",
        *release_goals,
        "",
        "## Machine and versions",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        "",
    ]
    (out / "benchmarks.md").write_text("\n".join(document))
    print("\n".join(table + [""] + goals + [""] + timing + [""] + release_goals))
    print(f"\nWrote {out / 'benchmarks.md'} and {out / 'benchmarks.png'} in {time.monotonic() - began:.0f} s.")


if __name__ == "__main__":
    main()
