"""The collection's plugins and the role's scripts as Python modules, for
the unit tests (they are files of Ansible's, not an importable package).
Plugins import the collection's module_utils as Ansible lets them
(ansible_collections.pyweb.gunicorn_uvicorn_nginx...): the clone is that
collection through playbooks/collections, for imports here and for modules
run as Ansible runs them (run_module)."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[2]
COLLECTIONS = str(ROOT / "playbooks/collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


def load(relative):
    """The module at ROOT/relative, executed once for the test module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_module(relative, arguments, directory, env=None):
    """The module at ROOT/relative as Ansible runs it (a JSON file of
    arguments, written in directory): (its parsed result, its exit status)."""
    path = pathlib.Path(directory) / f"module-args-{os.getpid()}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": arguments}))
    try:
        result = subprocess.run([sys.executable, str(ROOT / relative), str(path)], capture_output=True, text=True,
                                check=False, env={**os.environ, "PYTHONPATH": COLLECTIONS, **(env or {})})
    finally:
        path.unlink()
    try:
        return json.loads(result.stdout), result.returncode
    except ValueError:
        raise AssertionError(result.stdout + result.stderr) from None
