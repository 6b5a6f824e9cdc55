"""plugins/modules/host_state.py: the one read of a host's state per run, and
the deploy lock it takes first. Its helpers on real directories, and the
module itself run as Ansible runs it (a JSON file of arguments), no host needed."""

import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import time

import pytest

from plugin_loader import load, run_module

state = load("plugins/modules/host_state.py")


def call(tmp_path, check_mode=False, **args):
    """The module as Ansible runs it: (its parsed result, its exit status)."""
    args = {"app_name": "app", "app_root": str(tmp_path / "root"), **args}
    if check_mode:
        args["_ansible_check_mode"] = True
    return run_module("plugins/modules/host_state.py", args, tmp_path)


def holder_of(lock):
    return json.loads((lock / "holder").read_text())


# Runs as the controller_run lookup describes them.
ANN = {"id": "laptop/boot-1/100:5000", "controller": "laptop/boot-1", "pid": 100, "start": 5000}
BOB = {"id": "laptop/boot-1/200:6000", "controller": "laptop/boot-1", "pid": 200, "start": 6000}
CI = {"id": "ci/boot-9/300:7000", "controller": "ci/boot-9", "pid": 300, "start": 7000}


def nothing_on_host():
    return set()


def test_lock_is_taken_with_its_holder_and_released(tmp_path):
    lock = tmp_path / "app.deploy"
    assert state.take_lock(str(lock), "ann@laptop since now", 5, ANN, on_host=nothing_on_host) == (0, None)
    assert holder_of(lock) == {"holder": "ann@laptop since now", **ANN}
    state.release_lock(str(lock))
    assert not lock.exists()


def test_a_held_lock_is_waited_for_then_refused_naming_its_holder(tmp_path):
    lock = tmp_path / "app.deploy"
    state.take_lock(str(lock), "ann@laptop", 5, ANN, on_host=nothing_on_host)
    slept = []
    alive = {**BOB, "alive": ["100:5000", "200:6000"]}
    with pytest.raises(state.LockTimeout) as refused:
        state.take_lock(str(lock), "bob@laptop", 3, alive, sleep=slept.append, on_host=nothing_on_host)
    assert refused.value.holder == "ann@laptop" and refused.value.waited == 3 and len(slept) == 3
    assert holder_of(lock)["holder"] == "ann@laptop"


def test_a_lock_freed_while_waiting_is_taken(tmp_path):
    lock = tmp_path / "app.deploy"
    state.take_lock(str(lock), "ann@laptop", 5, ANN, on_host=nothing_on_host)
    waited = state.take_lock(str(lock), "bob@laptop", 5, {**BOB, "alive": ["100:5000"]},
                             sleep=lambda _: state.release_lock(str(lock)), on_host=nothing_on_host)
    assert waited == (1, None)
    assert holder_of(lock)["holder"] == "bob@laptop"


def test_the_lock_of_a_run_whose_ansible_playbook_ended_on_this_controller_is_taken_over_at_once(tmp_path):
    lock = tmp_path / "app.deploy"
    state.take_lock(str(lock), "ann@laptop", 5, ANN, on_host=nothing_on_host)
    # Ann's run was killed: its process is not among those alive here.
    waited, over = state.take_lock(str(lock), "bob@laptop", 0, {**BOB, "alive": ["200:6000", "100:4999"]},
                                   on_host=nothing_on_host)
    assert waited == 0
    assert over == {"holder": "ann@laptop",
                    "reason": "its ansible-playbook (process 100 on laptop/boot-1) has ended"}
    assert holder_of(lock)["id"] == BOB["id"]


def test_a_run_with_a_process_left_on_the_host_is_never_over(tmp_path):
    lock = tmp_path / "app.deploy"
    state.take_lock(str(lock), "ann@laptop", 5, ANN, on_host=nothing_on_host)
    os.utime(lock / "holder", (0, 0))
    # Its ansible-playbook ended and its lease expired, but its build still runs on the host.
    with pytest.raises(state.LockTimeout):
        state.take_lock(str(lock), "bob@laptop", 0, {**BOB, "alive": []}, lease=10,
                        on_host=lambda: {ANN["id"]})
    with pytest.raises(state.LockTimeout):
        state.take_lock(str(lock), "ci", 0, {**CI, "alive": []}, lease=10, on_host=lambda: {ANN["id"]})
    assert holder_of(lock)["id"] == ANN["id"]


