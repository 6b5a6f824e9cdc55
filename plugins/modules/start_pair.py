#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Start a release's unit pair beside the serving one, ask it for its health
path and, once it answers, record it as the release that serves.

One module run for what were four tasks (the unit files, the start, a polling
uri task, the records): each task costs about a third of a second before it
does anything, and a release switch or a rollback runs them all. A pair that
an interrupted run left running starts over: its gunicorn is stopped, its
socket renewed, then gunicorn started (Type=notify: systemd returns once
gunicorn's master is ready). Then the health path is requested directly from
the new gunicorn, over its unix socket or TCP, with the site's Host header and
no redirect followed, until it answers 2xx or 3xx, its unit stops (an app
that does not import: its workers never boot) or the time is up.
"""

DOCUMENTATION = r"""
module: start_pair
short_description: Start a gunicorn unit pair on a renewed socket, wait until it answers, record it as serving
description:
  - Internal to the role gunicorn_uvicorn_nginx (tasks/start.yml).
  - Writes the pair's unit files that differ (each atomically, root's, 0644; a link at a name is replaced, never
    followed) and reloads systemd when it has files it did not load.
  - Fails naming the systemctl step that failed, or the last answer of the health path, or that the unit stopped.
  - With I(record), once the pair answers, starts it at boot and writes the app root's records (history,
    history.previous, slot, current), each by rename(2).
  - In check mode, only says which unit files it would write.
