"""What of an app's source directory a release ships, run on the controller.

    source.py fingerprint SRC [--exclude PATTERN]...
    source.py archive SRC --expect CODE [--exclude PATTERN]...
    source.py supports REQUIRES_PYTHON VERSION
    source.py checkout REPO VERSION [--cache DIR]

Which files: in a git work tree, the files git tracks and the untracked ones
it does not ignore (an uncommitted fix deploys); anywhere else, every file.
Either way never what no release needs: VCS directories, bytecode,
virtualenvs (a directory with a pyvenv.cfg), node_modules, tool caches, and
what matches an --exclude pattern (gunicorn_app_src_exclude: a pattern with
no '/' matches a file or directory name anywhere, one with '/' the path from
SRC; shell-style wildcards, '*' crossing '/'). A symbolic link must point at
something that ships (it is shipped as a relative link); a link out of SRC,
to nothing or to what does not ship, a device, a FIFO, a socket or a name
that is not UTF-8 stops the run naming the path: nothing is followed. A .git
that git cannot read (not installed, another user's repository) stops it
too: every file, the ignored ones as well, would ship.

fingerprint prints {"code", "requirements", "deps", "procfile", "files", "bytes",
"git"}:
"code" is a SHA-256 over every shipped path with its kind, executable bit and
content (or link target); "deps" says how the app declares its dependencies,
the first of: a uv.lock beside pyproject.toml ("uv"), a poetry.lock beside
it ("poetry": its main group, as hashed requirements in "locked"), a
pyproject.toml with a [project] table ("pyproject"), top-level
requirements*.txt / constraints*.txt ("requirements"), or none;
whether the project itself is an installable package (it then goes into the
virtualenv too), and its requires-python. "requirements" is a SHA-256 over
what decides the virtualenv: those files (and the code, for a package). The
release id and the virtualenv's key derive from them, so an unchanged source
means no new release. "procfile" holds the process types of a top-level
Procfile ({name: command}, in order; {} without one): "web" is gunicorn's and
left out, "release" is the release command run once per deploy, every other
one a process beside the web app. A line that is not `name: command`, a name
given twice, or a command with a control character stops the run naming the
line.

archive writes the same files into one gzipped tar in the temporary
directory and checks that what it wrote has fingerprint CODE (the source may
have changed since), else deletes it; prints {"archive", "sha256", "files",
"bytes"}. Files are opened without following links and must be the ones
listed. Anything else that goes wrong (a file unreadable, ...) stops it
naming the path, without a traceback.

checkout makes a clean work tree of one commit of a git repository
(gunicorn_app_git_repo, gunicorn_app_git_version: a branch, tag or commit)
under the controller's cache (DIR, default ~/.cache/gunicorn-uvicorn-nginx/git):
a bare mirror per repository, fetched unless VERSION is a commit it already
has, and a work tree per commit, which fingerprint and archive then read
like any work tree (what the commit tracks). Prints {"src", "commit"}.
Concurrent runs take turns (a lock per repository); credentials in REPO
are never printed.

supports exits 0 when Python VERSION satisfies REQUIRES_PYTHON (a PEP 440
specifier set), else prints why and exits 2.
"""

import argparse
import fcntl
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import tomllib

NEVER_SHIPPED = [".git", ".hg", ".svn", ".bzr", "__pycache__", "*.pyc", "*.pyo", ".venv", "node_modules",
                 ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".coverage",
                 ".coverage.*", "htmlcov", "*.egg-info", ".idea", ".vscode", "*.swp", "*~", ".DS_Store"]