def test_the_lock_of_a_run_from_another_controller_is_taken_over_once_its_lease_expired(tmp_path):
    lock = tmp_path / "app.deploy"
    state.take_lock(str(lock), "ann@laptop", 5, ANN, on_host=nothing_on_host)
    with pytest.raises(state.LockTimeout):
        state.take_lock(str(lock), "ci", 0, {**CI, "alive": []}, lease=60, on_host=nothing_on_host)
    renewed = time.time() - 61
    os.utime(lock / "holder", (renewed, renewed))
    waited, over = state.take_lock(str(lock), "ci", 0, {**CI, "alive": []}, lease=60, on_host=nothing_on_host)
    assert over["holder"] == "ann@laptop"
    assert over["reason"].startswith("it has not renewed the lock for 6") and "(gunicorn_lock_lease: 60 s)" in over["reason"]


def test_a_lock_of_an_earlier_version_or_without_a_holder_goes_by_its_age(tmp_path):
    lock = tmp_path / "app.deploy"
    lock.mkdir()
    (lock / "holder").write_text("someone\n")
    with pytest.raises(state.LockTimeout) as refused:
        state.take_lock(str(lock), "bob", 0, {**BOB, "alive": []}, lease=60, on_host=nothing_on_host)
    assert refused.value.holder == "someone"
    os.utime(lock / "holder", (0, 0))
    assert state.take_lock(str(lock), "bob", 0, {**BOB, "alive": []}, lease=60, on_host=nothing_on_host)[1][
        "holder"] == "someone"
    state.release_lock(str(lock))
    lock.mkdir()
    os.utime(lock, (0, 0))
    assert state.take_lock(str(lock), "bob", 0, BOB, lease=60, on_host=nothing_on_host)[1]["holder"] == "?"


def test_a_run_renews_its_own_lock_and_learns_when_another_took_it(tmp_path):
    lock = tmp_path / "app.deploy"
    state.take_lock(str(lock), "ann@laptop", 5, ANN, on_host=nothing_on_host)
    os.utime(lock / "holder", (0, 0))
    state.renew_lock(str(lock), ANN)
    assert time.time() - (lock / "holder").stat().st_mtime < 5
    with pytest.raises(OSError, match="no longer this run's: ann@laptop holds it"):
        state.renew_lock(str(lock), BOB)
    state.release_lock(str(lock))
    with pytest.raises(OSError, match="no longer this run's: nobody holds it"):
        state.renew_lock(str(lock), ANN)


def test_the_runs_on_the_host_are_read_from_their_environment(tmp_path):
    proc = tmp_path / "proc"
    for pid, environ in (("1", b"PATH=/bin\0GUNICORN_UVICORN_NGINX_RUN=laptop/b/1:2\0"), ("22", b"HOME=/\0"),
                         ("self", b"GUNICORN_UVICORN_NGINX_RUN=no\0")):
        (proc / pid).mkdir(parents=True)
        (proc / pid / "environ").write_bytes(environ)
    (proc / "33").mkdir()
    assert state.runs_on_host(str(proc)) == {"laptop/b/1:2"}


def test_nginx_is_stale_when_a_file_or_directory_is_newer_than_its_last_reload(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "unit_active", lambda name: True)
    tree = tmp_path / "nginx"
    (tree / "sites-enabled").mkdir(parents=True)
    (tree / "nginx.conf").write_text("events {}\n")
    stamp = tmp_path / "stamp"
    stamp.touch()
    for path in (tree, tree / "sites-enabled", tree / "nginx.conf"):
        os.utime(path, (time.time() - 10, time.time() - 10))
    assert state.nginx_stale(str(stamp), str(tree)) is False
    (tree / "sites-enabled" / "app.conf").symlink_to("/nowhere")
    assert state.nginx_stale(str(stamp), str(tree)) is True
    stamp.touch()
    assert state.nginx_stale(str(stamp), str(tree)) is False
    monkeypatch.setattr(state, "unit_active", lambda name: False)
    (tree / "nginx.conf").write_text("events { }\n")
    assert state.nginx_stale(str(stamp), str(tree)) is False


