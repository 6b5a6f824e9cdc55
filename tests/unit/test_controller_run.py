"""plugins/lookup/controller_run.py: the run the deploy lock records. Ansible's
workers are forks of ansible-playbook, so every fork of a process must name
the same run; a process that is not Ansible is never told alive or ended."""

import os

from plugin_loader import load

run = load("plugins/lookup/controller_run.py")


def identity_in_a_fork():
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.write(write, repr(run.identity()).encode())
        os._exit(0)  # pylint: disable=protected-access
    os.close(write)
    with os.fdopen(read) as handle:
        text = handle.read()
    os.waitpid(child, 0)
    return eval(text)  # pylint: disable=eval-used


def test_a_fork_names_the_same_run_as_its_parent():
    mine = run.identity()
    assert mine["pid"] == run.main_process()[0]
    assert identity_in_a_fork() == mine
    assert mine["id"] == "%s/%s:%s" % (run.controller(), mine["pid"], mine["start"])
    assert mine["start"] == run.started(mine["pid"]) and mine["start"] > 0


def test_a_process_that_is_not_ansible_names_no_controller(monkeypatch):
    # A lock such a process took could never be told ended or alive.
    monkeypatch.setattr(run, "command_line", lambda pid: b"/usr/bin/python3\0-m\0pytest\0")
    assert run.identity()["controller"] is None
    monkeypatch.setattr(run, "command_line", lambda pid: b"/usr/bin/python3\0/usr/bin/ansible-playbook\0")
    assert run.identity()["controller"] == run.controller()


def test_alive_lists_only_processes_that_run_ansible(monkeypatch):
    lines = {1: b"/sbin/init\0", 42: b"/usr/bin/python3\0/usr/bin/ansible-playbook\0site.yml\0",
             43: b"/usr/bin/python3\0/usr/bin/ansible-playbook\0site.yml\0"}
    monkeypatch.setattr(run.os, "listdir", lambda path: ["1", "42", "43", "self", "net"])
    monkeypatch.setattr(run, "command_line", lines.get)
    monkeypatch.setattr(run, "started", lambda pid: pid * 10)
    assert run.alive() == ["42:420", "43:430"]
    assert run.identity(with_alive=False)["alive"] == []


def test_a_controller_without_proc_names_no_controller_and_no_run_alive(monkeypatch):
    """macOS has no /proc: the run still gets an id, but another run can never
    tell it ended (its lock goes by the lease)."""
    def no_proc(path):
        raise FileNotFoundError(path)
    monkeypatch.setattr(run.os, "listdir", no_proc)
    monkeypatch.setattr(run, "command_line", lambda pid: None)
    monkeypatch.setattr(run, "parent", lambda pid: None)
    monkeypatch.setattr(run, "started", lambda pid: None)
    found = run.identity(with_alive=True)
    assert found["controller"] is None and found["alive"] == [] and found["id"].endswith(":None")
