"""What of an app's source directory a release ships, run on the controller.

    source.py fingerprint SRC [--exclude PATTERN]...
    source.py archive SRC --expect CODE [--exclude PATTERN]...

Which files: in a git work tree, the files git tracks and the untracked ones
it does not ignore (an uncommitted fix deploys); anywhere else, every file.
Either way never what no release needs: VCS directories, bytecode,
virtualenvs (a directory with a pyvenv.cfg), node_modules, tool caches, and
what matches an --exclude pattern (gunicorn_app_src_exclude: a pattern with
no '/' matches a file or directory name anywhere, one with '/' the path from
SRC; shell-style wildcards). A symbolic link must stay inside SRC (it is
shipped as a link); a link out of it, a device, a FIFO or a socket stops
the run naming the path: nothing is followed.

fingerprint prints {"code", "requirements", "files", "bytes", "git"}: SHA-256
over every shipped path with its kind, executable bit and content (or link
target), and over the top-level requirements*.txt and constraints*.txt
alone ("" if there are none). The release id and the virtualenv's key derive
from them, so an unchanged source means no new release.

archive writes the same files into one gzipped tar in the temporary
directory, after checking that the source still has fingerprint CODE (it may
have changed since), and prints {"archive", "sha256", "files", "bytes"}.
"""

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

NEVER_SHIPPED = [".git", ".hg", ".svn", ".bzr", "__pycache__", "*.pyc", "*.pyo", ".venv", "node_modules",
                 ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".coverage",
                 ".DS_Store"]
PIP_FILES = ("requirements*.txt", "constraints*.txt")


class Refused(Exception):
    """A source the role will not ship; the message names the path."""


def excluded(relative, patterns):
    """Whether the path, or a directory it is in, matches a pattern."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    for pattern in (pattern.strip("/") for pattern in patterns):
        candidates = prefixes if "/" in pattern else parts
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            return True
    return False


def git_listing(root):
    """The files git would ship from root (relative paths), or None when
    root is not in a git work tree."""
    if shutil.which("git") is None:
        probe = root
        while True:
            if os.path.exists(os.path.join(probe, ".git")):
                raise Refused(f"{root} is in a git work tree ({probe}), but git is not installed on the "
                              "controller: install git, so that only what git tracks is shipped")
            parent = os.path.dirname(probe)
            if parent == probe:
                return None
            probe = parent
    inside = subprocess.run(["git", "-C", root, "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True, check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    listed = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=False)
    if listed.returncode != 0:
        raise Refused(f"git ls-files failed in {root}: {listed.stderr.decode(errors='replace').strip()}")
    # A tracked file deleted in the work tree is not shipped.
    return sorted({path for path in listed.stdout.decode().split("\0")
                   if path and os.path.lexists(os.path.join(root, path))})


def walk_listing(root, base=""):
    """Every path under root/base (directories too), relative to root."""
    paths = []
    for current, dirs, files in os.walk(os.path.join(root, base)):
        relative_dir = os.path.relpath(current, root)
        for name in dirs + files:
            paths.append(name if relative_dir == "." else f"{relative_dir}/{name}")
    return paths


def entries(root, patterns):
    """(relative path, kind, lstat, link target) of everything shipped, sorted,
    and whether git chose the files."""
    listed = git_listing(root)
    from_git = listed is not None
    if listed is None:
        listed = walk_listing(root)
    virtualenv = {}

    def in_virtualenv(relative):
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in virtualenv:
                virtualenv[directory] = os.path.isfile(os.path.join(root, directory, "pyvenv.cfg"))
            if virtualenv[directory]:
                return True
        return False

    found = {}
    pending = list(listed)
    while pending:
        relative = pending.pop()
        if relative in found or excluded(relative, patterns) or in_virtualenv(relative):
            continue
        path = os.path.join(root, relative)
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(path)
            resolved = os.path.realpath(path)
            if os.path.commonpath([resolved, root]) != root:
                raise Refused(f"{relative} is a symbolic link to {target}, outside gunicorn_app_src ({root}): "
                              "copy what it points to into the source, or exclude it with gunicorn_app_src_exclude")
            if not os.path.exists(resolved):
                raise Refused(f"{relative} is a symbolic link to {target}, which does not exist")
            # Shipped as a relative link, so that it points into the release.
            found[relative] = ("link", info, os.path.relpath(resolved, os.path.realpath(os.path.dirname(path))))
        elif stat.S_ISDIR(info.st_mode):
            if from_git:
                # A submodule: git lists its directory only.
                pending.extend(walk_listing(root, relative))
            else:
                found[relative] = ("dir", info, None)
        elif stat.S_ISREG(info.st_mode):
            found[relative] = ("file", info, None)
        else:
            kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                    else "a device")
            raise Refused(f"{relative} is {kind}: only files, directories and links inside the source are shipped")
    return [(relative, *found[relative]) for relative in sorted(found)], from_git


def digest_of(path):
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def fingerprint(root, shipped):
    code, requirements = hashlib.sha256(), hashlib.sha256()
    pip_files = files = size = 0
    for relative, kind, info, target in shipped:
        executable = "x" if info.st_mode & stat.S_IXUSR else "-"
        if kind == "file":
            content = digest_of(os.path.join(root, relative))
            files += 1
            size += info.st_size
            if "/" not in relative and any(fnmatch.fnmatchcase(relative, pattern) for pattern in PIP_FILES):
                requirements.update(f"{relative}\0{content}\n".encode())
                pip_files += 1
        else:
            content = target or ""
        code.update(f"{relative}\0{kind}\0{executable}\0{content}\n".encode())
    return {"code": code.hexdigest(), "requirements": requirements.hexdigest() if pip_files else "",
            "files": files, "bytes": size}


def archive(root, shipped):
    handle, path = tempfile.mkstemp(prefix="gunicorn-release-", suffix=".tar.gz")
    os.close(handle)
    with tarfile.open(path, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        for relative, kind, info, target in shipped:
            member = tarfile.TarInfo(relative)
            member.mtime = int(info.st_mtime)
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            if kind == "dir":
                member.type, member.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(member)
            elif kind == "link":
                member.type, member.linkname, member.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(member)
            else:
                member.size = info.st_size
                member.mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
                with open(os.path.join(root, relative), "rb") as content:
                    tar.addfile(member, content)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["fingerprint", "archive"])
    parser.add_argument("src")
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--expect")
    args = parser.parse_args(argv)
    root = os.path.realpath(args.src)
    try:
        shipped, from_git = entries(root, NEVER_SHIPPED + args.exclude)
        result = {**fingerprint(root, shipped), "git": from_git}
        if args.action == "archive":
            if result["code"] != args.expect:
                raise Refused(f"{root} changed during the run (its fingerprint is no longer {args.expect}): run again")
            path = archive(root, shipped)
            result = {"archive": path, "sha256": digest_of(path), "files": result["files"],
                      "bytes": result["bytes"]}
    except Refused as refusal:
        print(f"gunicorn_app_src: {refusal}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