def test_dangling_links_are_found(tmp_path):
    (tmp_path / "site.conf").write_text("")
    (tmp_path / "a.conf").symlink_to(tmp_path / "site.conf")
    (tmp_path / "b.conf").symlink_to(tmp_path / "gone.conf")
    assert state.dangling_links([str(tmp_path), str(tmp_path / "none")]) == [str(tmp_path / "b.conf")]


def test_the_locks_directory_is_made_private_and_refused_when_others_may_write_it(tmp_path):
    lock = tmp_path / "locks" / "app.deploy"
    state.take_lock(str(lock), "ann@laptop", 0, on_host=nothing_on_host)
    assert stat.S_IMODE((tmp_path / "locks").stat().st_mode) == 0o700
    state.release_lock(str(lock))
    (tmp_path / "locks").chmod(0o777)
    with pytest.raises(OSError, match="must be a directory that only"):
        state.take_lock(str(lock), "bob@ci", 0)
    assert not lock.exists()
    shutil.rmtree(tmp_path / "locks")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "locks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="must be a directory that only"):
        state.take_lock(str(lock), "bob@ci", 0)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_only_finished_builds_count(tmp_path):
    for name, marked in [("aaa", True), ("bbb", False), (".ccc", True)]:
        (tmp_path / name).mkdir()
        if marked:
            (tmp_path / name / "release.json").write_text("{}")
    (tmp_path / "file").write_text("")
    assert state.complete(str(tmp_path), "release.json") == ["aaa"]
    assert state.complete(str(tmp_path / "missing"), "release.json") == []
    # A record that is a link, or one the app wrote (its release commands run in the release), is no seal.
    (tmp_path / "ddd").mkdir()
    (tmp_path / "ddd/release.json").symlink_to(tmp_path / "aaa/release.json")
    assert state.complete(str(tmp_path), "release.json") == ["aaa"]
    if os.geteuid() == 0:
        for path in (tmp_path / "eee", tmp_path / "fff"):
            path.mkdir()
            (path / "release.json").write_text("{}")
        os.chown(tmp_path / "eee/release.json", 65534, 65534)
        os.chown(tmp_path / "fff", 65534, 65534)
        assert state.complete(str(tmp_path), "release.json") == ["aaa"]


def test_checksums_only_of_regular_files_and_never_blocking_on_a_fifo(tmp_path):
    (tmp_path / "unit").write_bytes(b"[Unit]\n")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "unit")
    assert state.sha1_of(str(tmp_path / "unit")) == hashlib.sha1(b"[Unit]\n").hexdigest()
    assert state.sha1_of(str(tmp_path / "link")) == state.sha1_of(str(tmp_path / "unit"))
    for other in ("fifo", "missing", "."):
        assert state.sha1_of(str(tmp_path / other)) is None


def test_marked_files_are_the_apps_own_conf_files(tmp_path):
    marker = '# Written by the gunicorn_uvicorn_nginx role for app "shop"'
    conf, snippets = tmp_path / "conf.d", tmp_path / "snippets"
    conf.mkdir()
    (conf / "mine.conf").write_text("# header\n" + marker + ": nginx_snippets mine\ngzip on;\n")
    (conf / "other.conf").write_text('# Written by the gunicorn_uvicorn_nginx role for app "shop2": x\n')
    (conf / "quoted.conf").write_text("# " + marker + ": not at the start of a line\n")
    (conf / "mine.conf.removed~").write_text(marker + ": a stash, not a snippet\n")
    (conf / "link.conf").symlink_to(conf / "mine.conf")
    os.mkfifo(conf / "fifo.conf")
    assert state.marked_files(marker, [str(conf), str(snippets)]) == [str(conf / "mine.conf")]


