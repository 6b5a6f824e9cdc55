"""Invalid variables stop the run in the role's validation, naming the variable.

Each case is one invalid value (or a pair that contradicts itself) on an
inventory alias of one platform (validation does not depend on the host); all
cases go in one run of the converge playbook. Each must fail in one of the
validation tasks, before any task that can touch the host, and change
nothing; the tests of test_default.py then still hold.
"""

import json
import os
import pathlib

from conftest import EXAMPLES, example_source, host_results, invalid_value_tests, only_on, run_playbook

# Type and choice checks that argument_specs alone makes are unit-tested
# without a host (tests/unit/test_argument_specs.py); two of them stay here to
# prove the spec is applied before anything runs.

CASES = [
    ("gunicorn_workers", "many"),
    ("gunicorn_workers", 0),
    ("gunicorn_timeout", -1),
    # A line of its own in the unit file.
    ("gunicorn_memory_max", "1G\nExecStartPre=/bin/true"),
    ("gunicorn_bind_port", 70000),
    ("nginx_listen_port", "eighty"),
    ("gunicorn_worker_class", "gevent"),
    # A port or address that unix mode would ignore.
    ("gunicorn_bind_port", 8001, ("gunicorn_bind_mode", "unix")),
    ("gunicorn_bind_address", "127.0.0.2", ("gunicorn_bind_mode", "unix")),
    ("gunicorn_bind_address", "[::1]"),
    ("gunicorn_app", "main"),
    ("gunicorn_app_root", "srv/app"),
    ("gunicorn_user", "root"),
    ("nginx_upstream_keepalive_timeout", 90),
    ("nginx_snippets", [{"name": "../escape", "content": "add_header X-A b;"}]),
    ("nginx_snippets", [{"name": "no-body"}]),
    ("gunicorn_keep_releases", 1),
    ("gunicorn_shared_paths", ["../etc"]),
    ("gunicorn_env", {"BAD NAME": "s3cret-value"}),
    ("gunicorn_env", "A=1"),
    # argument_specs would take it for ["data"]; the role would get "data".
    ("gunicorn_shared_paths", "data"),
    # Process and job names become unit names; commands and calendars lines of unit files.
    ("gunicorn_processes", [{"name": "web", "command": "celery worker"}]),
    ("gunicorn_processes", [{"name": "../../etc/x", "command": "celery worker"}]),
    ("gunicorn_schedules", [{"name": "nightly", "command": "true\nExecStartPre=/bin/touch /etc/x", "on_calendar": "daily"}]),
    ("gunicorn_schedules", [{"name": "nightly", "command": "true", "on_calendar": "daily\nExecStartPre=/bin/touch /etc/x"}]),
    ("gunicorn_writable_paths", ["var/data"]),
    ("gunicorn_forwarded_allow_ips", "10.0.0.1, 10.0.0.2"),
    ("nginx_static_locations", [{"location": "static", "path": "static"}]),
    ("nginx_static_locations", [{"location": "/files/", "path": "../../etc"}]),
    ("nginx_server_snippets", [{"name": "two words", "content": "set $x_frame_options DENY;"}]),
    ("nginx_client_max_body_size", "lots"),
    ("nginx_tls_certificate", "/nonexistent/certificate.pem"),
    ("nginx_tls_port", 80),
    ("nginx_lb_trusted_proxies", ["10.0.0.1; include /etc/shadow"]),
    ("nginx_lb_connect_timeout", 0),
    ("gunicorn_lb_group", "app"),
    # Pins are exact versions: never "latest", never a range.
    ("gunicorn_uv_version", "latest"),
    ("uvicorn_version", ">=0.54"),
    # A newline would end up in build.env as a second setting.
    ("gunicorn_pip_index_url", "https://deploy:s3cret-token@pypi.example.com/simple\nUV_INSECURE_HOST=*"),
    ("gunicorn_pip_extra_index_urls", ["file:///etc"]),
    ("gunicorn_pip_ca_bundle", "certs/ca.pem"),
    # git would take it for an option.
    ("gunicorn_app_git_repo", "--upload-pack=touch /tmp/pwned"),
    ("gunicorn_app_git_version", "main..topic"),
    # Two sources: which would ship?
    ("gunicorn_app_src", str(EXAMPLES / "asgi-app"), ("gunicorn_app_git_repo", "https://git.example.com/app.git")),
    # The security audit's values (issue 20): each ran as root, changed the
    # host or handed the app a privilege before it was refused.
    ("nginx_server_name", "a$(touch /tmp/pwned).example.com", ("nginx_tls_self_signed", True)),
    ("nginx_server_name", "a`touch /tmp/pwned`.example.com", ("nginx_tls_self_signed", True)),
    ("nginx_server_name", "~^www\\.example\\.com$", ("nginx_tls_self_signed", True)),
    ("gunicorn_app_name", "shop\nAmbientCapabilities=CAP_SYS_ADMIN"),
    ("gunicorn_app_root", "/etc"),
    ("gunicorn_app_root", "/srv"),
    ("gunicorn_app_root", "/srv/../etc"),
    ("gunicorn_app_root", "/var/lib/gunicorn-app/code"),
    ("gunicorn_user", "www-data"),
    ("gunicorn_group", "shadow"),
    ("gunicorn_writable_paths", ["/"]),
    ("gunicorn_writable_paths", ["/srv/app/releases"], ("gunicorn_app_root", "/srv/app")),
    ("nginx_tls_trusted_certificate", "/etc/ssl/ca.pem; include /etc/shadow", ("nginx_tls_self_signed", True)),
    ("nginx_tls_certificate", "/etc/ssl/c.pem;include /y", ("nginx_tls_certificate_key", "/etc/ssl/k.pem"),
     ("nginx_tls_remote_src", True)),
    ("gunicorn_bind_address", "127.0.0.1\n"),
    # Its state directory would be the host's ACME webroot.
    ("gunicorn_app_name", "acme"),
    # A typo would be ignored: the default would be taken without a word.
    ("gunicorn_worker", 4),
    # Sealing it would chmod -R inside what the app writes.
    ("nginx_static_locations", [{"location": "/media/", "path": "data/media"}], ("gunicorn_shared_paths", ["data"])),
]


