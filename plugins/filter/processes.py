# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Jinja filters of the role gunicorn_uvicorn_nginx for the app's processes
(gunicorn_processes and the Procfile) and scheduled jobs (gunicorn_schedules).

Their names become systemd unit names, their commands go into unit files and
their calendars into timers: each is checked here, before anything touches a
host, and a command is quoted so that systemd hands it to /bin/sh exactly as
typed (no systemd specifier or variable is expanded in it).
"""

DOCUMENTATION = r"""
name: processes
short_description: The app's processes and scheduled jobs, checked, merged and quoted
description:
  - Internal to the role gunicorn_uvicorn_nginx. Filters C(process_problems), C(app_processes) and
    C(systemd_shell).
"""

import re

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
# Procfile types the role gives another meaning: gunicorn is "web", the
# release commands are "release".
RESERVED = ("web", "release")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What OnCalendar= takes (weekdays, dates, times, ranges, repetitions, time
# zones, shorthands like daily); systemd-analyze calendar then checks the
# value itself on the host.
CALENDAR = re.compile(r"[A-Za-z0-9*][A-Za-z0-9 ,.:*/~+_-]{0,99}")
DEFAULT_STOP_TIMEOUT = 30


def _integer(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def process_problems(processes, schedules, procfile=None):
    """What is wrong with gunicorn_processes and gunicorn_schedules, one line
    each, naming the variable and the item. With PROCFILE (the release's
    process types), a process without a command of its own needs one there."""
    problems = []
    seen = {}
    for var, items in (("gunicorn_processes", processes), ("gunicorn_schedules", schedules)):
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            problems.append(f"{var}: must be a list of dicts")
            continue
        for index, item in enumerate(items):
            name = item.get("name")
            label = f"{var} item {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
            if not isinstance(name, str) or not NAME.fullmatch(name):
                problems.append(f"{label}: name must be 1 to 32 letters, digits, '-' and '_', starting with a "
                                "letter or digit (it names systemd units)")
            elif name in RESERVED:
                problems.append(f"{label}: name must not be {name!r} (gunicorn is the web process; release "
                                "commands are gunicorn_release_commands)")
            elif name in seen:
                problems.append(f"{label}: name is also given in {seen[name]}: processes and jobs need distinct names")
            else:
                seen[name] = var
            command = item.get("command")
            if command is None and var == "gunicorn_processes":
                if procfile is not None and (name not in procfile or name in RESERVED):
                    problems.append(f"{label}: has no command, and the app's Procfile has no line {name!r}")
            elif not isinstance(command, str) or not command.strip():
                problems.append(f"{label}: command must be a non-empty string")
            elif CONTROL.search(command):
                problems.append(f"{label}: command must be one line without control characters")
            if var == "gunicorn_processes":
                if not _integer(item.get("count", 1), 0, 64):
                    problems.append(f"{label}: count must be a whole number from 0 to 64")
                if not _integer(item.get("stop_timeout", DEFAULT_STOP_TIMEOUT), 1, 86400):
                    problems.append(f"{label}: stop_timeout must be 1 to 86400 seconds")
            else:
                calendar = item.get("on_calendar")
                if not isinstance(calendar, str) or not CALENDAR.fullmatch(calendar):
                    problems.append(f"{label}: on_calendar must be a systemd calendar expression (like daily or "
                                    "*-*-* 03:00:00): letters, digits, spaces and , . : * / ~ + _ - only")
                if not _integer(item.get("timeout", 0), 0, 604800):
                    problems.append(f"{label}: timeout must be 0 (none) to 604800 seconds")
    return problems


def app_processes(processes, procfile=None):
    """The processes to run: gunicorn_processes (a command of its own, else
    the Procfile's line of that name), then the Procfile's other types but
    "release"; each as {name, command, count, stop_timeout}. A process with
    no command anywhere (a rollback to a release whose Procfile lacks it) is
    left out."""
    procfile = procfile or {}
    merged = []
    for item in processes:
        command = item.get("command") or procfile.get(item["name"])
        if command:
            merged.append({"name": item["name"], "command": command, "count": item.get("count", 1),
                           "stop_timeout": item.get("stop_timeout", DEFAULT_STOP_TIMEOUT)})
    declared = {item["name"] for item in processes}
    merged.extend({"name": name, "command": command, "count": 1, "stop_timeout": DEFAULT_STOP_TIMEOUT}
                  for name, command in procfile.items() if name not in declared and name not in RESERVED)
    return merged


def systemd_shell(command):
    """ExecStart= arguments that run COMMAND with bash -c, as typed: one
    double-quoted argument in which systemd expands nothing. bash, not sh:
    bash execs a command line's last command in its own place, so the
    process systemd stops is the app's (dash would stay in between, die of
    the TERM, and leave the app to be killed without its stop timeout)."""
    if CONTROL.search(command):
        raise ValueError("a command for a unit file must be one line without control characters")
    quoted = command.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'/bin/bash -c "{quoted}"'


class FilterModule:
    def filters(self):
        return {"process_problems": process_problems, "app_processes": app_processes,
                "systemd_shell": systemd_shell}