def test_link_targets_are_read_never_followed(tmp_path):
    (tmp_path / "site.conf").write_text("")
    (tmp_path / "enabled.conf").symlink_to(tmp_path / "site.conf")
    (tmp_path / "dangling.conf").symlink_to(tmp_path / "gone.conf")
    assert state.link_target(str(tmp_path / "enabled.conf")) == str(tmp_path / "site.conf")
    assert state.link_target(str(tmp_path / "dangling.conf")) == str(tmp_path / "gone.conf")
    assert state.link_target(str(tmp_path / "site.conf")) is None
    assert state.link_target(str(tmp_path / "missing.conf")) is None


def test_serving_state_reads_the_slot_and_current(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(state, "unit_active", lambda name: asked.append(name) or True)
    assert state.serving_state("app", str(tmp_path)) == {
        "slot": "", "release": "", "serving": False, "active": False, "history": []}
    assert asked == []
    (tmp_path / "releases/abc123").mkdir(parents=True)
    (tmp_path / "current").symlink_to("releases/abc123")
    (tmp_path / "slot").write_text("green\n")
    (tmp_path / "history").write_text("9f0e1d\nabc123\n")
    assert state.serving_state("app", str(tmp_path)) == {
        "slot": "green", "release": "abc123", "serving": True, "active": True, "history": ["9f0e1d", "abc123"]}
    assert asked == ["gunicorn-app-green.service"]
    # Anything but blue or green names no unit at all.
    (tmp_path / "slot").write_text("green; reboot\n")
    assert state.serving_state("app", str(tmp_path))["slot"] == ""


def test_a_dangling_current_names_its_release_but_serves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "unit_active", lambda name: False)
    (tmp_path / "current").symlink_to("releases/gone")
    assert state.serving_state("app", str(tmp_path))["release"] == "gone"
    assert state.serving_state("app", str(tmp_path))["serving"] is False


def test_missing_packages_from_dpkgs_status(monkeypatch):
    monkeypatch.setattr(state, "run", lambda argv: (1, "nginx ii \ndbus un \npasswd ii \n", ""))
    assert state.missing_packages(["nginx", "dbus", "passwd", "certbot"]) == ["dbus", "certbot"]
    monkeypatch.setattr(state, "run", lambda argv: (127, "", "No such file"))
    assert state.missing_packages(["nginx"]) == ["nginx"]
    assert state.missing_packages([]) == []


def test_a_missing_command_is_status_127():
    assert state.run(["/nonexistent/command"])[0] == 127


def test_the_user_is_ours_and_ok_only_as_the_role_makes_it(monkeypatch):
    me = pwd.getpwuid(os.getuid())
    assert state.account_state("no-such-user-here", "root", "/srv/app", "app") == {
        "user_exists": False, "user_ours": False, "user_ok": False}
    assert state.account_state(None, None, "/srv/app", "app")["user_exists"] is False
    assert not state.account_state(me.pw_name, "no-such-group-here", "/srv/app", "app")["user_ok"]

    class Account:
        pw_gid, pw_shell, pw_dir, pw_gecos = 0, "/usr/sbin/nologin", "/srv/app", "gunicorn-uvicorn-nginx app app"

    monkeypatch.setattr(state.pwd, "getpwnam", lambda name: Account)
    assert state.account_state("app", "root", "/srv/app", "app") == {
        "user_exists": True, "user_ours": True, "user_ok": True}
    # Ours, but its home or shell are to be mended.
    assert state.account_state("app", "root", "/srv/other", "app") == {
        "user_exists": True, "user_ours": True, "user_ok": False}
    # Another app's account, or a login user's: never ours.
    assert not state.account_state("app", "root", "/srv/app", "shop")["user_ours"]
    Account.pw_gecos, Account.pw_shell, Account.pw_dir = "Bob", "/bin/bash", "/home/bob"
    assert state.account_state("bob", "root", "/srv/bob", "bob") == {
        "user_exists": True, "user_ours": False, "user_ok": False}
    # Made before the role wrote its comment: ours only in exactly its shape.
    Account.pw_gecos, Account.pw_shell, Account.pw_dir = "", "/usr/sbin/nologin", "/srv/app"
    assert state.account_state("app", "root", "/srv/app", "app") == {
        "user_exists": True, "user_ours": True, "user_ok": False}
    Account.pw_shell = "/bin/sh"
    assert not state.account_state("app", "root", "/srv/app", "app")["user_ours"]


