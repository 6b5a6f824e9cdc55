#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Everything a run needs to know about a host, read in one module call.

Each task of a play costs a module execution (about a quarter of a second,
whatever it does), so the role reads the host once: which packages are
missing, whether the system bus and the pinned uv are there, what serves the
app, which releases exist, the checksums of the files the run would write,
and the host's Python, CPUs, nginx version and IPv6. With ``lock_dir`` it first
takes the app's deploy lock, so that what it reads cannot change under the
run until the lock is released.
"""

DOCUMENTATION = r"""
module: host_state
short_description: Take the app's deploy lock and read the host's state in one call
description:
  - Internal to the role gunicorn_uvicorn_nginx; its tasks read the result.
  - Read-only apart from the lock, also in check mode (which takes no lock).
options:
  app_name: {type: str, description: gunicorn_app_name; without it, nothing about what serves is read.}
  app_root: {type: path, description: gunicorn_app_root.}
  packages: {type: list, elements: str, default: [], description: Debian packages the run needs.}
  user: {type: str, description: The app user, checked for a no-login account of I(group) homed at I(app_root).}
  group: {type: str, description: The app group.}
  paths: {type: list, elements: path, default: [], description: Paths whose existence is reported.}
  checksums: {type: list, elements: path, default: [], description: Files whose SHA-1 is reported.}
  links: {type: list, elements: path, default: [], description: Symbolic links whose target is reported.}
  marker: {type: str, description: "A marker line: files in I(marker_dirs) with a line that starts with it and a colon."}
  marker_dirs: {type: list, elements: path, default: [], description: Where to look for I(marker) in *.conf files.}
  units: {type: list, elements: str, default: [], description: systemd units whose state is reported.}
  lock_dir: {type: path, description: The deploy lock to take first (a directory; mkdir is atomic).}
  lock_holder: {type: str, default: '?', description: Who takes the lock, written into it.}
  lock_timeout: {type: int, default: 600, description: Seconds to wait for another run's lock.}
"""

RETURN = r"""
python: {description: The host Python's major.minor (virtualenvs are built for it), type: str}
python_version: {description: Its full version, type: str}
packages_missing: {description: Packages of I(packages) not installed, type: list}
dbus_active: {description: Whether the system bus's socket runs (null unless I(packages) holds dbus), type: bool}
slot: {description: The unit pair that serves (blue, green or empty), type: str}
release: {description: The release behind current (empty if none), type: str}
serving: {description: Whether current leads to a release directory, type: bool}
active: {description: Whether the serving pair's gunicorn runs, type: bool}
releases: {description: Releases on the host that were completely built (their release.json exists), type: list}
venvs: {description: Virtualenvs on the host that were completely built (marked .complete), type: list}
exists: {description: Path to whether it exists, for I(paths), type: dict}
sha1: {description: Path to its SHA-1 (null if it is not a regular file), for I(checksums), type: dict}
link: {description: Path to its target (null if it is not a symbolic link), for I(links), type: dict}
marked: {description: The *.conf files of I(marker_dirs) that carry I(marker), sorted, type: list}
unit: {description: "Unit to {active, enabled}, for I(units)", type: dict}
cpus: {description: CPUs this process may run on (what nproc prints), type: int}
nginx_version: {description: nginx's version, null when nginx is not installed, type: str}
ipv6: {description: Whether the kernel has IPv6 (booted without ipv6.disable=1), type: bool}
user_exists: {description: Whether an account named I(user) exists, type: bool}
user_ours: {description: "Whether it is the account the role made for I(app_name): its comment says so, or (made
  before the role wrote one) it has none, no login, the group I(group) and the home I(app_root)", type: bool}
user_ok: {description: Whether the app user and group exist as the role makes them, type: bool}
root: {description: "The app root: {exists, marker (the app its marker names, null without one), foreign (names
  in it that the role does not make), ours (its marker names I(app_name), or it has none and holds only what the
  role makes), unsafe (a directory on the way to it that every user may write, or the root itself when it is a
  symbolic link; null if none)}", type: dict}
lock_taken: {description: The lock this call took (null without lock_dir and in check mode), type: str}
lock_waited: {description: Seconds waited for it, type: int}
"""

import errno
import grp
import hashlib
import os
import pwd
import re
import stat
import subprocess
import sys
import time

from ansible.module_utils.basic import AnsibleModule

SYSTEM_PYTHON = "/usr/bin/python3"
SLOTS = ("blue", "green")
# The comment (GECOS) of an account the role made: "gunicorn-uvicorn-nginx app NAME".
ACCOUNT_MARK = "gunicorn-uvicorn-nginx app "
# The file in an app root that names the app it belongs to.
ROOT_MARK = ".gunicorn-uvicorn-nginx"
# What the role makes in an app root (tasks/release.yml, tasks/switch.yml).
ROOT_ENTRIES = frozenset(("releases", "venvs", "current", "current.new", "slot", "slot.new", "history", ROOT_MARK))


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def sha1_of(path):
    """SHA-1 of a regular file; None for anything else (never opens a FIFO or a device)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha1()
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
            return digest.hexdigest()
    except OSError:
        return None


def python_versions():
    """The system Python's (major.minor, major.minor.micro): uv builds virtualenvs with it."""
    try:
        same = os.path.samefile(sys.executable, SYSTEM_PYTHON)
    except OSError:
        same = False
    if same:
        info = sys.version_info
    else:
        out = run([SYSTEM_PYTHON, "-c", "import sys; print(*sys.version_info[:3])"])[1].split()
        info = tuple(int(part) for part in out[:3]) if len(out) >= 3 else (0, 0, 0)
    return "%d.%d" % tuple(info[:2]), "%d.%d.%d" % tuple(info[:3])


def run(argv):
    """(exit status, stdout, stderr); a command that is not there exits 127, as in a shell."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as error:
        return 127, "", str(error)
    return result.returncode, result.stdout, result.stderr


def missing_packages(packages):
    """Packages not installed ("ii" in dpkg's database), in the order given."""
    if not packages:
        return []
    _, out, _ = run(["dpkg-query", "--show", "--showformat=${Package} ${db:Status-Abbrev}\n", *packages])
    installed = {fields[0] for fields in map(str.split, out.splitlines()) if len(fields) >= 2 and fields[1] == "ii"}
    return [package for package in packages if package not in installed]


def unit_active(name):
    return run(["systemctl", "--quiet", "is-active", name])[0] == 0


def nginx_version():
    for binary in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.access(binary, os.X_OK):
            # nginx -v writes "nginx version: nginx/1.26.3" to stderr.
            _, out, err = run([binary, "-v"])
            match = re.search(r"nginx/([0-9.]+)", err + out)
            return match.group(1) if match else None
    return None


def link_target(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def marked_files(marker, directories):
    """The *.conf files of directories with a line that starts with 'marker:' (what this app wrote)."""
    found = []
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if not name.endswith(".conf") or os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    if any(line.startswith(marker + ":") for line in handle):
                        found.append(path)
            except OSError:
                continue
    return found


def unit_state(name):
    return {"active": unit_active(name), "enabled": run(["systemctl", "--quiet", "is-enabled", name])[0] == 0}


def account_state(user, group, home, app_name):
    """Whether the account exists, is the one the role made for app_name, and is as the role makes it."""
    try:
        account = pwd.getpwnam(user or "")
    except KeyError:
        return {"user_exists": False, "user_ours": False, "user_ok": False}
    try:
        gid = grp.getgrnam(group or "").gr_gid
    except KeyError:
        gid = None
    shaped = account.pw_gid == gid and account.pw_shell == "/usr/sbin/nologin" and account.pw_dir == home
    marked = bool(app_name) and account.pw_gecos == ACCOUNT_MARK + app_name
    return {"user_exists": True, "user_ours": marked or (account.pw_gecos == "" and shaped),
            "user_ok": marked and shaped}


def unsafe_way(path):
    """The first directory on the way to PATH that every user may write (where
    anyone could swap what follows for a link), or PATH when it is a link."""
    if os.path.islink(path):
        return path
    parent = os.path.dirname(path)
    while parent and parent != "/":
        try:
            mode = os.lstat(parent).st_mode
        except OSError:
            mode = 0
        if mode & 0o002 or stat.S_ISLNK(mode):
            return parent
        parent = os.path.dirname(parent)
    return None


def root_state(app_root, app_name):
    """What the app root holds, and whether it is this app's to write and remove."""
    unsafe = unsafe_way(app_root)
    if not os.path.lexists(app_root):
        return {"exists": False, "marker": None, "foreign": [], "ours": unsafe is None, "unsafe": unsafe}
    try:
        names = os.listdir(app_root) if not os.path.islink(app_root) else []
    except OSError:
        names = []
    marker = (read_text(os.path.join(app_root, ROOT_MARK)) or None) if ROOT_MARK in names else None
    foreign = sorted(set(names) - ROOT_ENTRIES) if os.path.isdir(app_root) else [app_root]
    ours = unsafe is None and (marker == app_name if marker else not foreign)
    return {"exists": True, "marker": marker, "foreign": foreign, "ours": ours, "unsafe": unsafe}


def complete(directory, mark):
    """Names in directory whose build finished: they hold the file mark."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(name for name in names
                  if not name.startswith(".") and os.path.isfile(os.path.join(directory, name, mark)))


def serving_state(app_name, app_root):
    slot = read_text(os.path.join(app_root, "slot"))
    if slot not in SLOTS:
        slot = ""
    current = os.path.join(app_root, "current")
    try:
        release = os.path.basename(os.readlink(current))
    except OSError:
        release = ""
    active = bool(slot) and unit_active("gunicorn-%s-%s.service" % (app_name, slot))
    return {"slot": slot, "release": release, "serving": os.path.isdir(current), "active": active}


def lock_parent(lock_dir):
    """Make the directory of the locks, only ours to write: anyone who could
    write there could block every deploy, or plant a link for us to follow."""
    parent = os.path.dirname(lock_dir)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    found = os.lstat(parent)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
        raise OSError(errno.EPERM, "%s must be a directory that only %s can write" % (parent, pwd.getpwuid(
            os.geteuid()).pw_name))


def take_lock(lock_dir, holder, timeout, sleep=time.sleep):
    """mkdir the lock, waiting up to timeout seconds for another run's; returns the seconds waited."""
    lock_parent(lock_dir)
    waited = 0
    while True:
        try:
            os.mkdir(lock_dir, 0o700)
            break
        except OSError as error:
            if error.errno != errno.EEXIST:
                raise
        if waited >= timeout:
            raise LockTimeout(read_text(os.path.join(lock_dir, "holder")), waited)
        sleep(1)
        waited += 1
    with open(os.path.join(lock_dir, "holder"), "w", encoding="utf-8") as handle:
        handle.write(holder + "\n")
    return waited


def release_lock(lock_dir):
    for remove, path in ((os.remove, os.path.join(lock_dir, "holder")), (os.rmdir, lock_dir)):
        try:
            remove(path)
        except OSError:
            pass


class LockTimeout(Exception):
    def __init__(self, holder, waited):
        super().__init__(holder)
        self.holder = holder
        self.waited = waited


def read_state(params):
    python, python_version = python_versions()
    app_root = params["app_root"] or ""
    state = {
        "python": python,
        "python_version": python_version,
        "packages_missing": missing_packages(params["packages"]),
        "dbus_active": unit_active("dbus.socket") if "dbus" in params["packages"] else None,
        "releases": complete(os.path.join(app_root, "releases"), "release.json") if app_root else [],
        "venvs": complete(os.path.join(app_root, "venvs"), ".complete") if app_root else [],
        "exists": {path: os.path.lexists(path) for path in params["paths"]},
        "sha1": {path: sha1_of(path) for path in params["checksums"]},
        "link": {path: link_target(path) for path in params["links"]},
        "marked": marked_files(params["marker"], params["marker_dirs"]) if params["marker"] else [],
        "unit": {name: unit_state(name) for name in params["units"]},
        "cpus": len(os.sched_getaffinity(0)),
        "nginx_version": nginx_version(),
        "ipv6": os.path.exists("/proc/net/if_inet6"),
    }
    state.update(account_state(params["user"], params["group"], app_root, params["app_name"]))
    if params["app_name"] and app_root:
        state.update(serving_state(params["app_name"], app_root))
        state["root"] = root_state(app_root, params["app_name"])
    return state


def main():
    module = AnsibleModule(
        argument_spec={
            "app_name": {"type": "str"},
            "app_root": {"type": "path"},
            "packages": {"type": "list", "elements": "str", "default": []},
            "user": {"type": "str"},
            "group": {"type": "str"},
            "paths": {"type": "list", "elements": "path", "default": []},
            "checksums": {"type": "list", "elements": "path", "default": []},
            "links": {"type": "list", "elements": "path", "default": []},
            "marker": {"type": "str"},
            "marker_dirs": {"type": "list", "elements": "path", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "lock_dir": {"type": "path"},
            "lock_holder": {"type": "str", "default": "?"},
            "lock_timeout": {"type": "int", "default": 600},
        },
        required_together=[("app_name", "app_root")],
        required_by={"lock_dir": "app_name"},
        supports_check_mode=True,
    )
    params = module.params
    lock_dir = params["lock_dir"] if not module.check_mode else None
    waited = None
    if lock_dir:
        try:
            waited = take_lock(lock_dir, params["lock_holder"], params["lock_timeout"])
        except OSError as error:
            module.fail_json(msg="Could not take the deploy lock %s: %s" % (lock_dir, error), lock_taken=None)
        except LockTimeout as error:
            module.fail_json(
                msg=("Another run holds the deploy lock of %s (%s); waited %d s (gunicorn_lock_timeout). "
                     "If no run is going on, one was killed: remove %s and run again."
                     % (params["app_name"], error.holder or "?", error.waited, lock_dir)),
                lock_taken=None)
    try:
        state = read_state(params)
    except Exception as error:  # pylint: disable=broad-except
        # The lock is this run's: a run that cannot read the host must not keep it.
        if lock_dir:
            release_lock(lock_dir)
        module.fail_json(msg="Could not read the state of the host: %s" % error, lock_taken=None)
    module.exit_json(changed=False, lock_taken=lock_dir, lock_waited=waited, **state)


if __name__ == "__main__":
    main()
