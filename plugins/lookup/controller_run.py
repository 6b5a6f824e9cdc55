# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""The run of ansible-playbook this lookup is evaluated in, as the deploy
lock records it (plugins/modules/host_state.py)."""

DOCUMENTATION = r"""
name: controller_run
short_description: Which ansible-playbook run this is, and which runs are alive on this controller
description:
  - Internal to the role gunicorn_uvicorn_nginx; its deploy lock records the run that holds it, so that a
    later run from the same controller can tell a run that ended (killed) from one still going.
  - Returns one dict {id, controller, pid, start, alive}. I(controller) is this machine (host name and boot);
    I(pid) and I(start) (in clock ticks since boot) are those of the ansible-playbook process whose workers
    evaluate the lookup; I(id) joins them; I(alive) lists C(pid:start) of every process of this controller that
    runs Ansible, when the term C(alive) is given.
options:
  _terms: {description: "C(alive) to list the runs alive on this controller", required: false}
"""

RETURN = r"""
_raw: {description: "One dict: {id, controller, pid, start, alive}", type: list, elements: dict}
"""

import os
import socket

from ansible.plugins.lookup import LookupBase
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.system import stat_field


def command_line(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def started(pid):
    """Clock ticks since boot at which the process started (field 22 of /proc/PID/stat)."""
    return stat_field(pid, 19)


def parent(pid):
    return stat_field(pid, 1)


def main_process(pid=None):
    """The ansible-playbook process itself: Ansible's workers are forks of it,
    with its command line; the first process up the tree with another one
    is not part of the run."""
    pid = pid or os.getpid()
    line = command_line(pid)
    while True:
        up = parent(pid)
        if not up or command_line(up) != line:
            return pid, line
        pid = up


def controller():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as handle:
            boot = handle.read().strip()
    except OSError:
        boot = "?"
    return "%s/%s" % (socket.gethostname(), boot)


def alive():
    """pid:start of every process here whose command line names Ansible
    (none where there is no /proc, as on macOS: such a run names no
    controller, and its lock goes by its lease)."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        names = []
    for name in names:
        if name.isdigit() and b"ansible" in (command_line(int(name)) or b""):
            start = started(int(name))
            if start is not None:
                found.append("%s:%d" % (name, start))
    return sorted(found)


def identity(with_alive=False):
    pid, line = main_process()
    where = controller()
    start = started(pid)
    # Only a process that is Ansible can be told ended or alive by another run.
    ansible = b"ansible" in (line or b"")
    return {"id": "%s/%s:%s" % (where, pid, start), "controller": where if ansible else None,
            "pid": pid, "start": start, "alive": alive() if with_alive else []}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [identity(with_alive="alive" in terms)]