@pytest.fixture
def safe_way(monkeypatch):
    """tmp_path lies under the world-writable /tmp; the ownership tests below
    are about the root's contents (test_a_world_writable_way_... about that)."""
    monkeypatch.setattr(state, "unsafe_way", lambda path: None)


def test_an_app_root_is_ours_with_our_marker_or_only_what_the_role_makes(tmp_path, safe_way):
    root = tmp_path / "root"
    assert state.root_state(str(root), "app") == {"exists": False, "marker": None, "foreign": [], "ours": True,
                                                  "unsafe": None}
    root.mkdir()
    assert state.root_state(str(root), "app")["ours"]
    for name in ("releases", "venvs", "history", "slot"):
        (root / name).mkdir()
    (root / "current").symlink_to("releases/abc")
    assert state.root_state(str(root), "app")["ours"]
    # Something the role does not make: someone else's directory.
    (root / "backup.sql").write_text("")
    assert state.root_state(str(root), "app") == {"exists": True, "marker": None, "foreign": ["backup.sql"],
                                                  "ours": False, "unsafe": None}
    # The marker decides when there is one.
    (root / ".gunicorn-uvicorn-nginx").write_text("app\n")
    assert state.root_state(str(root), "app")["ours"]
    assert state.root_state(str(root), "shop") == {"exists": True, "marker": "app", "foreign": ["backup.sql"],
                                                   "ours": False, "unsafe": None}


def test_a_file_or_link_as_the_app_root_is_never_ours(tmp_path, safe_way):
    (tmp_path / "file").write_text("")
    assert not state.root_state(str(tmp_path / "file"), "app")["ours"]


def test_a_world_writable_way_or_a_link_makes_the_root_unsafe(tmp_path):
    way = tmp_path / "shared"
    way.mkdir()
    os.chmod(tmp_path, 0o755)
    way.chmod(0o777)
    assert state.unsafe_way(str(way / "app")) == str(way)
    assert not state.root_state(str(way / "app"), "app")["ours"]
    way.chmod(0o755)
    (way / "real").mkdir()
    (way / "app").symlink_to(way / "real")
    assert state.unsafe_way(str(way / "app")) == str(way / "app")
    # /tmp itself is world-writable: no app root belongs under it.
    assert state.unsafe_way("/tmp/app") == "/tmp"


def test_the_module_takes_the_lock_and_reads_the_state(tmp_path):
    lock = tmp_path / "app.deploy"
    (tmp_path / "root/releases/abc/").mkdir(parents=True)
    (tmp_path / "root/releases/abc/release.json").write_text("{}")
    (tmp_path / "unit.service").write_text("[Service]\n")
    result, status = call(tmp_path, lock_dir=str(lock), lock_holder="ann@laptop", paths=[str(tmp_path / "nope")],
                          checksums=[str(tmp_path / "unit.service"), str(tmp_path / "gone.service")])
    assert status == 0, result
    assert result["changed"] is False
    assert result["lock_taken"] == str(lock) and result["lock_waited"] == 0 and result["lock_taken_over"] is None
    assert holder_of(lock) == {"holder": "ann@laptop"}
    assert result["releases"] == ["abc"] and result["venvs"] == []
    assert result["exists"] == {str(tmp_path / "nope"): False}
    assert len(result["sha1"][str(tmp_path / "unit.service")]) == 40
    assert result["sha1"][str(tmp_path / "gone.service")] is None
    assert result["cpus"] == len(os.sched_getaffinity(0))
    assert result["python"].count(".") == 1 and result["python_version"].startswith(result["python"] + ".")
    assert result["root"]["exists"] and result["root"]["foreign"] == []
    assert result["user_exists"] is False and result["user_ours"] is False

    # A second run waits (here: not at all), fails naming the holder, and leaves the lock as it was.
    result, status = call(tmp_path, lock_dir=str(lock), lock_name="deploy lock of app", lock_holder="bob@ci",
                          lock_timeout=0)
    assert status != 0
    assert "Another run holds the deploy lock of app (ann@laptop); waited 0 s" in result["msg"]
    assert "If you know that no run is going on, remove %s." % lock in result["msg"]
    assert result["lock_taken"] is None
    assert holder_of(lock) == {"holder": "ann@laptop"}

    # A run from another controller whose lease expired: taken over, with a warning naming it.
    os.utime(lock / "holder", (0, 0))
    result, status = call(tmp_path, lock_dir=str(lock), lock_holder="bob@ci", lock_lease=60,
                          lock_owner={**CI, "alive": []}, renew=[])
    assert status == 0, result
    assert result["lock_taken_over"]["holder"] == "ann@laptop"
    assert "Took over the deploy lock of a run that is over (ann@laptop)" in json.dumps(result["warnings"])
    assert holder_of(lock)["id"] == CI["id"]
    # It renews its lock; another run's renewal fails.
    result, status = call(tmp_path, lock_owner=CI, renew=[str(lock)])
    assert status == 0, result
    result, status = call(tmp_path, lock_owner=ANN, renew=[str(lock)])
    assert status != 0 and "no longer this run's: bob@ci holds it" in result["msg"]


