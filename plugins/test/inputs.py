# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Jinja tests for the role's input checks that argument_specs cannot make.

Every value these accept ends up in nginx's configuration, a systemd unit, a
path root writes to or a command line, so each test accepts a narrow, known
shape and nothing else: whole-string matches (``fullmatch``, never a ``$`` that
lets a trailing newline through), no quoting characters, no ``..``. The role
calls them from tasks/validate.yml, before anything touches a host; the unit
tests (tests/unit/test_inputs.py) try each with the attack strings of the
security audit.
"""

DOCUMENTATION = r"""
name: inputs
short_description: Checks of the role gunicorn_uvicorn_nginx's variables
description:
  - Internal to the role gunicorn_uvicorn_nginx. Tests C(server_names), C(safe_path), C(app_root),
    C(writable_path), C(network_address), C(host_name), C(dns_name), C(own_account), C(git_revision),
    C(static_path), C(worker_count), C(one_line), C(within), and the shapes of PATTERNS (C(app_name), C(exact_version),
    C(index_url), C(git_repo), C(import_path), C(memory_max), C(address_list), C(identifier), C(relative_path),
    C(release_id), C(url_path), C(file_name), C(nginx_size), C(websocket_location), C(static_location),
    C(acme_email), C(http_url)).
"""

import ipaddress
import posixpath
import re

# A DNS label: letters, digits and inner '-'. Host names of a fleet may start
# with a digit (RFC 1123); the last label of a name nginx serves may not.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_DNS_NAME = re.compile(rf"(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?")
# nginx's wildcard names: *.example.com, .example.com (the name and its
# subdomains) and www.example.* (a wildcard in the last part).
_WILDCARD = re.compile(rf"(?:\*\.|\.)(?:{_LABEL}\.)*{_LABEL}|(?:{_LABEL}\.)+\*")
# A regular-expression name (~...): nginx takes it as one token, so nothing
# that ends a token or a directive, and no quote: it is never in a shell.
_REGEX_NAME = re.compile(r"~[^\s;{}\"'`]+")
# Paths written into nginx's and systemd's files and handed to commands:
# letters, digits and . _ - + @ only, so no quoting is ever needed.
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]{0,31}")

# Trees the system and other software own. An app root there would have the
# role re-own or delete what is not its own.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/lost+found", "/proc",
    "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var/tmp", "/var/lib/gunicorn-",
    "/var/cache", "/var/log", "/var/spool", "/var/mail", "/var/backups", "/var/lib/dpkg", "/var/lib/apt",
    "/var/lib/systemd",
)
# What the app may never write, nor a directory that holds one of these:
# the system's code and configuration, the package manager's and systemd's
# state, the lock directory, other apps' state.
NOT_WRITABLE = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/sbin", "/sys",
    "/usr", "/var/lib/gunicorn-", "/var/lib/dpkg", "/var/lib/apt", "/var/lib/systemd", "/run/lock",
    "/run/systemd", "/var/cache/gunicorn-uvicorn-nginx",
)
# Directories that hold other things beside an app: an app root must be a
# directory of its own below them, never one of them.
SHARED_DIRECTORIES = (
    "/", "/home", "/media", "/mnt", "/opt", "/srv", "/var", "/var/lib", "/var/opt", "/var/www",
    "/usr/local", "/snap",
)
# Accounts and groups whose members have privileges (reading every log or
# secret, raw disks, Docker, sudo) or that belong to the system or to nginx:
# the app's user must be one of its own.
PRIVILEGED_ACCOUNTS = frozenset((
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "_apt", "messagebus", "sshd",
    "adm", "shadow", "disk", "sudo", "wheel", "docker", "lxd", "kvm", "systemd-journal", "staff", "tty",
    "kmem", "utmp", "users", "operator", "dialout", "cdrom", "floppy", "audio", "video", "plugdev",
    "netdev", "input", "render", "sgx", "crontab", "ssl-cert", "polkitd", "incus-admin", "libvirt",
))


def _under(path, tree):
    """Whether path is tree or inside it ("/var/lib/gunicorn-" is a prefix of names)."""
    if tree.endswith("-"):
        return path.startswith(tree)
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def safe_path(value):
    """An absolute, normalised path of letters, digits and . _ - + @: no '.',
    '..' or empty part, no trailing '/' (but '/' itself)."""
    if not isinstance(value, str) or not _SAFE_PATH.fullmatch(value):
        return False
    return posixpath.normpath(value) == value and not value.startswith("//")


def app_root(value):
    """A directory the app can have to itself: a safe path outside the system's
    trees and other than a directory apps share (/srv, /opt, /home, ...)."""
    if not safe_path(value) or value in SHARED_DIRECTORIES:
        return False
    if posixpath.dirname(value) == "/home":  # someone's home directory
        return False
    return not any(_under(value, tree) for tree in SYSTEM_TREES)


def writable_path(value, root=None):
    """A path the app may write besides its state directory: a safe path that
    neither holds nor lies in what the app may never write, and neither holds
    nor lies in the app root (its sealed code)."""
    if not safe_path(value) or value == "/":
        return False
    if any(_under(value, tree) or _under(tree.rstrip("-"), value) for tree in NOT_WRITABLE):
        return False
    if root and (_under(value, root) or _under(root, value)):
        return False
    return True


def server_names(value, for_certificate=False):
    """nginx's server_name: names separated by single spaces, each '_', a DNS
    name, a wildcard name, an IP address or a regular expression (~...).
    Names that go into a certificate must be DNS or wildcard names, '_'
    (the role's own name for the host) or an address."""
    if not isinstance(value, str):
        return False
    # An empty value, or two spaces, a leading or a trailing one, gives an
    # empty name, which no pattern below takes.
    for name in value.split(" "):
        if name == "_" or _DNS_NAME.fullmatch(name) or _WILDCARD.fullmatch(name) or network_address(name):
            continue
        if not for_certificate and _REGEX_NAME.fullmatch(name):
            continue
        return False
    return True


def network_address(value, prefix=False):
    """An IPv4 or IPv6 address (IPv6 without brackets), with a prefix length
    when prefix is true."""
    if not isinstance(value, str) or not value or value.strip() != value:
        return False
    try:
        if prefix and "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host_name(value):
    """A host name a resolver can look up: DNS labels separated by dots."""
    return isinstance(value, str) and len(value) <= 253 and bool(_HOST_NAME.fullmatch(value))


def dns_name(value):
    """One DNS name whose last label starts with a letter (a certificate's
    name for http-01: no address, wildcard, regular expression or "_")."""
    return isinstance(value, str) and len(value) <= 253 and "." in value and bool(_DNS_NAME.fullmatch(value))


def own_account(value):
    """A user or group name the app can have to itself: a valid name that is
    not a system account or a group that grants privileges."""
    return isinstance(value, str) and bool(_ACCOUNT.fullmatch(value)) and value not in PRIVILEGED_ACCOUNTS \
        and not value.startswith("systemd-")


# Shapes of single values: each matched whole (a trailing newline never
# passes). Named for what the value is, not for the variable.
PATTERNS = {
    # gunicorn_app_name: part of unit, path and nginx names.
    "app_name": r"[A-Za-z0-9][A-Za-z0-9_-]*",
    # Pins: one exact release (PEP 440's release, pre, post and dev parts).
    "exact_version": r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?",
    # Package indexes: http(s) without spaces, quotes or backslashes.
    "index_url": r"https?://[^\s\"'\\`]+",
    # A git URL, user@host:path or an absolute path; never an option (-...).
    "git_repo": r"((https?|ssh|git|file)://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!-)|/)[^\s\"'\\`]+",
    # gunicorn_app: module:variable or module:factory().
    "import_path": r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.()]*",
    # systemd's MemoryMax=: bytes with a unit, or a percentage; empty is none.
    "memory_max": r"([1-9][0-9]*[KMGT]?|[1-9][0-9]?%|100%)?",
    # gunicorn's forwarded_allow_ips: comma-separated, no spaces.
    "address_list": r"[^\s,]+(,[^\s,]+)*",
    # Environment variable and inventory group names.
    "identifier": r"[A-Za-z_][A-Za-z0-9_]*",
    # gunicorn_shared_paths: relative, no '.' or '..' part, no trailing '/'.
    "relative_path": r"(?!/)(?!.*(^|/)\.\.?(/|$))[^\s]+[^/\s]",
    # A release id as the history names it, or empty.
    "release_id": r"([0-9a-f]{12})?",
    # A URL path: the health path.
    "url_path": r"/\S*",
    # Snippet names: file names.
    "file_name": r"[A-Za-z0-9][A-Za-z0-9._-]*",
    # nginx sizes (client_max_body_size).
    "nginx_size": r"[0-9]+[kKmMgG]?",
    # URI prefixes of WebSocket locations.
    "websocket_location": r"/[A-Za-z0-9._~/-]*",
    # URI prefixes of static locations: start and end with '/', nothing that
    # ends an nginx token or starts a variable.
    "static_location": r"/[^\s;{}\"$'`\\]+/",
    "acme_email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "http_url": r"https?://[^\s]+",
}
_PATTERNS = {name: re.compile(pattern) for name, pattern in PATTERNS.items()}
_DOT_PART = re.compile(r"(^|/)\.\.?(/|$)")


