"""plugins/filter/variables.py: misspelt variables with the role's prefixes
are named, with the declared name they were probably meant to be."""

import pathlib

import yaml

from plugin_loader import load

variables = load("plugins/filter/variables.py")

SPECS = yaml.safe_load((pathlib.Path(__file__).parents[2]
                        / "roles/gunicorn_uvicorn_nginx/meta/argument_specs.yml").read_text())
DECLARED = sorted({name for entry in SPECS["argument_specs"].values() for name in entry["options"]})


def test_typos_are_named_with_the_closest_declared_name():
    given = ["gunicorn_worker", "gunicorn_shared_path", "uvicorn_verison", "gunicorn_workers", "ansible_host"]
    assert variables.unknown_variables(given, DECLARED) == [
        "gunicorn_shared_path (did you mean gunicorn_shared_paths?)",
        "gunicorn_worker (did you mean gunicorn_workers?)",
        "uvicorn_verison (did you mean uvicorn_version?)",
    ]


def test_declared_internal_foreign_and_playbook_names_pass():
    given = DECLARED + ["__gunicorn_release", "nginx_worker_processes", "inventory_hostname", "gunicorn_serial",
                        "app_gunicorn_x", 3]
    assert variables.unknown_variables(given, DECLARED) == []


def test_a_name_like_nothing_declared_is_named_alone():
    assert variables.unknown_variables(["gunicorn_zzzzzz"], DECLARED) == ["gunicorn_zzzzzz"]


def test_nginx_names_when_asked_for():
    assert variables.unknown_variables(["nginx_server_names", "nginx_worker_processes"], DECLARED, ["nginx_"]) == [
        "nginx_server_names (did you mean nginx_server_name?)", "nginx_worker_processes"]
