"""files/source.py: which files of gunicorn_app_src a release ships, their
fingerprint and the one archive that carries them, on real directories and
real git work trees (no host needed)."""

import json
import os
import pathlib
import subprocess
import tarfile

import pytest

from plugin_loader import load

SCRIPT = pathlib.Path(__file__).parents[2] / "roles/gunicorn_uvicorn_nginx/files/source.py"
source = load("roles/gunicorn_uvicorn_nginx/files/source.py")


def run(*args):
    """The script as the role runs it: (exit status, parsed stdout or None, stderr)."""
    result = subprocess.run(["python3", str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False)
    parsed = json.loads(result.stdout) if result.returncode == 0 and result.stdout else None
    return result.returncode, parsed, result.stderr


def fingerprint(app, *excludes):
    status, out, err = run("fingerprint", app, *(f"--exclude={pattern}" for pattern in excludes))
    assert status == 0, err
    return out


def shipped(app, *excludes):
    entries, _ = source.entries(os.path.realpath(app), source.NEVER_SHIPPED + list(excludes))
    return [relative for relative, *_ in entries]


def write(path, text="x\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def git(app, *args):
    subprocess.run(["git", "-C", str(app), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})


@pytest.fixture
def app(tmp_path):
    """An app as developers keep it: code, a requirements file, and what
    their tools leave beside it."""
    root = tmp_path / "app"
    write(root / "main.py", "app = None\n")
    write(root / "requirements.txt", "flask==3.1.0\n")
    write(root / "pkg/module.py")
    write(root / "static/site.css", "body {}\n")
    write(root / "pkg/__pycache__/module.cpython-311.pyc")
    write(root / "legacy.pyc")
    write(root / ".venv/pyvenv.cfg", "home = /usr/bin\n")
    write(root / ".venv/lib/site.py")
    write(root / "env-py311/pyvenv.cfg", "home = /usr/bin\n")
    write(root / "env-py311/bin/python")
    write(root / "node_modules/left-pad/index.js")
    write(root / ".pytest_cache/v/cache/lastfailed", "{}\n")
    write(root / ".mypy_cache/3.11/main.meta.json", "{}\n")
    return root


def test_a_plain_directory_ships_everything_but_what_no_release_needs(app):
    assert shipped(app) == ["main.py", "pkg", "pkg/module.py", "requirements.txt", "static", "static/site.css"]
    assert fingerprint(app)["git"] is False


def test_user_patterns_match_names_anywhere_or_paths_from_the_source(app):
    write(app / "tests/test_main.py")
    write(app / "pkg/tests/test_module.py")
    write(app / "docs/drafts/a.md")
    write(app / "docs/guide.md")
    assert shipped(app, "tests", "docs/drafts") == [
        "docs", "docs/guide.md", "main.py", "pkg", "pkg/module.py", "requirements.txt", "static", "static/site.css"]


def test_in_a_git_work_tree_tracked_and_untracked_unignored_files_ship(app):
    write(app / ".gitignore", "*.log\nlocal_settings.py\n")
    git(app, "init", "-q")
    git(app, "add", "main.py", "requirements.txt", "pkg/module.py", "static/site.css", ".gitignore")
    git(app, "commit", "-qm", "first")
    write(app / "fix.py")  # untracked: an uncommitted fix deploys
    write(app / "debug.log")
    write(app / "local_settings.py")
    assert shipped(app) == [".gitignore", "fix.py", "main.py", "pkg/module.py", "requirements.txt", "static/site.css"]
    assert fingerprint(app)["git"] is True
    # A tracked file deleted in the work tree is not shipped.
    (app / "pkg/module.py").unlink()
    assert "pkg/module.py" not in shipped(app)


def test_what_developers_do_beside_the_code_changes_no_fingerprint(app):
    write(app / ".gitignore", "*.log\n")
    git(app, "init", "-q")
    git(app, "add", ".")
    git(app, "commit", "-qm", "first")
    before = fingerprint(app)
    git(app, "status")
    subprocess.run(["python3", "-m", "compileall", "-q", str(app / "pkg")], check=True)
    write(app / "server.log", "touched\n")
    write(app / ".venv/lib/other.py")
    assert fingerprint(app) == before


def test_a_subdirectory_of_a_repository_ships_only_its_own_files(tmp_path):
    repo = tmp_path / "monorepo"
    write(repo / "api/main.py")
    write(repo / "web/index.html")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    assert shipped(repo / "api") == ["main.py"]


def test_content_and_the_executable_bit_change_the_code_fingerprint_requirements_their_own(app):
    before = fingerprint(app)
    write(app / "pkg/module.py", "y\n")
    code_changed = fingerprint(app)
    assert code_changed["code"] != before["code"] and code_changed["requirements"] == before["requirements"]
    (app / "main.py").chmod(0o755)
    assert fingerprint(app)["code"] != code_changed["code"]
    write(app / "requirements.txt", "flask==3.1.1\n")
    assert fingerprint(app)["requirements"] != before["requirements"]
    # Only the top level's requirements*.txt and constraints*.txt count.
    pip_files = fingerprint(app)["requirements"]
    write(app / "pkg/requirements.txt", "other\n")
    assert fingerprint(app)["requirements"] == pip_files
    write(app / "constraints-prod.txt", "jinja2==3.1.6\n")
    assert fingerprint(app)["requirements"] != pip_files


def test_links_inside_ship_as_relative_links(app):
    (app / "pkg/alias.py").symlink_to("module.py")
    (app / "assets").symlink_to(app / "static")  # absolute, but inside
    entries, _ = source.entries(str(app), source.NEVER_SHIPPED)
    links = {relative: target for relative, kind, _, target in entries if kind == "link"}
    assert links == {"pkg/alias.py": "module.py", "assets": "static"}


@pytest.mark.parametrize("make, words", [
    (lambda app: (app / "secrets").symlink_to("/etc"), "secrets is a symbolic link to /etc, outside gunicorn_app_src"),
    (lambda app: (app / "pkg/up.py").symlink_to("../../outside.py"), "pkg/up.py is a symbolic link to ../../outside.py"),
    (lambda app: (app / "gone.py").symlink_to("missing.py"), "gone.py is a symbolic link to missing.py, which does not exist"),
    (lambda app: os.mkfifo(app / "pipe"), "pipe is a FIFO"),
])
def test_links_out_of_the_source_and_special_files_are_refused_naming_the_path(app, make, words):
    write(app.parent / "outside.py")
    make(app)
    status, out, err = run("fingerprint", app)
    assert status == 2 and out is None
    assert err.startswith("gunicorn_app_src: ") and words in err, err


def test_a_repository_inside_the_source_ships_what_its_own_git_would(app):
    write(app / ".gitignore", "")
    git(app, "init", "-q")
    inner = app / "vendor/lib"
    write(inner / "lib.py")
    write(inner / ".env", "SECRET=1\n")
    write(inner / ".gitignore", ".env\n")
    git(inner, "init", "-q")
    paths = shipped(app)
    assert "vendor/lib/lib.py" in paths and "vendor/lib/.gitignore" in paths
    assert "vendor/lib/.env" not in paths


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to give the repository to another user")
def test_a_work_tree_git_will_not_read_is_refused_not_shipped_whole(app):
    """git refuses a repository owned by another user ("dubious
    ownership"); shipping every file instead would ship the ignored ones."""
    write(app / ".gitignore", ".env\n")
    write(app / ".env", "SECRET=1\n")
    git(app, "init", "-q")
    for base, dirs, files in os.walk(app):
        for name in [base, *(os.path.join(base, entry) for entry in dirs + files)]:
            os.lchown(name, 65534, 65534)
    status, out, err = run("fingerprint", app)
    assert status == 2 and "git cannot tell what it tracks" in err and "dubious ownership" in err, err


def test_a_link_to_what_does_not_ship_is_refused(app):
    (app / "python").symlink_to(".venv/pyvenv.cfg")
    status, out, err = run("fingerprint", app)
    assert status == 2 and "python is a symbolic link to .venv/pyvenv.cfg, which is not shipped" in err, err


def test_a_source_with_nothing_to_ship_is_refused(tmp_path):
    write(tmp_path / "app/__pycache__/main.cpython-311.pyc")
    status, out, err = run("fingerprint", tmp_path / "app")
    assert status == 2 and "has no file to ship" in err, err


def test_a_name_that_is_not_utf8_is_refused_naming_it(app):
    (app / os.fsdecode(b"caf\xe9.py")).write_text("x\n")
    status, out, err = run("fingerprint", app)
    assert status == 2 and "not UTF-8" in err and "caf" in err, err


def test_a_git_work_tree_without_git_on_the_controller_is_refused(app, monkeypatch):
    (app / ".git").mkdir()
    monkeypatch.setattr(source.shutil, "which", lambda name: None)
    with pytest.raises(source.Refused, match="git is not installed on the controller"):
        source.entries(str(app / "pkg"), source.NEVER_SHIPPED)


def test_the_archive_carries_exactly_what_was_fingerprinted(app, tmp_path):
    (app / "pkg/alias.py").symlink_to("module.py")
    (app / "main.py").chmod(0o755)
    expected = fingerprint(app)
    status, made, err = run("archive", app, "--expect", expected["code"])
    assert status == 0, err
    try:
        assert (made["files"], made["bytes"]) == (expected["files"], expected["bytes"])
        with tarfile.open(made["archive"]) as tar:
            members = {member.name: member for member in tar.getmembers()}
            assert sorted(members) == shipped(app)
            assert {(member.uid, member.gid, member.uname) for member in members.values()} == {(0, 0, "")}
            assert members["pkg/alias.py"].issym() and members["pkg/alias.py"].linkname == "module.py"
            assert members["main.py"].mode == 0o755 and members["pkg/module.py"].mode == 0o644
            tar.extractall(tmp_path / "unpacked", filter="tar")
        # Unpacked, it is the same source.
        assert fingerprint(tmp_path / "unpacked")["code"] == expected["code"]
    finally:
        os.unlink(made["archive"])


def test_a_source_changed_since_its_fingerprint_is_not_packed_and_leaves_no_archive(app, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    expected = fingerprint(app)["code"]
    write(app / "main.py", "changed\n")
    status, out, err = run("archive", app, "--expect", expected)
    assert status == 2 and "changed during the run" in err
    assert list((tmp_path / "tmp").iterdir()) == []


UV_PROJECT = """[project]
name = "shop"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["starlette==1.10.0"]
"""


@pytest.mark.parametrize("files, kind, deps_files", [
    ({"pyproject.toml": UV_PROJECT, "uv.lock": "version = 1\n", "requirements.txt": "x\n"},
     "uv", ["pyproject.toml", "uv.lock"]),
    ({"pyproject.toml": UV_PROJECT, "requirements.txt": "x\n"}, "pyproject", ["pyproject.toml"]),
    # A pyproject.toml that only configures tools declares no dependencies.
    ({"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "requirements.txt": "x\n", "constraints.txt": "y\n"},
     "requirements", ["constraints.txt", "requirements.txt"]),
    # A Poetry project's lock wins over a requirements.txt exported from it.
    ({"pyproject.toml": UV_PROJECT, "poetry.lock": "[metadata]\nlock-version = \"2.1\"\n", "requirements.txt": "x\n"},
     "poetry", ["poetry.lock", "pyproject.toml"]),
    ({"main.py": "app = None\n"}, "none", []),
])
def test_dependencies_come_from_the_first_of_uv_lock_pyproject_and_requirements(tmp_path, files, kind, deps_files):
    for name, text in files.items():
        write(tmp_path / name, text)
    deps = fingerprint(tmp_path)["deps"]
    assert (deps["kind"], deps["files"]) == (kind, deps_files)
    assert deps["requires_python"] == (">=3.11" if kind in ("uv", "poetry", "pyproject") else None)


def test_a_package_is_installed_with_its_code_so_its_virtualenv_follows_the_code(tmp_path):
    write(tmp_path / "pyproject.toml", UV_PROJECT)
    write(tmp_path / "uv.lock", "version = 1\n")
    write(tmp_path / "main.py", "app = 1\n")
    plain = fingerprint(tmp_path)
    assert not plain["deps"]["packaged"]
    write(tmp_path / "main.py", "app = 2\n")
    assert fingerprint(tmp_path)["requirements"] == plain["requirements"]
    # uv init's default: a build system makes the project a package.
    write(tmp_path / "pyproject.toml", UV_PROJECT + '[build-system]\nrequires = ["uv_build"]\nbuild-backend = "uv_build"\n')
    package = fingerprint(tmp_path)
    assert package["deps"]["packaged"]
    write(tmp_path / "main.py", "app = 3\n")
    assert fingerprint(tmp_path)["requirements"] != package["requirements"]
    # ... unless uv is told it is not one.
    write(tmp_path / "pyproject.toml", UV_PROJECT + '[tool.uv]\npackage = false\n[build-system]\nrequires = ["x"]\n')
    assert not fingerprint(tmp_path)["deps"]["packaged"]


def test_the_lock_and_pyproject_decide_the_virtualenv_and_requirements_files_no_longer_do(tmp_path):
    write(tmp_path / "pyproject.toml", UV_PROJECT)
    write(tmp_path / "uv.lock", "version = 1\n")
    write(tmp_path / "requirements.txt", "a\n")
    before = fingerprint(tmp_path)["requirements"]
    write(tmp_path / "requirements.txt", "b\n")
    assert fingerprint(tmp_path)["requirements"] == before
    write(tmp_path / "uv.lock", "version = 1\nrevision = 3\n")
    assert fingerprint(tmp_path)["requirements"] != before


# A Poetry 2 lock (lock-version 2.1) as `poetry lock` writes it, cut short.
POETRY_LOCK = """
[[package]]
name = "blinker"
version = "1.9.0"
optional = false
groups = ["main"]
files = [{file = "blinker-1.9.0-py3-none-any.whl", hash = "sha256:ba0e"}]

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
groups = ["main", "dev"]
markers = {main = "platform_system == \\"Windows\\"", dev = "sys_platform == \\"win32\\""}
files = [{file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:4f1d"}, {file = "colorama-0.4.6.tar.gz", hash = "sha256:0869"}]

[[package]]
name = "pytest"
version = "9.0.1"
optional = false
groups = ["dev"]
files = [{file = "pytest-9.0.1-py3-none-any.whl", hash = "sha256:aaaa"}]

[[package]]
name = "python-dotenv"
version = "1.2.1"
optional = true
groups = ["main"]
files = [{file = "python_dotenv-1.2.1-py3-none-any.whl", hash = "sha256:bbbb"}]

[[package]]
name = "typing-extensions"
version = "4.15.0"
optional = false
groups = ["main"]
markers = "python_version < \\"3.13\\""
files = [{file = "typing_extensions-4.15.0-py3-none-any.whl", hash = "sha256:cccc"}]

[metadata]
lock-version = "2.1"
python-versions = ">=3.11"
content-hash = "0000"
"""


def test_a_poetry_lock_gives_its_main_group_pinned_and_hashed_without_dev_or_extras(tmp_path):
    write(tmp_path / "pyproject.toml", UV_PROJECT + "[tool.poetry]\npackage-mode = false\n")
    write(tmp_path / "poetry.lock", POETRY_LOCK)
    deps = fingerprint(tmp_path)["deps"]
    assert (deps["kind"], deps["packaged"]) == ("poetry", False)
    assert deps["locked"] == (
        "blinker==1.9.0 \\\n    --hash=sha256:ba0e\n"
        'colorama==0.4.6 ; platform_system == "Windows" \\\n    --hash=sha256:4f1d \\\n    --hash=sha256:0869\n'
        'typing-extensions==4.15.0 ; python_version < "3.13" \\\n    --hash=sha256:cccc\n')
    # Poetry's default package mode installs the project itself when it has a build system.
    write(tmp_path / "pyproject.toml", UV_PROJECT + '[build-system]\nrequires = ["poetry-core>=2"]\n')
    assert fingerprint(tmp_path)["deps"]["packaged"]


def test_a_new_poetry_lock_makes_a_new_virtualenv_key(tmp_path):
    write(tmp_path / "pyproject.toml", UV_PROJECT)
    write(tmp_path / "poetry.lock", POETRY_LOCK)
    before = fingerprint(tmp_path)["requirements"]
    write(tmp_path / "poetry.lock", POETRY_LOCK.replace("4.15.0", "4.15.1"))
    assert fingerprint(tmp_path)["requirements"] != before


@pytest.mark.parametrize("files, message", [
    ({"pyproject.toml": "[project\n"}, "pyproject.toml is not valid TOML"),
    ({"pyproject.toml": UV_PROJECT, "poetry.lock": "[[package]\n"}, "poetry.lock is not valid TOML"),
    ({"pyproject.toml": UV_PROJECT, "poetry.lock": '[metadata]\nlock-version = "2.0"\n'},
     "poetry.lock has lock-version 2.0, which does not record each package's groups"),
    ({"pyproject.toml": UV_PROJECT, "poetry.lock": POETRY_LOCK.replace("[metadata]", '''[[package]]
name = "x"
version = "1.0"
groups = ["main"]
files = []
[package.source]
type = "git"
url = "https://example.com/x.git"

[metadata]''')},
     "poetry.lock: x comes from a git source"),
    ({"pyproject.toml": UV_PROJECT, "poetry.lock": POETRY_LOCK.replace('version = "1.9.0"', 'version = "1\\n--index-url=http://evil"')},
     "poetry.lock: the entry of package 'blinker' is not one Poetry writes"),
    ({"pyproject.toml": UV_PROJECT, "poetry.lock": POETRY_LOCK.replace(
        'files = [{file = "blinker-1.9.0-py3-none-any.whl", hash = "sha256:ba0e"}]', "files = []")},
     "poetry.lock: blinker has no file hashes"),
    ({"requirements-prod.txt": "x\n"}, "requirements-prod.txt but no requirements.txt"),
])
def test_dependency_files_the_role_cannot_install_are_refused_before_the_host(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    status, _, err = run("fingerprint", tmp_path)
    assert status == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("wanted, version, ok", [
    (">=3.11", "3.11.2", True), (">=3.12", "3.11.2", False), ("~=3.13.0", "3.13.5", True),
    (">=3.10,<3.13", "3.13.5", False), ("==3.11.*", "3.11.2", True),
])
def test_requires_python_is_checked_against_the_hosts_python(wanted, version, ok):
    status, _, err = run("supports", wanted, version)
    assert status == (0 if ok else 2)
    if not ok:
        assert f"requires Python {wanted}" in err and f"the host has Python {version}" in err


def test_a_requires_python_that_is_no_specifier_is_named():
    status, _, err = run("supports", "python 3", "3.11.2")
    assert status == 2 and "'python 3' is not a version specifier" in err


def commit_all(repo, message="change"):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def upstream(tmp_path):
    """A repository as a git server would hold it, with one commit on main."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "main.py", "app = 1\n")
    write(repo / "pyproject.toml", UV_PROJECT)
    commit_all(repo, "first")
    return repo


def checkout(repo, version, cache):
    status, out, err = run("checkout", repo, version, "--cache", cache)
    assert status == 0, err
    return out


def test_a_git_revision_deploys_what_its_commit_holds(upstream, tmp_path):
    cache = tmp_path / "cache"
    first = checkout(upstream, "main", cache)
    assert shipped(first["src"]) == ["main.py", "pyproject.toml"]
    assert fingerprint(first["src"])["deps"]["kind"] == "pyproject"
    # The branch moves: the next checkout fetches it; the same commit is the same tree.
    write(upstream / "main.py", "app = 2\n")
    write(upstream / "UNCOMMITTED.txt")
    second_commit = commit_all(upstream)
    write(upstream / "later.py")
    second = checkout(upstream, "main", cache)
    assert second["commit"] == second_commit != first["commit"]
    assert shipped(second["src"]) == ["UNCOMMITTED.txt", "main.py", "pyproject.toml"]
    assert fingerprint(second["src"])["code"] != fingerprint(first["src"])["code"]
    assert checkout(upstream, first["commit"], cache) == first
    git(upstream, "tag", "v1", first["commit"])
    assert checkout(upstream, "v1", cache)["commit"] == first["commit"]


def test_a_commit_already_fetched_needs_no_server(upstream, tmp_path):
    cache = tmp_path / "cache"
    commit = checkout(upstream, "main", cache)["commit"]
    upstream.rename(tmp_path / "gone")
    assert checkout(upstream, commit, cache)["commit"] == commit
    status, _, err = run("checkout", upstream, "main", "--cache", cache)
    assert status == 2 and "gunicorn_app_git_repo: git fetch failed" in err


def test_a_version_the_repository_does_not_have_is_refused_naming_it(upstream, tmp_path):
    status, _, err = run("checkout", upstream, "release-9", "--cache", tmp_path / "cache")
    assert status == 2 and f"release-9 is no branch, tag or commit of {upstream}" in err


def test_credentials_in_the_repository_url_are_never_printed(tmp_path):
    status, out, err = run("checkout", "https://deploy:s3cret-token@127.0.0.1:9/app.git", "main",
                           "--cache", tmp_path / "cache")
    assert status == 2 and out is None
    assert "git clone failed for https://***@127.0.0.1:9/app.git" in err and "s3cret-token" not in err


def test_old_trees_are_pruned_and_the_newest_kept(upstream, tmp_path):
    cache = tmp_path / "cache"
    commits = [checkout(upstream, "main", cache)["commit"]]
    for number in range(source.KEEP_TREES + 1):
        write(upstream / "main.py", f"app = {number}\n")
        commit_all(upstream)
        commits.append(checkout(upstream, "main", cache)["commit"])
    [trees] = cache.glob("*.trees")
    assert sorted(path.name for path in trees.iterdir()) == sorted(commits[-source.KEEP_TREES:])


def test_a_procfile_gives_its_process_types_but_web_in_order(app):
    write(app / "Procfile", "# processes\nweb: gunicorn app:app\n\nworker:  celery -A proj worker -l info \n"
                            "release: python manage.py migrate\r\nclock: python clock.py --every 60\n")
    assert fingerprint(app)["procfile"] == {"worker": "celery -A proj worker -l info",
                                            "release": "python manage.py migrate",
                                            "clock": "python clock.py --every 60"}
    assert list(fingerprint(app)["procfile"]) == ["worker", "release", "clock"]


def test_without_a_procfile_there_are_no_process_types(app):
    assert fingerprint(app)["procfile"] == {}
    write(app / "sub" / "Procfile", "worker: x\n")
    assert fingerprint(app)["procfile"] == {}


@pytest.mark.parametrize(("text", "words"), [
    ("worker celery\n", "line 1 is not 'name: command'"),
    ("\nworker:\n", "line 2 is not 'name: command'"),
    ("work.er: x\n", "line 1 is not"),
    ("worker: a\nworker: b\n", "line 2: 'worker' is given twice"),
    ("worker: a\x1bb\n", "control character"),
    (("x" * 33) + ": a\n", "at most 32"),
])
def test_a_procfile_line_the_role_cannot_run_is_refused_naming_it(app, text, words):
    write(app / "Procfile", text)
    status, _, err = run("fingerprint", app)
    assert status == 2 and words in err and err.startswith("gunicorn_app_src: Procfile")
