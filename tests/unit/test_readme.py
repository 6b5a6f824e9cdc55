"""The README's examples that the suite runs."""

import pathlib
import re

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
