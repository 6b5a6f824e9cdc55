#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Ship a release's archive and unpack it, in one task.

Its action plugin (plugins/action/unpack_release.py) packs the app's source
on the controller with the role's files/source.py, sends the archive into the
connection's temporary directory and runs this module, which makes the app's
directories (or mends their owners and modes), removes what an interrupted
build left, checks the archive's SHA-256, unpacks it into a new release
directory (as root, owners and modes from the archive ignored), hands the
directory to its owner and group, and writes the release's environment file.
The archive is removed on both sides, whatever happens.
"""

DOCUMENTATION = r"""
module: unpack_release
short_description: Pack the app's source on the controller, send it and unpack it into a new release
description:
  - Internal to the role gunicorn_uvicorn_nginx.
  - The action plugin runs I(pack) on the controller; it must print C({"archive", "sha256"}) as JSON.
  - The release directory must not exist; its parent must.
  - Not in check mode (the role builds no release there).
options:
  pack: {type: list, elements: str, required: true, description: The controller's command that writes the archive.}
  release_dir: {type: path, required: true, description: The new release's directory.}
  owner: {type: str, required: true, description: Who owns the unpacked files.}
  group: {type: str, required: true, description: Their group.}
  directories:
    type: list
    elements: dict
    default: []
    description:
      - "Directories to make first, or whose owner and mode to mend, in order: C({path, owner, group, mode})
        (C(install -d))."
  remove:
    type: list
    elements: str
    default: []
    description: Paths or glob patterns to remove (C(rm -rf)) after the directories are made.
  env_file: {type: path, description: The release's environment file, written root-owned, mode 0600.}
  marker_file: {type: path, description: "A file written root-owned, mode 0644, after the directories are made:
    the app root's marker."}
  marker: {type: str, default: '', description: Its content.}
  env: {type: str, description: Its content (secrets; never printed).}
  src: {type: path, description: Set by the action plugin - the archive on the host.}
  sha256: {type: str, description: Set by the action plugin - the archive's SHA-256.}
"""

RETURN = r"""
release_dir: {description: The release's directory, type: str}
sha256: {description: The archive's SHA-256, type: str}
"""

import glob
import hashlib
import os
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(argv):
    """An error message, or None when ARGV succeeded."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return f"{argv[0]} failed: {done.stderr.strip()}" if done.returncode != 0 else None


def prepare(directories, remove):
    """Make DIRECTORIES (or mend them), then remove what REMOVE matches; an error message or None."""
    for directory in directories:
        mode = directory["mode"]
        mode = format(mode, "o") if isinstance(mode, int) else str(mode)
        error = run(["install", "-d", "-o", str(directory["owner"]), "-g", str(directory["group"]), "-m", mode,
                     "--", str(directory["path"])])
        if error:
            return error
    doomed = sorted({path for pattern in remove for path in glob.glob(pattern)})
    return run(["rm", "-rf", "--", *doomed]) if doomed else None


def write_file(path, content, mode=0o600):
    """CONTENT as PATH, root's: a new file renamed over the name (a link there is replaced, never followed)."""
    descriptor, new = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(content)
            os.fchmod(handle.fileno(), mode)
        os.rename(new, path)
    except BaseException:
        if os.path.lexists(new):
            os.unlink(new)
        raise


def unpack(archive, expected, release_dir, owner, group):
    """Unpack ARCHIVE into the new RELEASE_DIR; return an error message or None."""
    try:
        found = sha256_of(archive)
        if found != expected:
            return f"the archive of the release arrived damaged (SHA-256 {found}, sent {expected})"
        os.mkdir(release_dir, 0o750)
        steps = [
            ["tar", "--extract", "--gzip", "--file", archive, "--directory", release_dir,
             "--no-same-owner", "--no-same-permissions"],
            # chown -R and chmod -R follow no link inside the directory.
            ["chown", "-R", "--", f"{owner}:{group}", release_dir],
            ["chmod", "-R", "u=rwX,g=rX,o=", release_dir],
        ]
        for argv in steps:
            error = run(argv)
            if error:
                return error
        return None
    except OSError as error:
        return str(error)
    finally:
        if os.path.lexists(archive):
            os.unlink(archive)


def main():
    module = AnsibleModule(
        argument_spec={
            "pack": {"type": "list", "elements": "str", "required": True},
            "release_dir": {"type": "path", "required": True},
            "owner": {"type": "str", "required": True},
            "group": {"type": "str", "required": True},
            "directories": {"type": "list", "elements": "dict", "default": []},
            "remove": {"type": "list", "elements": "str", "default": []},
            "env_file": {"type": "path"},
            "env": {"type": "str", "no_log": True},
            "marker_file": {"type": "path"},
            "marker": {"type": "str", "default": ""},
            "src": {"type": "path", "required": True},
            "sha256": {"type": "str", "required": True},
        },
    )
    params = module.params
    error = prepare(params["directories"], params["remove"])
    if not error and params["marker_file"]:
        try:
            write_file(params["marker_file"], params["marker"], 0o644)
        except OSError as failure:
            error = f"{params['marker_file']}: {failure.strerror}"
    if error:
        os.unlink(params["src"])
        module.fail_json(msg=error)
    error = unpack(params["src"], params["sha256"], params["release_dir"], params["owner"], params["group"])
    if error:
        module.fail_json(msg=error)
    if params["env_file"]:
        try:
            write_file(params["env_file"], params["env"] or "")
        except OSError as failure:
            module.fail_json(msg=f"{params['env_file']}: {failure.strerror}")
    module.exit_json(changed=True, release_dir=params["release_dir"], sha256=params["sha256"])


if __name__ == "__main__":
    main()
