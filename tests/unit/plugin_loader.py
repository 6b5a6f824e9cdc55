"""The collection's plugins and the role's scripts as Python modules, for
the unit tests (they are files of Ansible's, not an importable package)."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).parents[2]


def load(relative):
    """The module at ROOT/relative, executed once for the test module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
