"""meta/argument_specs.yml without a host: the spec declares exactly the
role's variables with the defaults of defaults/main/*.yml, the defaults pass
it, and values of the wrong type or outside the choices are refused naming
the variable. (The checks the spec cannot express run in tasks/validate.yml;
the default scenario's bad-input module proves end to end that a refusal
stops the run before the host changes.)"""

import pathlib

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROLE = pathlib.Path(__file__).parents[2] / "roles/gunicorn_uvicorn_nginx"
SPECS = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]
OPTIONS = SPECS["main"]["options"]
DEFAULTS = {name: value for path in sorted((ROLE / "defaults/main").glob("*.yml"))
            for name, value in yaml.safe_load(path.read_text()).items()}
# Declared without a default: the user must give the first; the second is a
# host variable whose absence means "use ansible_host, else the name".
WITHOUT_DEFAULT = {"gunicorn_app_src", "nginx_lb_address"}


def without_defaults(options):
    """The spec as the role's validation applies it to the values a play
    has: defaults are already in those values (defaults/main/)."""
    return {name: {key: value for key, value in option.items() if key not in ("default", "description")}
            | ({"options": without_defaults(option["options"])} if "options" in option else {})
            for name, option in options.items()}


VALIDATOR = ArgumentSpecValidator(without_defaults(OPTIONS))


def errors(values):
    return [str(error) for error in VALIDATOR.validate(values).errors]


def test_every_entry_point_takes_the_same_variables():
    assert set(SPECS) == {"main", "rollback", "status", "maintenance", "lb", "fleet", "stage"}
    assert all(SPECS[entry]["options"] == OPTIONS for entry in SPECS)


def test_the_spec_declares_exactly_the_variables_of_the_defaults():
    assert set(OPTIONS) - WITHOUT_DEFAULT == set(DEFAULTS)
    assert not {"default"} & set().union(*(OPTIONS[name] for name in WITHOUT_DEFAULT))


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_spec_default_is_the_default_of_defaults_main(name):
    assert OPTIONS[name].get("default") == DEFAULTS[name]


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_variable_is_described(name):
    assert OPTIONS[name].get("description"), name


def test_the_defaults_that_are_values_pass_the_spec():
    values = {name: value for name, value in DEFAULTS.items() if not (isinstance(value, str) and "{{" in value)}
    assert errors(values) == []


# Type and choice checks only the spec makes; each must name the variable.
REFUSED = [
    ("nginx_listen_port", "eighty"),
    ("gunicorn_bind_port", "eighty"),
    ("gunicorn_max_workers", [4]),
    ("gunicorn_worker_class", "gevent"),
    ("gunicorn_bind_mode", "pipe"),
    ("gunicorn_state", "gone"),
    ("gunicorn_log_level", "loud"),
    ("gunicorn_env", ["A=1"]),
    ("nginx_ipv6", "maybe"),
    ("nginx_snippets", [{"name": "a", "state": "gone"}]),
    ("nginx_snippets", [{"content": "no name"}]),
    ("nginx_snippets", [{"name": "both", "content": "x", "src": "y.j2"}]),
]


@pytest.mark.parametrize("name,value", REFUSED, ids=[f"{name}={value!r}" for name, value in REFUSED])
def test_wrong_type_or_choice_is_refused_naming_the_variable(name, value):
    found = errors({name: value})
    assert found, f"{name}={value!r} passed the spec"
    assert all(name in error for error in found), found


# Unset (null) is how the bind variables and gunicorn_threads say "not set":
# the spec must neither require them nor give them a value.
@pytest.mark.parametrize("name", ["gunicorn_bind_address", "gunicorn_bind_port", "gunicorn_threads"])
def test_unset_is_the_default_and_the_spec_leaves_it_unset(name):
    assert DEFAULTS[name] is None
    assert "default" not in OPTIONS[name] and not OPTIONS[name].get("required")


def test_the_mode_bound_defaults_of_validate_are_those_of_defaults_main():
    """tasks/validate.yml reports a variable set to other than its default
    where it takes no effect; its table must know the real defaults."""
    tasks = yaml.safe_load((ROLE / "tasks/validate.yml").read_text())
    [report] = [task for task in tasks if task["name"] == "Say which variables that are set take no effect here"]
    table = report["vars"]["__gunicorn_mode_bound"]
    assert table
    for row in table:
        assert row["default"] == DEFAULTS[row["var"]], row["var"]


def test_the_string_check_of_validate_covers_every_list_and_dict_of_the_spec():
    """argument_specs takes a string for a list or a dict without converting
    the variable itself; tasks/validate.yml refuses that for each of them."""
    tasks = yaml.safe_load((ROLE / "tasks/validate.yml").read_text())
    [check] = [task for task in tasks if task["name"] == "Refuse values the role cannot take"]
    checked = {item["var"]: item["kind"] for item in check["vars"]["__gunicorn_collections"]}
    assert checked == {name: option["type"] for name, option in OPTIONS.items() if option.get("type") in ("list", "dict")}


def test_every_rule_of_validate_is_one_expression_with_a_message():
    """Refuse values ... evaluates every rule in one task: each `ok` must be a
    single {{ expression }} (text around it would always be truthy) and name
    a variable its message is about."""
    tasks = yaml.safe_load((ROLE / "tasks/validate.yml").read_text())
    [check] = [task for task in tasks if task["name"] == "Refuse values the role cannot take"]
    rules = check["vars"]["__gunicorn_rules"]
    assert len(rules) > 50
    for rule in rules:
        assert set(rule) == {"var", "ok", "msg"}, rule
        assert rule["ok"].startswith("{{ ") and rule["ok"].endswith(" }}") and rule["ok"].count("{{") == 1, rule
        assert rule["var"] in OPTIONS or "{{" in rule["var"], rule["var"]


def test_no_description_holds_a_template():
    """Ansible templates the whole spec when it validates the arguments: a
    {{ ... }} in a description would be evaluated (and fail) on every run."""
    def texts(options):
        for option in options.values():
            description = option.get("description", "")
            yield " ".join(description) if isinstance(description, list) else description
            yield from texts(option.get("options", {}))
    for entry in SPECS.values():
        assert not [text for text in texts(entry["options"]) if "{{" in text or "{%" in text]
