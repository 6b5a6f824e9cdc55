"""plugins/modules/write_files.py: several files written in one call, each
atomically, a link at a name replaced and never followed. Its helpers on real
files, and the module run as Ansible runs it (a JSON file of arguments)."""

import grp
import os
import pathlib
import pwd
import stat

import pytest

from plugin_loader import load, run_module

writer = load("plugins/modules/write_files.py")

# Whoever runs the tests owns what they write (root in CI, anyone here).
OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def call(check_mode=False, diff=False, **args):
    """The module as Ansible runs it: (its parsed result, its exit status)."""
    arguments = {"owner": OWNER, "group": GROUP, **args}
    if check_mode:
        arguments["_ansible_check_mode"] = True
    if diff:
        arguments["_ansible_diff"] = True
    return run_module("plugins/modules/write_files.py", arguments, os.environ.get("TMPDIR", "/tmp"))


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_new_and_changed_files_are_written_and_unchanged_ones_left_alone(tmp_path):
    same, changed, new = tmp_path / "same.conf", tmp_path / "changed.conf", tmp_path / "new.conf"
    same.write_text("kept\n")
    same.chmod(0o644)
    changed.write_text("old\n")
    changed.chmod(0o644)
    inode = same.stat().st_ino
    result, rc = call(files={str(same): "kept\n", str(changed): "new\n", str(new): "made\n"})
    assert rc == 0 and result["changed"], result
    assert [(entry["dest"], entry["changed"]) for entry in result["results"]] == [
        (str(same), False), (str(changed), True), (str(new), True)]
    assert same.stat().st_ino == inode
    assert changed.read_text() == "new\n" and new.read_text() == "made\n"
    assert mode_of(new) == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == ["changed.conf", "new.conf", "same.conf"]
    again, rc = call(files={str(same): "kept\n", str(changed): "new\n", str(new): "made\n"})
    assert rc == 0 and not again["changed"], again


def test_a_changed_mode_alone_is_mended_in_place(tmp_path):
    secret = tmp_path / "app.env"
    secret.write_text("A=1\n")
    secret.chmod(0o644)
    inode = secret.stat().st_ino
    result, rc = call(files={str(secret): "A=1\n"}, mode="0600")
    assert rc == 0 and result["changed"], result
    assert mode_of(secret) == 0o600 and secret.stat().st_ino == inode


def test_a_link_at_the_name_is_replaced_and_its_target_untouched(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("not ours\n")
    link = tmp_path / "site.conf"
    link.symlink_to(target)
    result, rc = call(files={str(link): "server {}\n"})
    assert rc == 0 and result["changed"], result
    assert not link.is_symlink() and link.read_text() == "server {}\n"
    assert target.read_text() == "not ours\n"


def test_a_replaced_file_is_kept_as_a_backup_when_asked(tmp_path):
    site = tmp_path / "site.conf"
    site.write_text("old\n")
    result, rc = call(files={str(site): "new\n"}, backup=True)
    [entry] = result["results"]
    assert rc == 0 and pathlib.Path(entry["backup_file"]).read_text() == "old\n", result
    assert entry["backup_file"].startswith(f"{site}.") and entry["backup_file"].endswith("~")
    new, rc = call(files={str(tmp_path / "new.conf"): "x\n"}, backup=True)
    assert rc == 0 and "backup_file" not in new["results"][0], new


def test_check_mode_reports_and_writes_nothing_even_where_directories_are_missing(tmp_path):
    site = tmp_path / "site.conf"
    site.write_text("old\n")
    missing = tmp_path / "not-yet" / "app.service"
    result, rc = call(check_mode=True, diff=True, files={str(site): "new\n", str(missing): "[Unit]\n"})
    assert rc == 0 and result["changed"], result
    assert site.read_text() == "old\n" and not missing.parent.exists()
    assert [(diff["before"], diff["after"]) for diff in result["diff"]] == [("old\n", "new\n"), ("", "[Unit]\n")]


def test_refusals_name_the_path_and_write_nothing(tmp_path):
    directory = tmp_path / "taken"
    directory.mkdir()
    result, rc = call(files={str(directory): "x\n"})
    assert rc == 1 and result["msg"] == f"{directory} is a directory", result
    result, rc = call(files={str(tmp_path / "missing" / "a.conf"): "x\n"})
    assert rc == 1 and "its directory" in result["msg"] and "does not exist" in result["msg"], result
    result, rc = call(files={"relative.conf": "x\n"})
    assert rc == 1 and "not an absolute path" in result["msg"], result
    result, rc = call(files={str(tmp_path / "a.conf"): "x\n"}, mode="0999")
    assert rc == 1 and "octal" in result["msg"] and not (tmp_path / "a.conf").exists(), result


def test_an_interrupted_write_leaves_the_old_file_and_no_rest(tmp_path, monkeypatch):
    site = tmp_path / "site.conf"
    site.write_text("old\n")

    def broken_rename(source, destination):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError):
        writer.write_files({str(site): "new\n"}, OWNER, GROUP, "0644")
    assert site.read_text() == "old\n"
    assert [path.name for path in tmp_path.iterdir()] == ["site.conf"]
