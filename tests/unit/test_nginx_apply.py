"""plugins/modules/nginx_apply.py: the site, nginx -t and the reload in one
call. Run as Ansible runs it, with nginx and systemctl replaced by scripts
that log their arguments and exit as told."""

import os
import stat

import pytest

from plugin_loader import load, run_module

apply = load("plugins/modules/nginx_apply.py")


@pytest.fixture
def host(tmp_path):
    """A PATH whose nginx -t exits with $NGINX_T_STATUS and whose systemctl
    says nginx is active and logs what it is asked to do."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    for name, body in (("nginx", 'echo "nginx $*" >> "$LOG"; [ "${NGINX_T_STATUS:-0}" = 0 ] || '
                                 '{ echo "nginx: [emerg] unknown directive in $SITE:3" >&2; exit 1; }'),
                       ("systemctl", 'echo "systemctl $*" >> "$LOG"; exit 0')):
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-enabled").mkdir()
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log),
           "SITE": str(tmp_path / "sites-available/app.conf")}
    return tmp_path, env


def call(tmp_path, env, nginx_t=0, check_mode=False, **args):
    arguments = {"site": str(tmp_path / "sites-available/app.conf"), "link": str(tmp_path / "sites-enabled/app.conf"),
                 "stamp": str(tmp_path / "stamp"), "wait": 1, **args}
    if check_mode:
        arguments["_ansible_check_mode"] = True
    return run_module("plugins/modules/nginx_apply.py", arguments, tmp_path, {**env, "NGINX_T_STATUS": str(nginx_t)})


def test_a_new_site_is_written_linked_tested_and_loaded(host):
    tmp_path, env = host
    (tmp_path / "conf.d").mkdir()
    backup = tmp_path / "conf.d/snippet.conf.1.x~"
    backup.write_text("old")
    result, status = call(tmp_path, env, content="server {}\n", remove=[str(backup)])
    assert status == 0, result
    assert result["changed"] and result["done"] == "reloaded" and result["site_changed"] and result["link_changed"]
    assert (tmp_path / "sites-available/app.conf").read_text() == "server {}\n"
    assert os.readlink(tmp_path / "sites-enabled/app.conf") == str(tmp_path / "sites-available/app.conf")
    assert (tmp_path / "log").read_text().splitlines() == [
        "nginx -t", "systemctl --quiet is-active nginx", "systemctl reload nginx"]
    assert (tmp_path / "stamp").exists() and not backup.exists()
    # Stamped last: the removals do not make a directory look newer than the reload.
    assert (tmp_path / "stamp").stat().st_mtime_ns >= max(
        path.stat().st_mtime_ns for path in (tmp_path / "conf.d", tmp_path / "sites-available", tmp_path / "sites-enabled"))
    assert sorted(path.name for path in (tmp_path / "sites-available").iterdir()) == ["app.conf"]


def test_a_rejected_site_is_taken_back_with_its_link(host):
    tmp_path, env = host
    result, status = call(tmp_path, env, content="server {}\n")
    assert status == 0, result
    (tmp_path / "stamp").unlink()
    result, status = call(tmp_path, env, nginx_t=1, content="server { typo }\n")
    assert status != 0
    assert "unknown directive in" in result["stderr"]
    assert (tmp_path / "sites-available/app.conf").read_text() == "server {}\n"
    assert sorted(path.name for path in (tmp_path / "sites-available").iterdir()) == ["app.conf"]
    assert "systemctl reload nginx" not in (tmp_path / "log").read_text().splitlines()[3:]
    assert not (tmp_path / "stamp").exists()


def test_a_first_site_nginx_rejects_leaves_neither_file_nor_link(host):
    tmp_path, env = host
    result, status = call(tmp_path, env, nginx_t=1, content="server { typo }\n")
    assert status != 0
    assert list((tmp_path / "sites-available").iterdir()) == []
    assert list((tmp_path / "sites-enabled").iterdir()) == []


def test_an_unchanged_site_is_only_tested_and_reloaded(host):
    tmp_path, env = host
    call(tmp_path, env, content="server {}\n")
    before = (tmp_path / "sites-available/app.conf").stat().st_ino
    result, status = call(tmp_path, env, content="server {}\n")
    assert status == 0, result
    assert result["changed"] and not result["site_changed"] and not result["link_changed"]
    assert (tmp_path / "sites-available/app.conf").stat().st_ino == before


def test_check_mode_reports_the_sites_diff_and_changes_nothing(host):
    tmp_path, env = host
    arguments = {"content": "server {}\n", "_ansible_diff": True}
    result, status = call(tmp_path, env, check_mode=True, **arguments)
    assert status == 0, result
    assert result["changed"] and result["diff"]["after"] == "server {}\n"
    assert not (tmp_path / "log").exists() and list((tmp_path / "sites-available").iterdir()) == []


def test_a_file_in_place_of_the_link_is_never_replaced(host):
    tmp_path, env = host
    (tmp_path / "sites-enabled/app.conf").write_text("by hand")
    result, status = call(tmp_path, env, content="server {}\n")
    assert status != 0 and "is not a link" in result["msg"]
    assert (tmp_path / "sites-enabled/app.conf").read_text() == "by hand"
    assert list((tmp_path / "sites-available").iterdir()) == []


def test_the_wait_ends_when_every_old_worker_has_exited_or_is_shutting_down(monkeypatch):
    titles = {"nginx: worker process": {11, 12}, "nginx: worker process is shutting down": set()}
    monkeypatch.setattr(apply, "workers", lambda title="nginx: worker process": titles[title])
    clock = iter(range(100))

    def sleep(_):
        titles["nginx: worker process"] = {12, 13}
        titles["nginx: worker process is shutting down"] = {12}

    assert apply.wait_for_old_workers({11, 12}, 5, sleep=sleep, now=lambda: next(clock) / 10)
    titles.update({"nginx: worker process": {11}, "nginx: worker process is shutting down": set()})
    assert not apply.wait_for_old_workers({11}, 0.5, sleep=lambda _: None, now=lambda: next(clock) / 10)


def test_the_nginx_lock_is_released_once_nginx_runs_the_change_and_kept_when_it_is_rejected(host):
    tmp_path, env = host
    lock = tmp_path / "nginx.lock"
    lock.mkdir()
    (lock / "holder").write_text("{}")
    result, status = call(tmp_path, env, nginx_t=1, content="server { typo }\n", unlock=str(lock))
    assert status != 0 and not result.get("unlocked") and (lock / "holder").exists()
    result, status = call(tmp_path, env, content="server {}\n", unlock=str(lock))
    assert status == 0 and result["unlocked"], result
    assert not lock.exists()