PIP_FILES = ("requirements*.txt", "constraints*.txt")
# git must answer about the work tree of the source, not one a hook's
# environment points at.
GIT_ENV = {name: value for name, value in os.environ.items()
           if name not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")}


class Refused(Exception):
    """A source the role will not ship; the message names the path."""


def excluded(relative, patterns):
    """Whether the path, or a directory it is in, matches a pattern: one with
    a '/' in it matches paths from the source ('*' crosses '/'), one without
    a name anywhere."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    for pattern in patterns:
        candidates = prefixes if "/" in pattern else parts
        if any(fnmatch.fnmatchcase(candidate, pattern.strip("/")) for candidate in candidates):
            return True
    return False


def git_dir_above(root):
    """The nearest directory from root upwards that holds a .git, or None."""
    probe = root
    while True:
        if os.path.lexists(os.path.join(probe, ".git")):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent


def git(root, *args):
    return subprocess.run(["git", "-C", root, *args], capture_output=True, env=GIT_ENV, check=False)


def git_listing(root):
    """The files git would ship from root (relative paths), or None when
    root is in no git work tree. Where there is a .git but git cannot answer
    (not installed, "dubious ownership", ...) the source is refused: every
    file would ship, the ignored ones too (.env)."""
    top = git_dir_above(root)
    if top is None:
        return None
    if shutil.which("git") is None:
        raise Refused(f"{root} is in a git work tree ({top}), but git is not installed on the controller: "
                      "install git, so that only what git tracks is shipped")
    inside = git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != b"true":
        why = inside.stderr.decode(errors="replace").strip() or "not inside its work tree"
        raise Refused(f"{root} is in a git work tree ({top}), but git cannot tell what it tracks: {why}")
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed.returncode != 0:
        raise Refused(f"git ls-files failed in {root}: {listed.stderr.decode(errors='replace').strip()}")
    paths = []
    for raw in listed.stdout.split(b"\0"):
        if not raw:
            continue
        path = name_of(raw.rstrip(b"/"))
        full = os.path.join(root, path)
        # A tracked file deleted in the work tree is not shipped.
        if not os.path.lexists(full):
            continue
        if os.path.isdir(full) and not os.path.islink(full):
            # A submodule or a repository inside the source: what its git ships.
            inner = git_listing(full)
            paths.extend(f"{path}/{name}" for name in (walk_files(full) if inner is None else inner))
        else:
            paths.append(path)
    return sorted(set(paths))


def name_of(raw):
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise Refused(f"{raw.decode(errors='replace')!r} has a name that is not UTF-8: rename it") from None


def walk_files(top):
    """Every file and link under top (no directories), relative to top."""
    return [relative for relative, kind in walk_listing(top) if kind != "dir"]


def walk_listing(root):
    """(relative path, "dir" or "other") of everything under root."""
    paths = []
    for current, dirs, files in os.walk(root):
        relative_dir = os.path.relpath(current, root)
        for names, kind in ((dirs, "dir"), (files, "other")):
            for name in names:
                relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                name_of(os.fsencode(relative))
                # os.walk lists a link to a directory among the directories.
                paths.append((relative, "other" if os.path.islink(os.path.join(current, name)) else kind))
    return paths


def entries(root, patterns):
    """(relative path, kind, lstat, link target) of everything shipped, sorted,
    and whether git chose the files."""
    listed = git_listing(root)
    from_git = listed is not None
    if listed is None:
        listed = [relative for relative, _ in walk_listing(root)]
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
    for relative in listed:
        if excluded(relative, patterns) or in_virtualenv(relative):
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
            found[relative] = ("dir", info, None)
        elif stat.S_ISREG(info.st_mode):
            found[relative] = ("file", info, None)
        else:
            kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                    else "a device")
            raise Refused(f"{relative} is {kind}: only files, directories and links inside the source are shipped")
    # A link must point at what ships (else the release holds a dangling link).
    shipped = set(found)
    for relative, (kind, _, target) in found.items():
        if kind == "link":
            pointed = os.path.normpath(os.path.join(os.path.dirname(relative), target))
            if pointed != "." and not (pointed in shipped or any(path.startswith(pointed + "/") for path in shipped)):
                raise Refused(f"{relative} is a symbolic link to {target}, which is not shipped (excluded, "
                              "ignored by git or untracked): ship it, or exclude the link too")
    if not any(kind == "file" for kind, _, _ in found.values()):
        raise Refused(f"{root} has no file to ship (all of it is excluded, or ignored by git)")
    return [(relative, *found[relative]) for relative in sorted(found)], from_git


def read(root, relative, info):
    """The file's bytes, from the file that was listed: never through a link
    swapped in since, nor from another file moved in its place."""
    try:
        handle = os.open(os.path.join(root, relative), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise Refused(f"{relative} changed during the run ({error.strerror}): run again") from None
    with os.fdopen(handle, "rb") as content:
        now = os.fstat(content.fileno())
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise Refused(f"{relative} changed during the run: run again")
        return content.read()


def dependencies(top):
    """How the app declares its dependencies, from its top-level files
    (name -> bytes): {"kind", "files", "packaged", "requires_python"}, and
    for Poetry "locked", the lock's main group as hashed requirements."""
    pyproject = toml(top, "pyproject.toml") if "pyproject.toml" in top else {}
    project = pyproject.get("project", {})
    tool = pyproject.get("tool", {})
    # What uv and Poetry themselves decide: a build system makes a package,
    # unless the tool's own switch says otherwise.
    packaged = "build-system" in pyproject
    locked = None
    if "uv.lock" in top and pyproject:
        kind, files = "uv", ["pyproject.toml", "uv.lock"]
        packaged = tool.get("uv", {}).get("package", packaged)
    elif "poetry.lock" in top and pyproject:
        kind, files = "poetry", ["poetry.lock", "pyproject.toml"]
        packaged = packaged and tool.get("poetry", {}).get("package-mode", True)
        locked = poetry_main_group(toml(top, "poetry.lock"))
    elif project:
        kind, files = "pyproject", ["pyproject.toml"]
    else:
        files = sorted(name for name in top if any(fnmatch.fnmatchcase(name, pattern) for pattern in PIP_FILES))
        kind, packaged = ("requirements" if files else "none"), False
    if kind == "requirements" and "requirements.txt" not in files:
        raise Refused(f"{', '.join(files)} but no requirements.txt: the role installs requirements.txt "
                      "(which may -r or -c the others)")
    requires_python = project.get("requires-python") if kind != "requirements" else None
    deps = {"kind": kind, "files": files, "packaged": bool(packaged), "requires_python": requires_python}
    return {**deps, "locked": locked} if locked is not None else deps


def toml(top, name):
    try:
        return tomllib.loads(top[name].decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise Refused(f"{name} is not valid TOML ({error}): fix it, or exclude it") from None


def poetry_main_group(lock):
    """What `poetry install --only main` installs, as a requirements file
    that pins every package to its locked version and hashes: the packages
    of the group main that no extra alone asks for, each with its markers.
    Only a lock of Poetry 2 (lock-version 2.1) says which group a package
    is in."""
    version = str(lock.get("metadata", {}).get("lock-version", "?"))
    if tuple(int(part) if part.isdigit() else -1 for part in version.split(".")) < (2, 1):
        raise Refused(f"poetry.lock has lock-version {version}, which does not record each package's groups: "
                      "lock it again with Poetry 2 (poetry lock)")
    lines = []
    for package in lock.get("package", []):
        name, groups = package.get("name", "?"), package.get("groups", [])
        if "main" not in groups or package.get("optional", False):
            continue
        where = package.get("source", {}).get("type", "legacy")
        if where != "legacy":
            raise Refused(f"poetry.lock: {name} comes from a {where} source; the role installs locked "
                          "packages from package indexes only (gunicorn_pip_index_url)")
        hashes = [entry["hash"] for entry in package.get("files", []) if "hash" in entry]
        if not hashes:
            raise Refused(f"poetry.lock: {name} has no file hashes to check its download against")
        markers = package.get("markers")
        if isinstance(markers, dict):
            markers = markers.get("main")
        # One requirement per package, never a line of options of its own.
        fields = [name, str(package.get("version", "")), markers or "", *hashes]
        if not (re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) and re.fullmatch(r"[A-Za-z0-9.+!_-]+", fields[1])
                and all(re.fullmatch(r"[a-z0-9]+:[0-9a-fA-F]+", digest) for digest in hashes)
                and not any(char in "".join(fields) for char in "\n\r\\#")):
            raise Refused(f"poetry.lock: the entry of package {name!r} is not one Poetry writes")
        line = f"{name}=={fields[1]}" + (f" ; {markers}" if markers else "")
        lines.append(" \\\n    ".join([line] + [f"--hash={digest}" for digest in hashes]))
    return "".join(f"{line}\n" for line in lines)


def supports(requires_python, version):
    """None when Python version satisfies the specifier set, else why not."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet  # ansible-core depends on packaging

    try:
        wanted = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return f"pyproject.toml: requires-python = {requires_python!r} is not a version specifier"
    if wanted.contains(version, prereleases=True):
        return None
    return f"the app requires Python {requires_python} (pyproject.toml), and the host has Python {version}"


PROCFILE_LINE = re.compile(r"([A-Za-z0-9_-]{1,32})[ \t]*:[ \t]*(.*?)[ \t]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def procfile(data):
    """A Procfile's process types: {name: command} in order, without "web"."""
    types = {}
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise Refused("Procfile is not UTF-8") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PROCFILE_LINE.fullmatch(line.rstrip("\r"))
        if not match or not match.group(2):
            raise Refused(f"Procfile line {number} is not 'name: command' (a name of letters, digits, '-' and '_', "
                          f"at most 32): {line!r}")
        name, command = match.groups()
        if CONTROL.search(command):
            raise Refused(f"Procfile line {number}: the command of {name!r} holds a control character")
        if name in types:
            raise Refused(f"Procfile line {number}: {name!r} is given twice")
        types[name] = command
    types.pop("web", None)
    return types


def digest_of(path):
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def fingerprint(root, shipped, contents=None):
    """The fingerprint of what ships; of `contents` (path -> bytes) where
    given, which is what the archive holds."""
    code = hashlib.sha256()
    files = size = 0
    top = {}
    for relative, kind, info, target in shipped:
        executable = "x" if info.st_mode & stat.S_IXUSR else "-"
        if kind == "file":
            data = contents[relative] if contents is not None else read(root, relative, info)
            content = hashlib.sha256(data).hexdigest()
            files += 1
            size += len(data)
            if "/" not in relative:
                top[relative] = data
        else:
            content = target or ""
        code.update(f"{relative}\0{kind}\0{executable}\0{content}\n".encode())
    deps = dependencies(top)
    requirements = hashlib.sha256(deps["kind"].encode())
    for name in deps["files"]:
        requirements.update(f"\0{name}\0{hashlib.sha256(top[name]).hexdigest()}".encode())
    if deps["packaged"]:
        requirements.update(f"\0code\0{code.hexdigest()}".encode())
    return {"code": code.hexdigest(), "requirements": requirements.hexdigest(), "deps": deps,
            "procfile": procfile(top["Procfile"]) if "Procfile" in top else {}, "files": files, "bytes": size}


def archive(root, shipped, path):
    """Write what ships into the gzipped tar at path; returns path -> bytes of
    the files as written."""
    contents = {}
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
                contents[relative] = read(root, relative, info)
                member.size = len(contents[relative])
                member.mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
                tar.addfile(member, io.BytesIO(contents[relative]))
    return contents


KEEP_TREES = 5


def without_credentials(text):
    return re.sub(r"(://)[^/@\s]*@", r"\1***@", text)


def checkout(repo, version, cache):
    """A work tree of the commit VERSION names in REPO: (path, commit)."""
    os.makedirs(cache, mode=0o700, exist_ok=True)
    key = hashlib.sha256(repo.encode()).hexdigest()[:16]
    mirror = os.path.join(cache, f"{key}.git")
    env = {**GIT_ENV, "GIT_TERMINAL_PROMPT": "0"}

    def run(*args, where=mirror):
        done = subprocess.run(["git", "-C", where, *args], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise Refused(f"git {args[0]} failed for {without_credentials(repo)}: "
                          f"{without_credentials(done.stderr.strip())}")
        return done.stdout.strip()

    def commit_of(name):
        done = subprocess.run(["git", "-C", mirror, "rev-parse", "--verify", "--quiet", "--end-of-options",
                               f"{name}^{{commit}}"], capture_output=True, text=True, env=env, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    with open(os.path.join(cache, f"{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(mirror):
            partial = f"{mirror}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            run("clone", "--quiet", "--mirror", "--", repo, partial, where=cache)
            os.rename(partial, mirror)
            commit = None
        else:
            # A commit already fetched never changes; a branch or tag may have.
            commit = commit_of(version) if re.fullmatch(r"[0-9a-f]{40}", version) else None
        if commit is None:
            run("fetch", "--quiet", "--prune", "--prune-tags", "origin")
            commit = commit_of(version)
        if commit is None:
            raise Refused(f"{version} is no branch, tag or commit of {without_credentials(repo)}")
        trees = os.path.join(cache, f"{key}.trees")
        tree = os.path.join(trees, commit)
        if not os.path.isfile(os.path.join(tree, ".git")):
            shutil.rmtree(tree, ignore_errors=True)
            run("worktree", "prune")
            run("worktree", "add", "--quiet", "--detach", "--force", tree, commit)
        os.utime(tree)
        old = sorted((entry.path for entry in os.scandir(trees) if entry.is_dir()),
                     key=os.path.getmtime, reverse=True)[KEEP_TREES:]
        for path in old:
            run("worktree", "remove", "--force", path)
    return tree, commit


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["fingerprint", "archive", "supports", "checkout"])
    parser.add_argument("src")
    parser.add_argument("version", nargs="?")
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--expect")
    parser.add_argument("--cache", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gunicorn-uvicorn-nginx", "git"))
    args = parser.parse_args(argv)
    if args.action == "checkout":
        try:
            tree, commit = checkout(args.src, args.version, args.cache)
        except (Refused, OSError) as refusal:
            print(f"gunicorn_app_git_repo: {without_credentials(str(refusal))}", file=sys.stderr)
            return 2
        print(json.dumps({"src": tree, "commit": commit}))
        return 0
    if args.action == "supports":
        why = supports(args.src, args.version)
        if why:
            print(why, file=sys.stderr)
        return 2 if why else 0
    root = os.path.realpath(args.src)
    path = None
    try:
        shipped, from_git = entries(root, NEVER_SHIPPED + args.exclude)
        if args.action == "fingerprint":
            result = {**fingerprint(root, shipped), "git": from_git}
        else:
            handle, path = tempfile.mkstemp(prefix="gunicorn-release-", suffix=".tar.gz")
            os.close(handle)
            packed = fingerprint(root, shipped, archive(root, shipped, path))
            if packed["code"] != args.expect:
                raise Refused(f"{root} changed during the run (its fingerprint is no longer {args.expect}): run again")
            result = {"archive": path, "sha256": digest_of(path), "files": packed["files"], "bytes": packed["bytes"]}
    except (Refused, OSError) as refusal:
        if path is not None:
            os.unlink(path)
        print(f"gunicorn_app_src: {refusal}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
