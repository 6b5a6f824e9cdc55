# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Jinja filters of the role gunicorn_uvicorn_nginx on its variables' names.

A misspelt variable (``gunicorn_worker: 4``, ``gunicorn_shared_path``) was
silently ignored: the role took the default and the run succeeded. The role
knows every name it takes (meta/argument_specs.yml), so names with its own
prefixes that no entry point declares are reported with the closest declared
name. Only names are handled: values (secrets) never are.
"""

DOCUMENTATION = r"""
name: variables
short_description: Names of variables with the role's prefixes that it does not declare
description:
  - Internal to the role gunicorn_uvicorn_nginx. Filter C(unknown_variables).
"""

import difflib

# Variables of the collection's playbooks (playbooks/site.yml), not of the role.
PLAYBOOK_VARIABLES = frozenset(("gunicorn_serial",))


def unknown_variables(names, declared, prefixes=("gunicorn_", "uvicorn_")):
    """Each of NAMES that starts with one of PREFIXES and is not DECLARED, as
    'name' or 'name (did you mean declared_name?)', sorted."""
    known = sorted(set(declared) | PLAYBOOK_VARIABLES)
    found = []
    for name in sorted({name for name in names if isinstance(name, str)}):
        if not name.startswith(tuple(prefixes)) or name in known:
            continue
        closest = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        found.append(f"{name} (did you mean {closest[0]}?)" if closest else name)
    return found


class FilterModule:
    def filters(self):
        return {"unknown_variables": unknown_variables}