def _shape(name):
    def test(value):
        return isinstance(value, str) and bool(_PATTERNS[name].fullmatch(value))
    test.__name__ = name
    return test


def git_revision(value):
    """A branch, tag or commit name: no option, no '..', no '.lock' or '/' at the end."""
    return (isinstance(value, str) and bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/+-]*", value))
            and ".." not in value and not value.endswith((".lock", "/")))


def static_path(value):
    """A static location's directory: relative to the release or absolute,
    without '.' or '..' parts or what ends an nginx token."""
    return (isinstance(value, str) and bool(re.fullmatch(r"[^\s;{}\"$'`\\]+", value))
            and not _DOT_PART.search(value))


def worker_count(value):
    """gunicorn_workers: "auto", or a number of workers (1 or more) as an integer or digits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 1
    return isinstance(value, str) and (value == "auto" or bool(re.fullmatch(r"[1-9][0-9]*", value)))


def within(value, paths):
    """A relative path that is one of paths or lies inside one."""
    return isinstance(value, str) and any(value == path or value.startswith(path + "/") for path in paths)


def one_line(value):
    """A string without a line break (it goes on one line of a unit file)."""
    return isinstance(value, str) and "\n" not in value and "\r" not in value


class TestModule:
    def tests(self):
        return {
            **{name: _shape(name) for name in PATTERNS},
            "git_revision": git_revision,
            "static_path": static_path,
            "worker_count": worker_count,
            "one_line": one_line,
            "within": within,
            "safe_path": safe_path,
            "app_root": app_root,
            "writable_path": writable_path,
            "server_names": server_names,
            "network_address": network_address,
            "host_name": host_name,
            "dns_name": dns_name,
            "own_account": own_account,
        }