def test_check_mode_takes_no_lock(tmp_path):
    lock = tmp_path / "app.deploy"
    result, status = call(tmp_path, check_mode=True, lock_dir=str(lock))
    assert status == 0, result
    assert result["lock_taken"] is None and not lock.exists()


def test_host_wide_nginx_settings_are_recorded_per_app_and_a_disagreement_is_named(tmp_path):
    records = tmp_path / "settings"

    def settings(app, connections, **flags):
        spec = {"dir": str(records), "app": app, "values": {"nginx_worker_connections": connections,
                                                             "nginx_ipv6": True}, "record": True, **flags}
        return state.host_settings(spec, flags.pop("check_mode", False))

    assert settings("shop", 1024) == []
    assert json.loads((records / "shop.json").read_text()) == {"nginx_ipv6": True, "nginx_worker_connections": 1024}
    assert stat.S_IMODE(records.stat().st_mode) == 0o700
    assert settings("blog", 1024) == []
    # The blog wants another value: refused, naming the shop; nothing recorded.
    assert settings("blog", 4096) == [{"app": "shop", "name": "nginx_worker_connections", "theirs": 1024,
                                       "ours": 4096}]
    assert json.loads((records / "blog.json").read_text())["nginx_worker_connections"] == 1024
    # Made the host's values: recorded for every app, whose next deploy must agree.
    assert settings("blog", 4096, override=True) == [{"app": "shop", "name": "nginx_worker_connections",
                                                      "theirs": 1024, "ours": 4096}]
    assert {json.loads(path.read_text())["nginx_worker_connections"] for path in records.iterdir()} == {4096}
    assert settings("shop", 1024)[0]["app"] == "blog"
    assert settings("shop", 4096) == []
    # Check mode records nothing.
    assert settings("wiki", 64, check_mode=True)[0]["theirs"] == 4096
    assert not (records / "wiki.json").exists()


def test_the_app_a_snippet_was_written_for_is_read_from_its_marker(tmp_path):
    (tmp_path / "shop.conf").write_text('# Written by the gunicorn_uvicorn_nginx role for app "shop": nginx_snippets '
                                        'item "gzip".\ngzip on;\n')
    (tmp_path / "hand.conf").write_text("# mine\n")
    (tmp_path / "link.conf").symlink_to(tmp_path / "shop.conf")
    assert [state.written_for(str(tmp_path / name)) for name in ("shop.conf", "hand.conf", "link.conf", "none")] == [
        "shop", None, None, None]


def test_the_release_id_holds_the_environment_only_through_the_hosts_key(tmp_path):
    key = tmp_path / "keys/app.key"
    digest = hashlib.sha256(b'{"DB_PASSWORD": "hunter2"}').hexdigest()
    # Check mode makes no key.
    assert state.env_mac(str(key), digest, check_mode=True) is None and not key.exists()
    mac = state.env_mac(str(key), digest)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert len(key.read_bytes()) == 32
    assert state.env_mac(str(key), digest) == mac != digest
    assert state.env_mac(str(key), hashlib.sha256(b"{}").hexdigest()) != mac
    # Another host (another key): another value.
    assert state.env_mac(str(tmp_path / "other.key"), digest) != mac