invalid_runs, test_invalid_value_fails_in_validation_naming_the_variable = invalid_value_tests(CASES, "gun-debian13")


def test_refused_environment_names_are_named_and_their_values_never_printed(invalid_runs):
    [results] = [invalid_runs[f"invalid-{index}"] for index, case in enumerate(CASES)
                 if case[:2] == ("gunicorn_env", {"BAD NAME": "s3cret-value"})]
    printed = json.dumps(results)
    assert "BAD NAME" in printed
    assert "s3cret-value" not in printed


def test_a_refused_index_url_is_named_and_its_credentials_never_printed(invalid_runs):
    [results] = [invalid_runs[f"invalid-{index}"] for index, case in enumerate(CASES)
                 if case[0] == "gunicorn_pip_index_url"]
    printed = json.dumps(results)
    assert "gunicorn_pip_index_url" in printed
    assert "s3cret-token" not in printed


def test_no_refused_value_ran_a_command_on_the_host(host, invalid_runs):
    """The shell substitutions among the cases never ran (they would have
    made /tmp/pwned as root)."""
    assert invalid_runs
    assert not host.file("/tmp/pwned").exists


def test_a_source_with_a_link_out_of_it_is_refused_before_the_host_changes(host, workdir):
    """Not a variable's value but the source itself: a symbolic link to /etc
    in it stops the run on the controller, naming the link, before the deploy
    lock or anything else on the host (nothing of it is ever followed)."""
    only_on(host, "gun-debian13")
    source = example_source(workdir, "asgi-app", "main.py", "linked")
    (source / "config").symlink_to("/etc")
    run = run_playbook("gun-debian13", {"gunicorn_app_src": str(source)},
                       env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert run.returncode != 0, run.stdout + run.stderr
    results = host_results(run.stdout, "gun-debian13")
    ran = [(name, result) for name, result in results if not result.get("skipped")]
    name, result = ran[-1]
    assert name.endswith(" : Fingerprint the app's source on the controller") and result.get("failed"), ran
    assert not [name for name, result in results if result.get("changed")], results
    assert "config is a symbolic link to /etc, outside gunicorn_app_src" in result.get("msg", ""), result


def test_someone_elses_account_or_directory_is_refused_and_never_removed(host):
    """A login user named like the app, and a directory holding files the
    role did not make as its root: a deploy stops at the host's first read,
    naming them, and changes nothing; a removal leaves both (issue 20: the
    role re-shelled and then deleted such accounts and directories). All four
    runs are aliases of one host in one ansible-playbook run."""
    only_on(host, "gun-debian13")
    connection = host.ansible.get_variables()["ansible_connection"]
    host.check_output("id bob || useradd --create-home --shell /bin/bash --comment Bob bob")
    host.check_output("mkdir -p /srv/shared-data && echo keep > /srv/shared-data/backup.sql")
    before = host.check_output("getent passwd bob; stat -c '%U %G %a' /srv/shared-data; ls -A /srv/shared-data")
    cases = {
        "deploy-bob": {"gunicorn_app_name": "bob"},
        "deploy-into-shared": {"gunicorn_app_name": "intruder", "gunicorn_app_root": "/srv/shared-data"},
        "remove-bob": {"gunicorn_app_name": "bob", "gunicorn_state": "absent"},
        "remove-shared": {"gunicorn_app_name": "intruder", "gunicorn_app_root": "/srv/shared-data",
                          "gunicorn_state": "absent"},
    }
    inventory = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "foreign-cases.json"
    inventory.write_text(json.dumps({"all": {"hosts": {
        alias: {"ansible_host": "gun-debian13", "ansible_connection": connection, **values}
        for alias, values in cases.items()}}}))
    run = run_playbook(",".join(cases), {}, options=["--inventory", str(inventory)],
                       env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    results = {alias: host_results(run.stdout, alias) for alias in cases}
    try:
        for alias, expected in (("deploy-bob", "the account bob exists and is not the one"),
                                ("deploy-into-shared", "/srv/shared-data exists and is not this app's")):
            [result] = [result for name, result in results[alias]
                        if name.endswith("Refuse what the host's state rules out")]
            assert result.get("failed") and expected in result["msg"], result
            assert "backup.sql" in result["msg"] or alias == "deploy-bob", result
            assert not [task for task, outcome in results[alias] if outcome.get("changed")], results[alias]
        for alias in ("remove-bob", "remove-shared"):
            said = [result["msg"] for name, result in results[alias] if name.endswith("Say what was left because it "
                                                                                       "is not this app's")]
            assert said and "Left" in said[0], results[alias]
        assert host.check_output(
            "getent passwd bob; stat -c '%U %G %a' /srv/shared-data; ls -A /srv/shared-data") == before
    finally:
        host.run("userdel --remove bob; rm -rf /srv/shared-data")
