#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""The app's units beside the web unit pair: its processes (template units,
one instance per copy) and its scheduled jobs (a timer and the oneshot
service it starts), made to match what the run wants in one call.

The files the role wrote for an app carry its marker as their first line, so
the units of a process or job the app no longer lists are found (and stopped,
disabled and removed) without touching any other unit of the host. A process
whose file changed (it names the release it runs from) restarts: its old
processes get their stop timeout to finish what they were doing. A job's
service is never restarted: a run in progress finishes on its release, the
next one starts from the new file.
"""

DOCUMENTATION = r"""
module: app_units
short_description: Make an app's process and job units what the run wants, in one call
description:
  - Internal to the role gunicorn_uvicorn_nginx.
  - Writes the unit files that differ (atomically), removes the app's unit files no longer wanted (stopped and
    disabled first), reloads systemd once, stops and disables instances no longer wanted (a process's count went
    down), enables and starts every wanted unit, and restarts the running ones whose file changed.
  - Supports check mode and diff mode.
options:
  marker: {type: str, required: true, description: First line of every unit file the role wrote for the app.}
  files: {type: dict, default: {}, description: Unit file name to the content it must have.}
  running:
    type: list
    elements: str
    default: []
    description: Units that must be enabled and active (process instances C(name@N.service), timers).
  directory: {type: path, default: /etc/systemd/system, description: Where unit files live.}
"""

RETURN = r"""
written: {description: Unit files written, type: list, elements: str, returned: always}
removed: {description: Unit files removed, type: list, elements: str, returned: always}
stopped: {description: Units stopped and disabled, type: list, elements: str, returned: always}
started: {description: Units started (they were not active), type: list, elements: str, returned: always}
restarted: {description: Active units restarted because their file changed, type: list, elements: str, returned: always}
enabled: {description: Units enabled at boot, type: list, elements: str, returned: always}
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.atomic import WriteError, replace
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.system import unit_state

UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@-]+\.(service|timer)")


def file_of(unit):
    """The file a unit is loaded from: a template's for an instance."""
    return re.sub(r"@[^.]*\.", "@.", unit, count=1) if "@" in unit else unit


def marked_files(directory, marker):
    """{name: content} of the regular files in DIRECTORY whose first line is MARKER."""
    found = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not UNIT_NAME.fullmatch(name) or os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        if data.split(b"\n", 1)[0].decode(errors="replace") == marker:
            found[name] = data.decode(errors="replace")
    return found


class Systemd:
    def __init__(self, module, directory):
        self.module = module
        # Units enabled at boot: the links in *.wants and *.requires, read once.
        self.linked = {name for entry in os.listdir(directory) if entry.endswith((".wants", ".requires"))
                       and os.path.isdir(os.path.join(directory, entry))
                       for name in os.listdir(os.path.join(directory, entry))}

    def run(self, *args, check=True):
        status, out, err = self.module.run_command(["systemctl", *args])
        if check and status != 0:
            self.module.fail_json(msg=f"systemctl {' '.join(args)} failed: {(err or out).strip()}")
        return status, out

    def instances(self, template):
        """Instances of TEMPLATE (name@.service) that are loaded or enabled."""
        prefix, suffix = template.split("@.", 1)
        _, out = self.run("list-units", "--all", "--plain", "--no-legend", "--full", f"{prefix}@*.{suffix}",
                          check=False)
        found = {line.split()[0] for line in out.splitlines() if line.split()} | self.linked
        return {name for name in found
                if name.startswith(prefix + "@") and name.endswith("." + suffix) and name != template}


def main():
    module = AnsibleModule(
        argument_spec={
            "marker": {"type": "str", "required": True},
            "files": {"type": "dict", "default": {}},
            "running": {"type": "list", "elements": "str", "default": []},
            "directory": {"type": "path", "default": "/etc/systemd/system"},
        },
        supports_check_mode=True,
    )
    marker, files, running, directory = (module.params[name] for name in ("marker", "files", "running", "directory"))
    for name, content in files.items():
        if not UNIT_NAME.fullmatch(name) or not content.startswith(marker + "\n"):
            module.fail_json(msg=f"{name}: not a unit file name, or its content does not start with the marker")
    for unit in running:
        if not UNIT_NAME.fullmatch(unit) or file_of(unit) not in files:
            module.fail_json(msg=f"{unit}: no unit file of it is given")
    systemd = Systemd(module, directory)
    now = marked_files(directory, marker)
    written = sorted(name for name, content in files.items() if now.get(name) != content)
    # Another unit's file (not marked) at a wanted name is never replaced.
    foreign = [name for name in written if name not in now and os.path.lexists(os.path.join(directory, name))]
    if foreign:
        module.fail_json(msg=f"{', '.join(foreign)}: a unit file of that name exists and was not written for this "
                             "app; it is left alone")
    removed = sorted(name for name in now if name not in files)

    # Units that must not run: instances of every template (wanted or not)
    # that are not wanted, timers not wanted, and removed jobs' services.
    candidates = set()
    for name in sorted(set(now) | set(files)):
        if "@." in name:
            candidates |= systemd.instances(name)
        elif name.endswith(".timer") or name in removed:
            candidates.add(name)
    states = {unit: unit_state(module.run_command, unit) for unit in sorted(candidates | set(running))}
    stopped = sorted(unit for unit in candidates if unit not in running and any(states[unit].values()))
    started = [unit for unit in running if not states[unit]["active"]]
    restarted = [unit for unit in running if states[unit]["active"] and file_of(unit) in written]
    enabled = [unit for unit in running if not states[unit]["enabled"]]
    result = {"written": written, "removed": removed, "stopped": stopped, "started": started,
              "restarted": restarted, "enabled": enabled}
    result["changed"] = any(result.values())
    if module._diff:
        result["diff"] = [{"before_header": os.path.join(directory, name), "after_header": os.path.join(directory, name),
                           "before": now.get(name, ""), "after": files.get(name, "")} for name in written + removed]
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    if stopped:
        systemd.run("stop", *stopped)
        systemd.run("--quiet", "disable", *stopped, check=False)
    for name in removed:
        os.unlink(os.path.join(directory, name))
    try:
        for name in written:
            replace(os.path.join(directory, name), files[name].encode(), 0, 0, 0o644, False)
    except (OSError, WriteError) as error:
        module.fail_json(msg=f"writing unit files: {error}", **result)
    if written or removed:
        systemd.run("daemon-reload")
    if enabled:
        systemd.run("--quiet", "enable", *enabled)
    if restarted:
        systemd.run("restart", *restarted)
    if started:
        systemd.run("start", *started)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