def test_the_app_s_process_and_job_unit_files_are_listed_by_their_prefix(tmp_path):
    units = tmp_path / "system"
    units.mkdir()
    for name in ("gunicorn-app.worker@.service", "gunicorn-app.nightly.timer", "gunicorn-app-blue.service",
                 "gunicorn-apple.x@.service"):
        (units / name).write_text("x")
    result, status = call(tmp_path, unit_prefix="gunicorn-app.", unit_dir=str(units))
    assert status == 0, result
    assert result["unit_files"] == ["gunicorn-app.nightly.timer", "gunicorn-app.worker@.service"]
    assert call(tmp_path)[0]["unit_files"] == []


def test_release_records_are_read_only_for_the_releases_asked_and_only_as_json(tmp_path):
    for name, text in (("abc123", '{"id": "abc123", "venv": "v1"}'), ("bad", "not json"), ("other", "{}")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "release.json").write_text(text)
    assert state.release_records(str(tmp_path), ["abc123", "bad", "gone"]) == {
        "abc123": {"id": "abc123", "venv": "v1"}, "bad": None, "gone": None}


def test_names_resolve_like_getent_ahosts_each_address_once_in_the_resolvers_order():
    answers = [(10, 1, 6, "app1", ("fd57::11", 0, 0, 0)), (10, 2, 17, "", ("fd57::11", 0, 0, 0)),
               (2, 1, 6, "", ("172.30.57.11", 0)), (2, 3, 0, "", ("172.30.57.11", 0))]
    asked = []

    def lookup(*question):
        asked.append(question)
        return answers

    assert state.resolve("app1", lookup) == ["fd57::11", "172.30.57.11"]
    assert asked == [("app1", None, state.socket.AF_UNSPEC, 0, 0, state.RESOLVE_FLAGS)]


def test_a_name_that_does_not_resolve_has_no_address():
    def lookup(*question):
        raise state.socket.gaierror(-2, "Name or service not known")

    assert state.resolve("nowhere.invalid", lookup) == []
    assert state.resolve("localhost") in (["127.0.0.1"], ["::1", "127.0.0.1"], ["127.0.0.1", "::1"])


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_a_certificate_is_read_for_its_issuer_names_and_time_left(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "certificate.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-noenc", "-days", "30", "-subj", "/CN=test CA", "-addext", "subjectAltName=DNS:shop.test,DNS:a.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    read = state.certificate(str(cert))
    assert "test CA" in read["issuer"] and read["names"] == ["shop.test", "a.test"]
    assert 29 * 86400 < read["seconds_left"] <= 30 * 86400
    # No certificate, not one, or a link: nothing to report.
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    (tmp_path / "link.pem").symlink_to(cert)
    assert [state.certificate(str(tmp_path / name)) for name in ("none.pem", "junk.pem", "link.pem")] == [None] * 3


def test_calendars_are_checked_by_the_host_s_systemd_only_when_there_are_some(monkeypatch):
    asked = []

    def run(argv):
        asked.append(argv)
        if "Mon..Fri 8" in argv:
            return 1, "", "Failed to parse calendar specification 'Mon..Fri 8': Invalid argument\n"
        return 0, "  Original form: daily\n", ""

    monkeypatch.setattr(state, "run", run)
    assert state.calendar_error([]) == "" and asked == []
    assert state.calendar_error(["daily"]) == ""
    assert state.calendar_error(["daily", "Mon..Fri 8"]) == (
        "Failed to parse calendar specification 'Mon..Fri 8': Invalid argument")
    assert asked[-1] == ["systemd-analyze", "calendar", "daily", "Mon..Fri 8"]
    # A host without systemd-analyze refuses rather than passes.
    monkeypatch.setattr(state, "run", lambda argv: (127, "", "No such file or directory"))
    assert state.calendar_error(["daily"]) == "No such file or directory"
