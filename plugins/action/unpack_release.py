# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""The controller's half of unpack_release (see plugins/modules/unpack_release.py):
pack, send, unpack, in one task and one transfer, the archive removed on
both sides whatever happens."""

import json
import os
import subprocess

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if self._task.check_mode:
            raise AnsibleActionFail("unpack_release builds a release and does not run in check mode")
        archive = None
        try:
            packed = subprocess.run([str(part) for part in args["pack"]], capture_output=True, text=True,
                                    check=False)
            if packed.returncode != 0:
                raise AnsibleActionFail(f"packing the app's source failed: {packed.stderr.strip()}")
            made = json.loads(packed.stdout)
            archive = made["archive"]
            remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "release.tar.gz")
            self._transfer_file(archive, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            args.update(src=remote, sha256=made["sha256"])
            result = self._execute_module(module_name="pyweb.gunicorn_uvicorn_nginx.unpack_release",
                                          module_args=args, task_vars=task_vars)
            result["files"] = made.get("files")
            return result
        finally:
            if archive and os.path.exists(archive):
                os.unlink(archive)
            self._remove_tmp_path(self._connection._shell.tmpdir)
