"""plugins/modules/start_pair.py: the records it writes once the new pair
answers (systemd's part needs a host: the Molecule scenarios start pairs)."""

import os

import pytest

from plugin_loader import load, run_module

pair = load("plugins/modules/start_pair.py")


@pytest.mark.parametrize(("before", "release", "rollback", "after"), [
    ("", "a", False, ["a"]),
    ("a\nb\n", "c", False, ["a", "b", "c"]),
    # A deploy of what serves already (new settings) adds no line.
    ("a\nb\n", "b", False, ["a", "b"]),
    # A rollback pops the release it leaves, so the next goes further back.
    ("a\nb\nc\n", "b", True, ["a", "b"]),
    ("a\nb\nc\n", "a", True, ["a", "b", "a"]),
    ("b\n", "a", True, ["a"]),
    # Blank lines (a hand edit) are not releases.
    ("a\n\nb\n\n", "c", False, ["a", "b", "c"]),
])
def test_the_history_gains_the_release_once_and_a_rollback_pops_the_one_it_leaves(before, release, rollback, after):
    assert pair.recorded_history(before, release, rollback) == after


def test_records_are_written_and_the_previous_history_kept(tmp_path):
    (tmp_path / "history").write_text("a\nb\n")
    (tmp_path / "slot").write_text("blue\n")
    os.symlink("releases/b", tmp_path / "current")
    assert pair.record(str(tmp_path), "c", "green", False) == ["a", "b", "c"]
    assert (tmp_path / "history").read_text() == "a\nb\nc\n"
    assert (tmp_path / "history.previous").read_text() == "a\nb\n"
    assert (tmp_path / "slot").read_text() == "green\n"
    assert os.readlink(tmp_path / "current") == "releases/c"
    # Nothing left beside them.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["current", "history", "history.previous", "slot"]


def test_a_first_record_needs_no_earlier_one_and_stale_new_files_are_replaced(tmp_path):
    # A run stopped between writing and renaming left these.
    (tmp_path / "slot.new").write_text("stale\n")
    os.symlink("/etc/shadow", tmp_path / "current.new")
    os.symlink("/etc/shadow", tmp_path / "history.new")
    assert pair.record(str(tmp_path), "a", "blue", False) == ["a"]
    assert (tmp_path / "history").read_text() == "a\n"
    assert (tmp_path / "history.previous").read_text() == ""
    assert os.readlink(tmp_path / "current") == "releases/a"
    assert not os.path.lexists(tmp_path / "history.new")


def test_a_link_planted_at_a_record_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(target, root / "slot")
    os.symlink(target, root / "history")
    pair.record(str(root), "a", "blue", False)
    assert target.read_text() == "untouched\n"
    assert not os.path.islink(root / "slot")
    assert (root / "slot").read_text() == "blue\n"
    # A link at the history is not read either: it counts as no history.
    assert (root / "history").read_text() == "a\n"


def test_a_directory_at_current_fails_before_any_record_changed(tmp_path):
    (tmp_path / "history").write_text("a\n")
    (tmp_path / "slot").write_text("blue\n")
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "keep").write_text("x")
    with pytest.raises(OSError):
        pair.record(str(tmp_path), "b", "green", False)
    assert (tmp_path / "current" / "keep").read_text() == "x"
    assert (tmp_path / "history").read_text() == "a\n"
    assert (tmp_path / "slot").read_text() == "blue\n"


CHECK_FAILURE = "main:app does not import as app with its environment. gunicorn --check-config said:"


def test_a_pair_that_did_not_answer_is_explained_by_the_failed_check():
    params = {"check": ["sh", "-c", "echo 'Failed to find attribute app in main.' >&2; exit 4"],
              "check_failure": CHECK_FAILURE}
    assert pair.explained(params, "gunicorn-app-green.service stopped before it answered (failed)") == (
        CHECK_FAILURE + "\nFailed to find attribute app in main.")


@pytest.mark.parametrize("check", [[], ["true"]])
def test_without_a_check_or_when_it_passes_the_pair_s_own_failure_is_the_message(check):
    params = {"check": check, "check_failure": CHECK_FAILURE}
    assert pair.explained(params, "/ answered 500 (2xx or 3xx needed) within 30 s.") == (
        "/ answered 500 (2xx or 3xx needed) within 30 s.")
