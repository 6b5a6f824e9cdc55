"""plugins/filter/processes.py: the app's processes and scheduled jobs,
checked before anything touches a host, merged with the release's Procfile,
and quoted for a unit file."""

import pytest

from plugin_loader import load

processes = load("plugins/filter/processes.py")
problems = processes.process_problems


def test_good_processes_and_jobs_have_no_problem():
    assert problems([{"name": "worker", "command": "celery -A proj worker", "count": 2, "stop_timeout": 600},
                     {"name": "clock"}],
                    [{"name": "nightly", "command": "python manage.py clearsessions", "on_calendar": "*-*-* 03:00:00"},
                     {"name": "weekly_report", "command": "x", "on_calendar": "Mon..Fri 08:00 Europe/Berlin",
                      "timeout": 3600}]) == []


@pytest.mark.parametrize(("processes_", "schedules", "words"), [
    ([{"name": "a b", "command": "x"}], [], "item 1 ('a b'): name must be"),
    ([{"name": "../x", "command": "x"}], [], "name must be"),
    ([{"name": "w.x", "command": "x"}], [], "name must be"),
    ([{"name": "x" * 33, "command": "x"}], [], "name must be"),
    ([{"command": "x"}], [], "gunicorn_processes item 1: name must be"),
    ([{"name": "web", "command": "x"}], [], "must not be 'web'"),
    ([], [{"name": "release", "command": "x", "on_calendar": "daily"}], "must not be 'release'"),
    ([{"name": "a", "command": "x"}], [{"name": "a", "command": "x", "on_calendar": "daily"}],
     "gunicorn_schedules item 1 ('a'): name is also given in gunicorn_processes"),
    ([{"name": "a", "command": "x\nExecStartPre=/bin/evil"}], [], "one line without control characters"),
    ([{"name": "a", "command": " "}], [], "command must be a non-empty string"),
    ([{"name": "a", "command": "x", "count": 65}], [], "count must be"),
    ([{"name": "a", "command": "x", "count": True}], [], "count must be"),
    ([{"name": "a", "command": "x", "stop_timeout": 0}], [], "stop_timeout must be"),
    ([], [{"name": "a", "command": "x"}], "on_calendar must be"),
    ([], [{"name": "a", "command": "x", "on_calendar": "daily\n[Service]"}], "on_calendar must be"),
    ([], [{"name": "a", "command": "x", "on_calendar": "daily; rm"}], "on_calendar must be"),
    ([], [{"name": "a", "command": "x", "on_calendar": "daily", "timeout": -1}], "timeout must be"),
    ([], [{"name": "a", "on_calendar": "daily"}], "command must be a non-empty string"),
    ("worker", [], "gunicorn_processes: must be a list of dicts"),
])
def test_each_bad_item_is_named_with_what_is_wrong(processes_, schedules, words):
    found = problems(processes_, schedules)
    assert any(words in problem for problem in found), found


def test_a_process_without_a_command_needs_a_procfile_line():
    assert problems([{"name": "worker"}], [], {"worker": "rq worker"}) == []
    assert "the app's Procfile has no line 'worker'" in problems([{"name": "worker"}], [], {})[0]


def test_processes_come_from_the_variable_then_the_procfile_but_release():
    merged = processes.app_processes(
        [{"name": "worker", "count": 3}, {"name": "beat", "command": "celery beat", "stop_timeout": 5},
         {"name": "gone"}],
        {"release": "python manage.py migrate", "clock": "python clock.py", "worker": "celery worker"})
    assert merged == [{"name": "worker", "command": "celery worker", "count": 3, "stop_timeout": 30},
                      {"name": "beat", "command": "celery beat", "count": 1, "stop_timeout": 5},
                      {"name": "clock", "command": "python clock.py", "count": 1, "stop_timeout": 30}]
    assert processes.app_processes([], None) == []


def unquote_as_systemd(argument):
    """systemd's unquoting of one double-quoted ExecStart= word, with its
    specifier (%%) and variable ($$) escapes undone."""
    assert argument.startswith('"') and argument.endswith('"')
    body, out, index = argument[1:-1], "", 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            out += body[index + 1]
            index += 2
            continue
        assert char != '"', "an unescaped quote ends the word early"
        if char in "%$":
            assert body[index + 1] == char, f"a lone {char} would be expanded by systemd"
            index += 1
        out += char
        index += 1
    return out


@pytest.mark.parametrize("command", [
    "celery -A proj worker --loglevel info",
    'python manage.py report --label "nightly 100%" --dir "$STATE_DIRECTORY" ${HOME} \\n',
    "echo '%h %i $$' ; cd sub && ./run",
])
def test_a_command_reaches_sh_exactly_as_typed(command):
    line = processes.systemd_shell(command)
    assert line.startswith("/bin/bash -c ")
    assert unquote_as_systemd(line[len("/bin/bash -c "):]) == command


def test_a_command_with_a_newline_is_never_quoted_into_a_unit():
    with pytest.raises(ValueError):
        processes.systemd_shell("x\nExecStartPre=/bin/evil")
