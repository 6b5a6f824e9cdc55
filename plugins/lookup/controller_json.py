# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Run a command on the controller and return what it printed as JSON."""

DOCUMENTATION = r"""
name: controller_json
short_description: Run a command on the controller; its standard output, parsed as JSON
description:
  - Internal to the role gunicorn_uvicorn_nginx (tasks/source.yml runs its files/source.py with it).
  - The terms are the command's arguments, run without a shell, with the controller's environment.
  - It runs in the controller's own process, not as a module delegated to localhost, which costs about half
    a second per host and run before the command even starts.
  - A command that exits with another status than 0 fails the task with what it printed on standard error.
options:
  _terms: {description: The command and its arguments (one list, or one argument per term), required: true}
"""

RETURN = r"""
_raw: {description: What the command printed, parsed as JSON, type: list}
"""

import json
import subprocess

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase


def arguments(terms):
    """One list of strings, whether the terms were given as one list or one by one."""
    if len(terms) == 1 and isinstance(terms[0], (list, tuple)):
        terms = terms[0]
    return [str(term) for term in terms]


def run(argv):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as error:
        raise AnsibleError("could not run %s: %s" % (argv[0], error)) from error
    if result.returncode != 0:
        raise AnsibleError(result.stderr.strip() or "%s exited with status %d" % (argv[0], result.returncode))
    try:
        return json.loads(result.stdout)
    except ValueError as error:
        raise AnsibleError("%s printed no JSON: %s" % (argv[0], result.stdout[:200])) from error


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        argv = arguments(terms)
        if not argv:
            raise AnsibleError("controller_json: no command")
        return [run(argv)]
