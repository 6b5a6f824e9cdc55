"""plugins/lookup/controller_json.py: a controller command's JSON, or the task
fails with what the command said on standard error."""

import pathlib
import sys

import pytest
from ansible.errors import AnsibleError

from plugin_loader import load

lookup = load("plugins/lookup/controller_json.py")
SOURCE = str(pathlib.Path(__file__).parents[2] / "roles/gunicorn_uvicorn_nginx/files/source.py")


def test_the_terms_are_the_arguments_as_one_list_or_one_by_one():
    assert lookup.arguments([["a", "b c", 3]]) == ["a", "b c", "3"]
    assert lookup.arguments(["a", "b c"]) == ["a", "b c"]


def test_the_output_comes_back_parsed():
    assert lookup.run([sys.executable, "-c", "print('{\"a\": [1, \"$(x)\"]}')"]) == {"a": [1, "$(x)"]}


def test_no_shell_sees_the_arguments(tmp_path):
    planted = tmp_path / "pwned"
    argv = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", f"; touch {planted}",
            f"$(touch {planted})"]
    assert lookup.run(argv) == argv[3:]
    assert not planted.exists()


def test_a_failing_command_fails_with_its_error_output():
    with pytest.raises(AnsibleError, match="gunicorn_app_src: .* is a symbolic link"):
        lookup.run([sys.executable, "-c", "import sys; sys.exit('gunicorn_app_src: x is a symbolic link')"])


def test_a_command_that_prints_no_json_or_cannot_run_fails():
    with pytest.raises(AnsibleError, match="printed no JSON"):
        lookup.run([sys.executable, "-c", "print('hello')"])
    with pytest.raises(AnsibleError, match="could not run"):
        lookup.run(["/nonexistent/command"])


def test_the_role_fingerprints_its_source_with_it(tmp_path):
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "config").symlink_to("/etc")
    with pytest.raises(AnsibleError, match="config is a symbolic link to /etc"):
        lookup.run([sys.executable, SOURCE, "fingerprint", str(tmp_path)])
    (tmp_path / "config").unlink()
    assert len(lookup.run([sys.executable, SOURCE, "fingerprint", str(tmp_path)])["code"]) > 8
