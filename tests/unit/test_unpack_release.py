"""plugins/modules/unpack_release.py: the host's half of shipping a release.
The archive is checked before anything is made and is gone afterwards,
whatever happened; owners and modes come from the role, not the archive."""

import grp
import hashlib
import io
import os
import pwd
import stat
import tarfile

from plugin_loader import load

unpacker = load("plugins/modules/unpack_release.py")

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def archive_of(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o666
            tar.addfile(info, io.BytesIO(content))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_archive_is_unpacked_into_a_new_release_with_the_roles_modes_and_removed(tmp_path):
    archive = tmp_path / "release.tar.gz"
    digest = archive_of(archive, {"main.py": b"app = None\n", "pkg/mod.py": b"X = 1\n"})
    release = tmp_path / "releases" / "abc"
    release.parent.mkdir()
    assert unpacker.unpack(str(archive), digest, str(release), OWNER, GROUP) is None
    assert (release / "pkg/mod.py").read_text() == "X = 1\n"
    assert stat.S_IMODE((release / "main.py").stat().st_mode) == 0o640
    assert stat.S_IMODE(release.stat().st_mode) == 0o750
    assert not archive.exists()


def test_a_damaged_archive_makes_no_release_and_is_removed(tmp_path):
    archive = tmp_path / "release.tar.gz"
    archive_of(archive, {"main.py": b"app = None\n"})
    release = tmp_path / "abc"
    error = unpacker.unpack(str(archive), "0" * 64, str(release), OWNER, GROUP)
    assert error.startswith("the archive of the release arrived damaged"), error
    assert not release.exists() and not archive.exists()


def test_an_existing_release_directory_is_refused_and_left_as_it_is(tmp_path):
    archive = tmp_path / "release.tar.gz"
    digest = archive_of(archive, {"main.py": b"app = None\n"})
    release = tmp_path / "abc"
    release.mkdir()
    (release / "kept").write_text("x")
    assert "File exists" in unpacker.unpack(str(archive), digest, str(release), OWNER, GROUP)
    assert [path.name for path in release.iterdir()] == ["kept"] and not archive.exists()


def test_directories_are_made_or_mended_and_the_rest_of_a_build_removed(tmp_path):
    made, mended = tmp_path / "releases", tmp_path / "venvs"
    mended.mkdir(mode=0o777)
    mended.chmod(0o777)
    (made).mkdir()
    (made / "abc").mkdir()
    (made / "abc" / "half").write_text("x")
    (made / ".abc.tar.gz").write_text("x")
    (made / "kept").mkdir()
    error = unpacker.prepare(
        [{"path": str(made), "owner": OWNER, "group": GROUP, "mode": "0751"},
         {"path": str(mended), "owner": OWNER, "group": GROUP, "mode": 0o750}],
        [str(made / "abc"), str(made / ".*.tar.gz")])
    assert error is None
    assert stat.S_IMODE(made.stat().st_mode) == 0o751 and stat.S_IMODE(mended.stat().st_mode) == 0o750
    assert [path.name for path in made.iterdir()] == ["kept"]


def test_the_environment_file_is_private_and_replaced_whole(tmp_path):
    env = tmp_path / "abc.env"
    env.write_text("OLD=1\n")
    env.chmod(0o644)
    unpacker.write_file(str(env), "APP_SECRET=s3cret\n")
    assert env.read_text() == "APP_SECRET=s3cret\n" and stat.S_IMODE(env.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["abc.env"]


def test_the_app_roots_marker_replaces_a_planted_link_and_is_world_readable(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    marker = tmp_path / ".gunicorn-uvicorn-nginx"
    marker.symlink_to(target)
    unpacker.write_file(str(marker), "app\n", 0o644)
    assert not marker.is_symlink() and marker.read_text() == "app\n"
    assert stat.S_IMODE(marker.stat().st_mode) == 0o644
    assert target.read_text() == "keep\n"
