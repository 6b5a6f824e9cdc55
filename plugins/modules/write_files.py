#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Write several files of one owner and mode in one module call.

The template module costs three round trips per file (a stat, a transfer, a
copy), which on a deploy that writes a unit pair, an environment file and an
nginx site is most of a code-only release's time. Here the controller renders
the contents (``lookup('ansible.builtin.template', ...)``) and one call writes
each file that differs: into a new file beside it, then renamed over the name,
so a reader (nginx, systemd) sees the old file or the new one, never half of
one, and a symbolic link at the name is replaced, never followed.
"""

DOCUMENTATION = r"""
module: write_files
short_description: Write files of one owner and mode atomically, in one call
description:
  - Internal to the role gunicorn_uvicorn_nginx.
  - Each file whose content, owner, group or mode differs is written to a new file in its directory
    and renamed over its name; unchanged files are left alone.
  - A symbolic link at a name is replaced by the file, never followed. A directory there is an error.
  - Supports check mode and diff mode.
options:
  files: {type: dict, required: true, description: Path to the content it must have (text).}
  owner: {type: str, default: root, description: Owner of every file.}
  group: {type: str, default: root, description: Group of every file.}
  mode: {type: str, default: '0644', description: Mode of every file (octal digits).}
  backup:
    type: bool
    default: false
    description:
      - Keep a replaced file as a hard link named like the template module's backups (C(name.PID.TIME~)).
"""

RETURN = r"""
results:
  description: One entry per file, in the order given, as the template module would register it.
  type: list
  elements: dict
  contains:
    dest: {description: The path, type: str}
    changed: {description: Whether it was (or in check mode would be) written, type: bool}
    backup_file: {description: The backup of the replaced file (only with I(backup) when one existed), type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.atomic import WriteError, write_files


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "dict", "required": True},
            "owner": {"type": "str", "default": "root"},
            "group": {"type": "str", "default": "root"},
            "mode": {"type": "str", "default": "0644"},
            "backup": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not params["mode"].isdigit() or len(params["mode"]) > 4 or "8" in params["mode"] or "9" in params["mode"]:
        module.fail_json(msg=f"mode must be octal digits, not {params['mode']!r}")
    for path, content in params["files"].items():
        if not isinstance(content, str):
            module.fail_json(msg=f"{path}: its content must be text")
    try:
        results, diffs = write_files(params["files"], params["owner"], params["group"], params["mode"],
                                     params["backup"], module.check_mode)
    except (WriteError, OSError) as error:
        module.fail_json(msg=str(error))
    answer = {"changed": any(result["changed"] for result in results), "results": results}
    if module._diff:
        answer["diff"] = diffs
    module.exit_json(**answer)


if __name__ == "__main__":
    main()