options:
  unit: {type: str, required: true, description: The gunicorn service of the pair.}
  socket: {type: str, required: true, description: Its socket unit.}
  files: {type: dict, default: {}, description: The pair's unit files, path to content.}
  check:
    type: list
    elements: str
    default: []
    description:
      - A command (argv) run only when the pair did not start or answer (the role's import check of a release
        built earlier, which may now meet other settings); if it fails too, its output, after I(check_failure), is
        the failure's message (gunicorn's own error, which the unit's journal buries under a traceback). A pair
        that answers has passed it, as its gunicorn imported the app with the same settings.
  check_failure: {type: str, default: The check failed., description: What the failure of I(check) means.}
  path: {type: str, required: true, description: The health path (gunicorn_health_path).}
  unix_socket: {type: path, description: The socket to ask; without it, I(address) and I(port).}
  address: {type: str, default: 127.0.0.1, description: The TCP address to ask (brackets allowed for IPv6).}
  port: {type: int, default: 8000, description: The TCP port to ask.}
  host: {type: str, required: true, description: The Host header (the site's name).}
  timeout: {type: int, default: 30, description: Seconds to wait for a 2xx or 3xx answer.}
  record:
    type: dict
    description:
      - "The records to write once the pair answers: C(root) (the app root), C(release) (its id), C(slot) (the
        pair), C(rollback) (true: the history's last release, the one left, is taken off it)."
"""

RETURN = r"""
status: {description: The health path's last HTTP status (-1 for no answer), type: int}
msg: {description: What it answered or why nothing answered, type: str}
written: {description: The unit files it wrote, type: list, elements: str}
history: {description: The history it recorded (with I(record)), type: list, elements: str}
"""

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.atomic import (
    WriteError, current, write_files)
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.health import connector, wait_healthy


class StepFailed(Exception):
    pass


def systemctl(*args):
    run = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise StepFailed(f"systemctl {' '.join(args)} failed: {run.stderr.strip()}")
    return run.stdout


def stopped(unit):
    """None while UNIT runs, else why it no longer does (wait_healthy's question)."""
    run = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, check=False)
    state = run.stdout.strip()
    return None if state in ("active", "reloading") else (
        f"{unit} stopped before it answered ({state}): gunicorn could not start or load the app")


def explained(params, message):
    """Why the pair did not start or answer: the check's failure when it
    fails too (it says what gunicorn could not load), else MESSAGE."""
    if params["check"]:
        run = subprocess.run(params["check"], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            return "%s\n%s" % (params["check_failure"], (run.stdout + "\n" + run.stderr).strip())
    return message


def recorded_history(before, release, rollback):
    """The history's new lines: a rollback takes the release it leaves off the
    end (the next rollback goes further back); the release ends it, once."""
    lines = [line for line in before.split("\n") if line]
    if rollback and lines:
        lines.pop()
    if not lines or lines[-1] != release:
        lines.append(release)
    return lines


def staged(path, data):
    """PATH + ".new" with DATA, root's 0644 (a name the app root's check knows:
    a run stopped here leaves nothing foreign), ready to be renamed."""
    new = f"{path}.new"
    if os.path.lexists(new):
        os.unlink(new)
    descriptor = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return new


def record(root, release, slot, rollback):
    """Write the app root's records of what serves. All is written beside
    them first, then renamed over them (current, history, slot): what fails
    fails before any record changed. The history's previous content stays
    beside it (tasks/nginx.yml puts it back if nginx rejects the switch).
    Returns the new history."""
    history = os.path.join(root, "history")
    _, before = current(history)
    before = before or b""
    os.rename(staged(f"{history}.previous", before), f"{history}.previous")
    lines = recorded_history(before.decode(), release, rollback)
    current_link = os.path.join(root, "current")
    if os.path.lexists(f"{current_link}.new"):
        os.unlink(f"{current_link}.new")
    os.symlink(f"releases/{release}", f"{current_link}.new")
    # The link first: renaming it is the one that can meet what rename(2)
    # refuses (a directory at its name).
    renames = [(f"{current_link}.new", current_link),
               (staged(history, "".join(f"{line}\n" for line in lines).encode()), history),
               (staged(os.path.join(root, "slot"), f"{slot}\n".encode()), os.path.join(root, "slot"))]
    for new, path in renames:
        os.rename(new, path)
    return lines


def main():
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "socket": {"type": "str", "required": True},
            "files": {"type": "dict", "default": {}},
            "check": {"type": "list", "elements": "str", "default": []},
            "check_failure": {"type": "str", "default": "The check failed."},
            "path": {"type": "str", "required": True},
            "unix_socket": {"type": "path"},
            "address": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 8000},
            "host": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 30},
            "record": {"type": "dict", "options": {
                "root": {"type": "path", "required": True},
                "release": {"type": "str", "required": True},
                "slot": {"type": "str", "required": True},
                "rollback": {"type": "bool", "default": False},
            }},
        },
        supports_check_mode=True,
    )
    params = module.params
    unit, socket = params["unit"], params["socket"]
    try:
        results, diffs = write_files(params["files"], "root", "root", "0644", check_mode=module.check_mode)
    except (WriteError, OSError) as error:
        module.fail_json(msg=f"writing the unit files failed: {error}", status=-1)
    written = [result["dest"] for result in results if result["changed"]]
    if module.check_mode:
        module.exit_json(changed=bool(written), written=written, status=-1, msg="check mode: not started",
                         **({"diff": diffs} if module._diff else {}))
    try:
        # Files written here, or by a run stopped before its reload.
        if written or "yes" in systemctl("show", "--property", "NeedDaemonReload", "--value", unit, socket).split():
            systemctl("daemon-reload")
        systemctl("stop", unit)
        systemctl("restart", socket)
        systemctl("start", unit)
    except StepFailed as error:
        module.fail_json(msg=explained(params, str(error)), status=-1, written=written, changed=True)
    connect = connector(address=params["address"], port=params["port"], unix_socket=params["unix_socket"])
    status, message = wait_healthy(connect, params["path"], params["host"], params["timeout"],
                                   stopped=lambda: stopped(unit))
    if not 200 <= status < 400:
        # wait_healthy's message names a stopped unit; else the last answer.
        module.fail_json(msg=explained(params, message if f"{unit} stopped" in message else (
            f"{params['path']} answered {message} (2xx or 3xx needed) within {params['timeout']} s.")),
            status=status, written=written, changed=True)
    answer = {"changed": True, "status": status, "msg": message, "written": written}
    if params["record"]:
        wanted = params["record"]
        try:
            # The links for the next boot; systemd is told of them when the
            # run retires the old pair (tasks/switch.yml), in one reload.
            systemctl("--quiet", "enable", "--no-reload", socket, unit)
            answer["history"] = record(wanted["root"], wanted["release"], wanted["slot"], wanted["rollback"])
        except (StepFailed, WriteError, OSError) as error:
            # Answered, but not recorded: refused like a pair that did not
            # answer (nginx never sent it a request).
            module.fail_json(msg=f"recording release {wanted['release']} as serving failed: {error}", **answer)
    module.exit_json(**answer)


if __name__ == "__main__":
    main()
