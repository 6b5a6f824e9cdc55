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
  unit_prefix: {type: str, description: Report the names in I(unit_dir) that start with it (C(unit_files)).}
  unit_dir: {type: path, default: /etc/systemd/system, description: Where unit files live.}
  lock_dir: {type: path, description: A lock to take first (a directory; mkdir is atomic).}
  lock_name: {type: str, default: deploy lock, description: What the lock guards, for messages.}
  lock_holder: {type: str, default: '?', description: Who takes the lock, written into it.}
  lock_owner:
    type: dict
    description:
      - The run taking the lock, from the collection's controller_run lookup ({id, controller, pid, start,
        alive}). Its id is in the environment of every process of the run on the host.
  lock_lease: {type: int, default: 300, description: "Seconds after its last renewal at which the lock of a run
    from another controller, with no process left on the host, counts as left behind."}
  lock_timeout: {type: int, default: 600, description: Seconds to wait for another run's lock.}
  renew: {type: list, elements: path, default: [], description: "Locks this run (I(lock_owner)) holds: renewed,
    and the call fails if one is no longer its own."}
  nginx_stamp: {type: path, description: "The file touched at each reload of nginx by the role: I(nginx_stale) says
    whether nginx's files changed since."}
  dangling_dirs: {type: list, elements: path, default: [], description: Where to look for links that lead nowhere.}
  written_for: {type: list, elements: path, default: [], description: "Files whose first line may name the app the
    role wrote them for (a snippet's marker)."}
  release_key: {type: path, description: "The app's root-only key (made when missing, outside check mode): I(env_mac)
    is the HMAC-SHA256 of I(env_digest) with it."}
  env_digest: {type: str, description: "The SHA-256 of the app's environment (gunicorn_env), which the release id must
    not disclose."}
  release_records: {type: bool, default: false, description: Also return the records of the complete releases.}
  resolve: {type: list, elements: str, default: [], description: "Host names to resolve with the host's own
    resolver (/etc/hosts, DNS), as C(getent ahosts) does."}
  certificates: {type: list, elements: path, default: [], description: "PEM certificates whose issuer, DNS names and
    time left are reported (read with openssl)."}
  calendars: {type: list, elements: str, default: [], description: "systemd calendar expressions (OnCalendar=) to
    check with the host's own systemd (systemd-analyze calendar)."}
  host_settings:
    type: dict
    description:
      - "The app's host-wide nginx settings: {dir, app, values, record, override}. Each app's values are recorded in
        I(dir)/APP.json; I(host_settings_conflicts) lists the other apps' values that differ from I(values)."
      - With I(record) (and outside check mode), this app's values are recorded when no other app's differ, or
        with I(override), which records them for every app of the host.
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
history: {description: The releases that served, oldest first (the app root's history), type: list}
release_records: {description: "Release id to its release.json, for I(releases), with I(release_records)",
  type: dict}
releases: {description: "Releases on the host that were completely built: sealed, with a release.json,
  root's", type: list}
venvs: {description: "Virtualenvs on the host that were completely built: sealed, marked .complete by
  root", type: list}
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
lock_taken_over: {description: "The run whose lock this call took over, and why it counts as over: {holder, reason}
  (null if the lock was free)", type: dict}
nginx_stale: {description: "Whether nginx runs with a configuration older than its files (a run was stopped between
  writing them and reloading)", type: bool}
dangling: {description: Links in I(dangling_dirs) that lead nowhere, type: list}
env_mac: {description: "HMAC-SHA256 of I(env_digest) with the key of I(release_key): what the release id holds of the
  environment, which nobody without the key can test a guessed secret against (null in check mode without a key)",
  type: str}
written_for: {description: "Path to the app its marker names (null: none, or not a regular file), for
  I(written_for)", type: dict}
resolved: {description: "Name to its addresses, in the resolver's order of preference, each once (empty: it does
  not resolve), for I(resolve)", type: dict}
certificates: {description: "Path to {issuer, names (its DNS names), seconds_left} (null when there is no
  certificate openssl can read), for I(certificates)", type: dict}
calendar_error: {description: "What systemd-analyze calendar said of I(calendars) when it refused one (empty when it
  took them all, or none was given)", type: str}
host_settings_conflicts: {description: "Other apps' host-wide nginx settings that differ from this app's:
  [{app, name, theirs, ours}]", type: list}
"""

import calendar
import contextlib
import errno
import fcntl
import grp
import hashlib
import hmac
import json
import os
import pwd
import re
import socket
import stat
import subprocess
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.atomic import replace
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.system import stat_field, unit_state

SYSTEM_PYTHON = "/usr/bin/python3"
SLOTS = ("blue", "green")
# The comment (GECOS) of an account the role made: "gunicorn-uvicorn-nginx app NAME".
ACCOUNT_MARK = "gunicorn-uvicorn-nginx app "
# The file in an app root that names the app it belongs to.
ROOT_MARK = ".gunicorn-uvicorn-nginx"
# What the role makes in an app root (tasks/build.yml, start_pair).
ROOT_ENTRIES = frozenset(("releases", "venvs", "current", "current.new", "slot", "slot.new", "history", "history.new",
                          "history.previous", "history.previous.new", ROOT_MARK))


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


def names_in(directory):
    """The sorted names in a directory; none when it cannot be read."""
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def link_target(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def marked_files(marker, directories):
    """The *.conf files of directories with a line that starts with 'marker:' (what this app wrote)."""
    found = []
    for directory in directories:
        for name in names_in(directory):
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
    """Names in directory whose build finished: sealed, they and the file
    mark in them belong to root (the user this runs as), the mark a regular
    file. A build stopped before its seal, or a mark the app's release
    commands wrote (they run as the app in the release), never counts."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(name for name in names if not name.startswith(".") and sealed(os.path.join(directory, name), mark))


def sealed(path, mark):
    try:
        found, marked = os.lstat(path), os.lstat(os.path.join(path, mark))
    except OSError:
        return False
    return (stat.S_ISDIR(found.st_mode) and stat.S_ISREG(marked.st_mode)
            and found.st_uid == marked.st_uid == os.geteuid())


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
    history = read_text(os.path.join(app_root, "history")).split("\n")
    return {"slot": slot, "release": release, "serving": os.path.isdir(current), "active": active,
            "history": [name for name in history if name]}


def release_records(releases_dir, names):
    """The records (release.json) of the sealed releases names: root's files in
    root's directories, which the app never wrote (None for one that is not JSON)."""
    records = {}
    for name in names:
        try:
            with open(os.path.join(releases_dir, name, "release.json"), encoding="utf-8") as handle:
                records[name] = json.load(handle)
        except (OSError, ValueError):
            records[name] = None
    return records


def lock_parent(lock_dir):
    """Make the directory of the locks, only ours to write: anyone who could
    write there could block every deploy, or plant a link for us to follow."""
    parent = os.path.dirname(lock_dir)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    found = os.lstat(parent)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
        raise OSError(errno.EPERM, "%s must be a directory that only %s can write" % (parent, pwd.getpwuid(
            os.geteuid()).pw_name))
    return parent


# The variable every task of a run carries in its environment on the host
# (tasks/main.yml): a process that has it works for that run.
RUN_VARIABLE = b"GUNICORN_UVICORN_NGINX_RUN="


def runs_on_host(proc="/proc"):
    """The run ids found in the environment of the host's processes."""
    found = set()
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "environ"), "rb") as handle:
                entries = handle.read().split(b"\0")
        except OSError:
            continue
        found.update(entry[len(RUN_VARIABLE):].decode("utf-8", "replace")
                     for entry in entries if entry.startswith(RUN_VARIABLE))
    return found


def read_holder(lock_dir):
    """(the holder's record, seconds since it was last renewed). A record is
    {holder, id, controller, pid, start}; an older plain-text one only
    {holder}; a lock without one (its taker stopped between mkdir and write)
    is as old as its directory."""
    path = os.path.join(lock_dir, "holder")
    try:
        renewed = os.lstat(path).st_mtime
        text = read_text(path)
    except OSError:
        try:
            renewed = os.lstat(lock_dir).st_mtime
        except OSError:
            renewed = time.time()
        text = ""
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        record = {"holder": text or "?"}
    return record, max(0, time.time() - renewed)


def over(record, age, owner, lease, on_host):
    """Why the run that holds a lock is over, or None while it may go on.
    A process on the host with its id works for it: never over. Otherwise a
    run of this controller is over when its ansible-playbook no longer runs
    there; a run of another controller (or one that did not say where it ran)
    when it has not renewed the lock for lease seconds."""
    if record.get("id") and record["id"] in on_host:
        return None
    if owner and record.get("controller") and record.get("controller") == owner.get("controller"):
        if "%s:%s" % (record.get("pid"), record.get("start")) in owner.get("alive", []):
            return None
        return "its ansible-playbook (process %s on %s) has ended" % (record.get("pid"), owner.get("controller"))
    if age > lease:
        return "it has not renewed the lock for %d s (gunicorn_lock_lease: %d s)" % (age, lease)
    return None


@contextlib.contextmanager
def guarded(parent):
    """One taker at a time decides on the locks of parent (flock)."""
    descriptor = os.open(os.path.join(parent, ".guard"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def record_of(holder, owner):
    record = {"holder": holder}
    record.update({key: owner[key] for key in ("id", "controller", "pid", "start") if key in (owner or {})})
    return record


def take_lock(lock_dir, holder, timeout, owner=None, lease=300, sleep=time.sleep, on_host=runs_on_host):
    """mkdir the lock, waiting up to timeout seconds for another run's, and
    taking over the lock of a run that is over. Returns (seconds waited,
    None or {holder, reason} of the run taken over)."""
    parent = lock_parent(lock_dir)
    waited = 0
    while True:
        with guarded(parent):
            record, taken_over = {"holder": "?"}, None
            if os.path.lexists(lock_dir):
                record, age = read_holder(lock_dir)
                reason = over(record, age, owner, lease, on_host())
                if reason:
                    release_lock(lock_dir)
                    taken_over = {"holder": record["holder"], "reason": reason}
            try:
                os.mkdir(lock_dir, 0o700)
            except FileExistsError:
                pass
            else:
                descriptor = os.open(os.path.join(lock_dir, "holder"),
                                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(record_of(holder, owner)) + "\n")
                return waited, taken_over
        if waited >= timeout:
            raise LockTimeout(record["holder"], waited)
        sleep(1)
        waited += 1


def renew_lock(lock_dir, owner):
    """Renew a lock this run holds; fails if another run took it over."""
    record, _ = read_holder(lock_dir)
    if not os.path.isdir(lock_dir) or record.get("id") != owner.get("id"):
        raise OSError(errno.EBUSY, "%s is no longer this run's: %s holds it" % (
            lock_dir, record["holder"] if os.path.isdir(lock_dir) else "nobody"))
    os.utime(os.path.join(lock_dir, "holder"))


def release_lock(lock_dir):
    for name in (os.listdir(lock_dir) if os.path.isdir(lock_dir) and not os.path.islink(lock_dir) else []):
        os.remove(os.path.join(lock_dir, name))
    try:
        os.rmdir(lock_dir)
    except OSError:
        pass


class LockTimeout(Exception):
    def __init__(self, holder, waited):
        super().__init__(holder)
        self.holder = holder
        self.waited = waited


def nginx_stale(stamp, tree="/etc/nginx"):
    """Whether nginx runs with an older configuration than its files: one of
    them (or a directory, which a removal changes) is newer than the stamp
    the role touches at each reload, or, without a stamp (the host booted
    since), than nginx's start."""
    if not unit_active("nginx.service"):
        return False
    try:
        loaded = os.lstat(stamp).st_mtime
    except OSError:
        loaded = process_started(run(["systemctl", "show", "--property=MainPID", "--value", "nginx.service"])[1])
    newest = 0
    for directory, _, names in os.walk(tree):
        for path in [directory] + [os.path.join(directory, name) for name in names]:
            try:
                newest = max(newest, os.lstat(path).st_mtime)
            except OSError:
                continue
    return loaded is None or newest > loaded


def process_started(pid):
    """When a process started (seconds since the epoch, to the second), None if it does not run."""
    ticks = stat_field(pid, 19)
    try:
        with open("/proc/stat", encoding="utf-8") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")


WRITTEN_FOR = re.compile(r'^# Written by the gunicorn_uvicorn_nginx role for app "([^"]*)"')


def written_for(path):
    """The app a snippet's marker line names, None if it has none."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            match = WRITTEN_FOR.match(handle.readline())
    except OSError:
        return None
    return match.group(1) if match else None


def env_mac(key_path, digest, check_mode=False):
    """HMAC-SHA256 of digest with the app's key, made (32 random bytes, root's
    alone) when there is none."""
    try:
        with open(key_path, "rb") as handle:
            key = handle.read()
    except FileNotFoundError:
        if check_mode:
            return None
        os.makedirs(os.path.dirname(key_path), mode=0o700, exist_ok=True)
        key = os.urandom(32)
        replace(key_path, key, 0, 0, 0o600, backup=False)
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def dangling_links(directories):
    paths = [os.path.join(directory, name) for directory in directories for name in names_in(directory)]
    return [path for path in paths if os.path.islink(path) and not os.path.exists(path)]


def host_settings(spec, check_mode=False):
    """Other apps' recorded host-wide nginx settings that differ from this
    app's; records this app's (see the option host_settings)."""
    directory, app, values = spec["dir"], spec["app"], spec["values"]
    others, conflicts = {}, []
    for name in names_in(directory):
        other = name[:-len(".json")]
        if not name.endswith(".json") or other == app:
            continue
        try:
            record = json.loads(read_text(os.path.join(directory, name)))
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        others[other] = record
        conflicts.extend({"app": other, "name": key, "theirs": record[key], "ours": value}
                         for key, value in sorted(values.items()) if key in record and record[key] != value)
    if spec.get("record") and not check_mode and (spec.get("override") or not conflicts):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for owner, record in [(app, {})] + (list(others.items()) if spec.get("override") else []):
            data = json.dumps(dict(record, **values), sort_keys=True).encode() + b"\n"
            replace(os.path.join(directory, owner + ".json"), data, 0, 0, 0o600, backup=False)
    return conflicts


# getent ahosts's question: every family, IPv6 only where the host has an
# IPv6 address of its own.
RESOLVE_FLAGS = socket.AI_V4MAPPED | socket.AI_ADDRCONFIG | socket.AI_CANONNAME


def resolve(name, lookup=socket.getaddrinfo):
    """NAME's addresses, in the resolver's order, each once; [] when it does not resolve."""
    try:
        answers = lookup(name, None, socket.AF_UNSPEC, 0, 0, RESOLVE_FLAGS)
    except (OSError, UnicodeError):
        return []
    addresses = []
    for _, _, _, _, sockaddr in answers:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


def certificate(path):
    """{issuer, names, seconds_left} of the PEM certificate at PATH, None when
    there is none (or a link) or openssl cannot read it."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    status, out, _ = run(["openssl", "x509", "-noout", "-issuer", "-enddate", "-ext", "subjectAltName", "-in", path])
    if status != 0:
        return None
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith(" "))
    try:
        ends = calendar.timegm(time.strptime(fields["notAfter"].strip(), "%b %d %H:%M:%S %Y %Z"))
    except (KeyError, ValueError):
        return None
    return {"issuer": fields.get("issuer", "").strip(), "names": re.findall(r"DNS:([^,\s]+)", out),
            "seconds_left": int(ends - time.time())}


def calendar_error(expressions):
    """What the host's systemd says of the first calendar expression it cannot
    parse ("" when it parses them all): systemd versions differ in what they take."""
    if not expressions:
        return ""
    status, out, err = run(["systemd-analyze", "calendar", *expressions])
    return "" if status == 0 else (err.strip() or out.strip() or "exit status %d" % status)


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
        "unit": {name: unit_state(run, name) for name in params["units"]},
        # The app's process and job units (plugins/modules/app_units.py).
        "unit_files": ([name for name in names_in(params["unit_dir"]) if name.startswith(params["unit_prefix"])]
                       if params["unit_prefix"] else []),
        "cpus": len(os.sched_getaffinity(0)),
        "nginx_version": nginx_version(),
        "ipv6": os.path.exists("/proc/net/if_inet6"),
        "nginx_stale": nginx_stale(params["nginx_stamp"]) if params["nginx_stamp"] else None,
        "dangling": dangling_links(params["dangling_dirs"]),
        "written_for": {path: written_for(path) for path in params["written_for"]},
        "env_mac": (env_mac(params["release_key"], params["env_digest"], params.get("_check_mode"))
                    if params["release_key"] and params["env_digest"] is not None else None),
        "host_settings_conflicts": (host_settings(params["host_settings"], params.get("_check_mode"))
                                    if params["host_settings"] else []),
        "resolved": {name: resolve(name) for name in params["resolve"]},
        "certificates": {path: certificate(path) for path in params["certificates"]},
        "calendar_error": calendar_error(params["calendars"]),
    }
    state.update(account_state(params["user"], params["group"], app_root, params["app_name"]))
    state["release_records"] = (release_records(os.path.join(app_root, "releases"), state["releases"])
                                if params["release_records"] and app_root else {})
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
            "unit_prefix": {"type": "str"},
            "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
            "lock_dir": {"type": "path"},
            "lock_name": {"type": "str", "default": "deploy lock"},
            "lock_holder": {"type": "str", "default": "?"},
            "lock_owner": {"type": "dict"},
            "lock_lease": {"type": "int", "default": 300},
            "lock_timeout": {"type": "int", "default": 600},
            "renew": {"type": "list", "elements": "path", "default": []},
            "nginx_stamp": {"type": "path"},
            "dangling_dirs": {"type": "list", "elements": "path", "default": []},
            "written_for": {"type": "list", "elements": "path", "default": []},
            "release_key": {"type": "path", "no_log": False},
            "release_records": {"type": "bool", "default": False},
            "resolve": {"type": "list", "elements": "str", "default": []},
            "certificates": {"type": "list", "elements": "path", "default": []},
            "calendars": {"type": "list", "elements": "str", "default": []},
            "env_digest": {"type": "str", "no_log": True},
            "host_settings": {"type": "dict"},
        },
        required_together=[("app_name", "app_root")],
        supports_check_mode=True,
    )
    params = dict(module.params, _check_mode=module.check_mode)
    lock_dir = params["lock_dir"] if not module.check_mode else None
    waited = taken_over = None
    if lock_dir:
        try:
            waited, taken_over = take_lock(lock_dir, params["lock_holder"], params["lock_timeout"],
                                           params["lock_owner"], params["lock_lease"])
        except OSError as error:
            module.fail_json(msg="Could not take the %s %s: %s" % (params["lock_name"], lock_dir, error),
                             lock_taken=None)
        except LockTimeout as error:
            module.fail_json(
                msg=("Another run holds the %s (%s); waited %d s (gunicorn_lock_timeout). A run counts as over, and "
                     "its lock is taken over, once no process of it is left on this host and its ansible-playbook "
                     "has ended (a run from this controller) or it has not renewed the lock for gunicorn_lock_lease "
                     "(%d s; a run from elsewhere). If you know that no run is going on, remove %s."
                     % (params["lock_name"], error.holder, error.waited, params["lock_lease"], lock_dir)),
                lock_taken=None)
    try:
        if not module.check_mode:
            for held in params["renew"]:
                renew_lock(held, params["lock_owner"] or {})
        state = read_state(params)
    except Exception as error:  # pylint: disable=broad-except
        # The lock is this run's: a run that cannot read the host must not keep it.
        if lock_dir:
            release_lock(lock_dir)
        module.fail_json(msg="Could not read the state of the host: %s" % error, lock_taken=None)
    if taken_over:
        module.warn("Took over the %s of a run that is over (%s): %s" % (
            params["lock_name"], taken_over["holder"], taken_over["reason"]))
    module.exit_json(changed=False, lock_taken=lock_dir, lock_waited=waited, lock_taken_over=taken_over, **state)


if __name__ == "__main__":
    main()
