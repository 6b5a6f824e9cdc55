#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Ship a release's archive and unpack it, in one task.

Its action plugin (plugins/action/unpack_release.py) packs the app's source
on the controller with the role's files/source.py, sends the archive into the
connection's temporary directory and runs this module, which checks the
archive's SHA-256, unpacks it into a new release directory (as root, owners
and modes from the archive ignored) and hands the directory to its owner and
group. The archive is removed on both sides, whatever happens.
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
  src: {type: path, description: Set by the action plugin - the archive on the host.}
  sha256: {type: str, description: Set by the action plugin - the archive's SHA-256.}
"""

RETURN = r"""
release_dir: {description: The release's directory, type: str}
sha256: {description: The archive's SHA-256, type: str}
"""

import hashlib
import os
import subprocess

from ansible.module_utils.basic import AnsibleModule


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            run = subprocess.run(argv, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                return f"{argv[0]} failed: {run.stderr.strip()}"
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
            "src": {"type": "path", "required": True},
            "sha256": {"type": "str", "required": True},
        },
    )
    params = module.params
    error = unpack(params["src"], params["sha256"], params["release_dir"], params["owner"], params["group"])
    if error:
        module.fail_json(msg=error)
    module.exit_json(changed=True, release_dir=params["release_dir"], sha256=params["sha256"])


if __name__ == "__main__":
    main()
