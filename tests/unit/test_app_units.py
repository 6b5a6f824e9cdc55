"""plugins/modules/app_units.py: an app's process and job units made what the
run wants in one call. Run as Ansible runs it, with systemctl replaced by a
script that logs what it is asked and answers from $ACTIVE and $ENABLED."""

import os
import stat

import pytest

from plugin_loader import run_module

MARKER = '# Written by the gunicorn_uvicorn_nginx role for app "wiki"'


def unit(text):
    return f"{MARKER}\n{text}\n"


@pytest.fixture
def host(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text("""#!/bin/sh
echo "systemctl $*" >> "$LOG"
case "$1 $2" in
    "--quiet is-active") case " $ACTIVE " in *" $3 "*) exit 0;; esac; exit 3;;
    "--quiet is-enabled") case " $ENABLED " in *" $3 "*) exit 0;; esac; exit 1;;
    "list-units --all") for u in $ACTIVE; do case "$u" in ${7%%\\**}*) echo "$u loaded active running x";; esac; done;;
esac
exit 0
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    units = tmp_path / "system"
    units.mkdir()
    (units / "multi-user.target.wants").mkdir()
    return tmp_path, units


def call(host, files, running, active="", enabled="", check_mode=False):
    tmp_path, units = host
    log = tmp_path / "log"
    if log.exists():
        log.unlink()
    arguments = {"marker": MARKER, "files": files, "running": running, "directory": str(units),
                 "_ansible_diff": True}
    if check_mode:
        arguments["_ansible_check_mode"] = True
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "LOG": str(log), "ACTIVE": active, "ENABLED": enabled}
    result, status = run_module("plugins/modules/app_units.py", arguments, tmp_path, env)
    calls = log.read_text().splitlines() if log.exists() else []
    return result, status, [line for line in calls if " is-" not in line and "list-units" not in line]


def test_new_processes_and_jobs_are_written_enabled_and_started(host):
    _, units = host
    files = {"gunicorn-wiki.worker@.service": unit("worker r1"), "gunicorn-wiki.nightly.service": unit("job r1"),
             "gunicorn-wiki.nightly.timer": unit("timer")}
    running = ["gunicorn-wiki.worker@1.service", "gunicorn-wiki.worker@2.service", "gunicorn-wiki.nightly.timer"]
    result, status, calls = call(host, files, running)
    assert status == 0, result
    assert result["written"] == sorted(files) and result["started"] == running and result["enabled"] == running
    assert calls == ["systemctl daemon-reload", "systemctl --quiet enable " + " ".join(running),
                     "systemctl start " + " ".join(running)]
    assert (units / "gunicorn-wiki.worker@.service").read_text() == unit("worker r1")
    assert stat.S_IMODE((units / "gunicorn-wiki.worker@.service").stat().st_mode) == 0o644


def test_nothing_to_do_changes_nothing(host):
    _, units = host
    files = {"gunicorn-wiki.worker@.service": unit("worker r1")}
    (units / "gunicorn-wiki.worker@.service").write_text(unit("worker r1"))
    running = ["gunicorn-wiki.worker@1.service"]
    result, status, calls = call(host, files, running, active=running[0], enabled=running[0])
    assert status == 0 and not result["changed"] and calls == []


def test_a_new_release_restarts_running_processes_but_never_a_job_in_progress(host):
    _, units = host
    for name, text in (("gunicorn-wiki.worker@.service", "worker r1"), ("gunicorn-wiki.nightly.service", "job r1"),
                       ("gunicorn-wiki.nightly.timer", "timer")):
        (units / name).write_text(unit(text))
    files = {"gunicorn-wiki.worker@.service": unit("worker r2"), "gunicorn-wiki.nightly.service": unit("job r2"),
             "gunicorn-wiki.nightly.timer": unit("timer")}
    running = ["gunicorn-wiki.worker@1.service", "gunicorn-wiki.nightly.timer"]
    active = " ".join(running + ["gunicorn-wiki.nightly.service"])
    result, status, calls = call(host, files, running, active=active, enabled=" ".join(running))
    assert status == 0, result
    assert result["restarted"] == ["gunicorn-wiki.worker@1.service"] and result["stopped"] == []
    assert calls == ["systemctl daemon-reload", "systemctl restart gunicorn-wiki.worker@1.service"]


def test_fewer_copies_and_removed_processes_and_jobs_are_stopped_disabled_and_removed(host):
    _, units = host
    for name in ("gunicorn-wiki.worker@.service", "gunicorn-wiki.mailer@.service", "gunicorn-wiki.nightly.service",
                 "gunicorn-wiki.nightly.timer"):
        (units / name).write_text(unit("x"))
    (units / "multi-user.target.wants/gunicorn-wiki.mailer@1.service").symlink_to(
        units / "gunicorn-wiki.mailer@.service")
    running = ["gunicorn-wiki.worker@1.service"]
    active = "gunicorn-wiki.worker@1.service gunicorn-wiki.worker@2.service gunicorn-wiki.nightly.timer"
    result, status, calls = call(host, {"gunicorn-wiki.worker@.service": unit("x")}, running, active=active,
                                 enabled=active + " gunicorn-wiki.mailer@1.service")
    assert status == 0, result
    stopped = ["gunicorn-wiki.mailer@1.service", "gunicorn-wiki.nightly.timer", "gunicorn-wiki.worker@2.service"]
    assert result["stopped"] == stopped
    assert result["removed"] == ["gunicorn-wiki.mailer@.service", "gunicorn-wiki.nightly.service",
                                 "gunicorn-wiki.nightly.timer"]
    assert calls == ["systemctl stop " + " ".join(stopped), "systemctl --quiet disable " + " ".join(stopped),
                     "systemctl daemon-reload"]
    assert sorted(os.listdir(units)) == ["gunicorn-wiki.worker@.service", "multi-user.target.wants"]


def test_files_of_other_apps_and_units_are_never_touched(host):
    _, units = host
    (units / "gunicorn-shop.worker@.service").write_text('# Written by the gunicorn_uvicorn_nginx role for app "shop"\n')
    (units / "gunicorn-wiki-blue.service").write_text("# web unit\n")
    (units / "gunicorn-wiki.evil@.service").symlink_to(units / "gunicorn-wiki-blue.service")
    result, status, calls = call(host, {}, [])
    assert status == 0 and not result["changed"] and calls == []
    assert len(os.listdir(units)) == 4


def test_a_unit_file_not_written_for_the_app_is_not_replaced(host):
    _, units = host
    (units / "gunicorn-wiki.worker@.service").write_text("# the admin's own\n")
    result, status, _ = call(host, {"gunicorn-wiki.worker@.service": unit("x")}, ["gunicorn-wiki.worker@1.service"])
    assert status != 0 and "was not written for this app" in result["msg"]
    assert (units / "gunicorn-wiki.worker@.service").read_text() == "# the admin's own\n"


def test_check_mode_reports_the_diff_and_changes_nothing(host):
    _, units = host
    result, status, calls = call(host, {"gunicorn-wiki.worker@.service": unit("x")},
                                 ["gunicorn-wiki.worker@1.service"], check_mode=True)
    assert status == 0 and result["changed"] and result["diff"][0]["after"] == unit("x")
    assert calls == [] and sorted(os.listdir(units)) == ["multi-user.target.wants"]


@pytest.mark.parametrize(("files", "running"), [
    ({"gunicorn-wiki.worker@.service": "no marker\n"}, []),
    ({"../evil.service": unit("x")}, []),
    ({}, ["gunicorn-wiki.worker@1.service"]),
])
def test_files_without_the_marker_bad_names_and_units_without_a_file_are_refused(host, files, running):
    result, status, calls = call(host, files, running)
    assert status != 0 and calls == []
