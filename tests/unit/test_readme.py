"""The README's examples that the suite runs."""

import os
import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).parents[2]


def test_the_smallest_playbook_is_the_one_the_scenarios_converge_with():
    """Every scenario's first converge on a fresh minimal host runs the
    README's smallest playbook: the same play, with the hosts and the app's
    directory from the scenario's inventory, and root without become. The
    acme scenario's inventory is that example's: the uv project of
    examples/uv-app, served as the README says."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Example playbooks"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    [documented] = yaml.safe_load(block)
    [converge] = yaml.safe_load((ROOT / "molecule/shared/converge.yml").read_text())
    assert documented.pop("hosts") == "app" and converge.pop("hosts") == "all"
    # The scenarios' hosts are root through docker exec, without sudo.
    assert documented.pop("become") is True and "become" not in converge
    example = documented["roles"][0].pop("vars")
    assert documented == converge
    acme = yaml.safe_load((ROOT / "molecule/acme/molecule.yml").read_text())["provisioner"]["inventory"]
    given = acme["group_vars"]["all"]
    assert example == {"gunicorn_app_src": "shop", "gunicorn_app": given["gunicorn_app"]}
    assert given["gunicorn_app_src"].endswith("/uv-app") and "examples/uv-app" in readme


def test_the_variables_table_is_the_one_the_argument_specs_make():
    """meta/argument_specs.yml is the one source of every variable's type,
    default and description: the README's table is what
    scripts/readme-variables renders from it."""
    check = subprocess.run([sys.executable, str(ROOT / "scripts/readme-variables"), "--check"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_ansible_doc_renders_every_entry_point():
    specs = yaml.safe_load((ROOT / "roles/gunicorn_uvicorn_nginx/meta/argument_specs.yml").read_text())
    shown = subprocess.run(
        [str(pathlib.Path(sys.executable).with_name("ansible-doc")), "-t", "role",
         "pyweb.gunicorn_uvicorn_nginx.gunicorn_uvicorn_nginx"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks/collections"), "NO_COLOR": "1"})
    assert shown.returncode == 0, shown.stderr
    entry_points = re.findall(r"^ENTRY POINT: \W*(\w+)", shown.stdout, re.M)
    assert sorted(entry_points) == sorted(specs["argument_specs"]), shown.stdout[:2000]
    for name in specs["argument_specs"]["main"]["options"]:
        assert name in shown.stdout, name
