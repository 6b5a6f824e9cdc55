# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Replacing a file so that a reader (nginx, systemd) sees the old file or the
new one, never half of one, and a symbolic link at its name is replaced,
never followed."""

import os
import tempfile
import time


class WriteError(Exception):
    pass


def backup_name(path, now=None):
    """Named like the template module's backups: NAME.PID.TIME~."""
    stamp = time.strftime("%Y-%m-%d@%H:%M:%S", time.localtime(now))
    return f"{path}.{os.getpid()}.{stamp}~"


def replace(path, data, uid, gid, mode, backup):
    """Write DATA as PATH's new content by renaming a new file over it; return
    the name of the backup of the replaced file (a hard link), if asked for and
    there was one."""
    directory, name = os.path.split(path)
    if not os.path.isdir(directory):
        raise WriteError(f"{path}: its directory {directory} does not exist")
    saved = None
    if backup and os.path.isfile(path) and not os.path.islink(path):
        saved = backup_name(path)
        os.link(path, saved)
    descriptor, new = tempfile.mkstemp(prefix=f".{name}.", suffix=".new", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(new, path)
    except BaseException:
        if os.path.lexists(new):
            os.unlink(new)
        raise
    return saved


def link(path, target):
    """Make PATH a symbolic link to TARGET by renaming a new link over it."""
    directory, name = os.path.split(path)
    new = os.path.join(directory, f".{name}.{os.getpid()}.new")
    if os.path.lexists(new):
        os.unlink(new)
    os.symlink(target, new)
    try:
        os.rename(new, path)
    except BaseException:
        os.unlink(new)
        raise
