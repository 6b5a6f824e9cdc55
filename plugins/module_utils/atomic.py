# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Replacing a file so that a reader (nginx, systemd) sees the old file or the
new one, never half of one, and a symbolic link at its name is replaced,
never followed."""

import grp
import os
import pwd
import stat
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


def current(path):
    """(lstat result or None, content or None): the content only of a regular file."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if stat.S_ISDIR(status.st_mode):
        raise WriteError(f"{path} is a directory")
    if not stat.S_ISREG(status.st_mode):
        return status, None
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as handle:
        return status, handle.read()


def plan(path, data, uid, gid, mode):
    """What writing DATA to PATH takes: None (nothing), 'meta' (owner or mode only) or 'content'."""
    status, before = current(path)
    if before is None:
        return "content", None
    if before != data:
        return "content", before
    if (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) != (uid, gid, mode):
        return "meta", before
    return None, before


def mend(path, uid, gid, mode):
    """Owner and mode of an existing regular file, through a descriptor (no link is followed)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fchown(descriptor, uid, gid)
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


def write_files(files, owner, group, mode, backup=False, check_mode=False):
    """Write what differs; return (results, diffs)."""
    try:
        uid = pwd.getpwnam(owner).pw_uid
        gid = grp.getgrnam(group).gr_gid
    except KeyError as error:
        raise WriteError(f"no such user or group: {error.args[0]}") from None
    bits = int(mode, 8)
    results, diffs = [], []
    for path, content in files.items():
        if not os.path.isabs(path):
            raise WriteError(f"{path} is not an absolute path")
        data = content.encode()
        needed, before = plan(path, data, uid, gid, bits)
        result = {"dest": path, "changed": needed is not None}
        if needed == "content":
            diffs.append({"before_header": path, "after_header": path,
                          "before": before.decode(errors="replace") if before is not None else "",
                          "after": content})
        if needed and not check_mode:
            if needed == "meta":
                mend(path, uid, gid, bits)
            else:
                saved = replace(path, data, uid, gid, bits, backup)
                if saved:
                    result["backup_file"] = saved
        results.append(result)
    return results, diffs
