"""The README's examples that the suite runs."""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).parents[2]


def test_the_smallest_playbook_is_the_one_the_scenarios_converge_with():
    """Every scenario's first converge on a fresh minimal host runs the
    README's smallest playbook: the same play, with the hosts and the app's
    directory from the scenario's inventory, and root without become."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Example playbooks"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    [documented] = yaml.safe_load(block)
    [converge] = yaml.safe_load((ROOT / "molecule/shared/converge.yml").read_text())
    assert documented.pop("hosts") == "app" and converge.pop("hosts") == "all"
    # The scenarios' hosts are root through docker exec, without sudo.
    assert documented.pop("become") is True and "become" not in converge
    assert documented["roles"][0].pop("vars") == {"gunicorn_app_src": "app"}
    assert documented == converge
