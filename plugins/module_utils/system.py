# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""What the collection's modules (on the host) and its controller_run lookup
(on the controller) read of processes and systemd units, in one place."""


def stat_field(pid, index):
    """A number of /proc/PID/stat, counted after the command's name (which may
    hold spaces and parentheses): 1 is the parent, 19 the start time in clock
    ticks since boot. None when the process does not run."""
    try:
        with open("/proc/%d/stat" % int(pid), encoding="utf-8") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[index])
    except (OSError, ValueError, IndexError):
        return None


def unit_state(run, name):
    """{"active", "enabled"} of a systemd unit; RUN(argv) returns a tuple
    whose first item is the exit status (AnsibleModule.run_command's shape)."""
    return {"active": run(["systemctl", "--quiet", "is-active", name])[0] == 0,
            "enabled": run(["systemctl", "--quiet", "is-enabled", name])[0] == 0}
