"""plugins/test/inputs.py: the checks of values that reach nginx's and
systemd's files, root's paths and command lines. Each accepts what users
write and refuses the attack strings of the security audit (issue 20): shell
substitutions, config injection, trailing newlines, system trees."""

import pytest

from plugin_loader import load

inputs = load("plugins/test/inputs.py")

# Strings that must never pass any check: each would run a command, inject
# nginx configuration or add a line to a file if it did.
ATTACKS = [
    "a$(id>/tmp/pwned).example.com",
    "a`id`.example.com",
    "example.com\n",
    "example.com\ninclude /etc/shadow",
    "x; include /y",
    "x;include /y",
    "example.com {",
    "'example.com'",
    '"example.com"',
    "",
]


@pytest.mark.parametrize("value", [
    "_", "example.com", "www.example.com example.com", "shop.test", "localhost", "*.example.com",
    ".example.com", "www.example.*", "xn--bcher-kva.example", "127.0.0.1", "::1", "~^www\\d+\\.example\\.com$",
    "a-b.example.com", "3com.example",
])
def test_server_names_takes_what_nginx_takes(value):
    assert inputs.server_names(value)


@pytest.mark.parametrize("value", ATTACKS + [
    "example..com", "-example.com", "example.com-", "example.com  www.example.com", " example.com",
    "example.com ", "exa mple.com\t", "example.123", "~", "~^a b$", "a/b", "example.com;", "ex_ample.com",
])
def test_server_names_refuses_what_could_run_or_inject(value):
    assert not inputs.server_names(value)


@pytest.mark.parametrize("value", ["~^www\\.example\\.com$", "_ ~^api\\.", "~x"])
def test_regular_expression_names_never_go_into_a_certificate(value):
    assert inputs.server_names(value)
    assert not inputs.server_names(value, for_certificate=True)


def test_names_for_a_certificate():
    assert inputs.server_names("example.com *.example.com _ 192.0.2.1", for_certificate=True)


@pytest.mark.parametrize("value", ["/", "/etc/ssl/certs/ca.pem", "/srv/shop", "/usr/local/share/ca-certificates/corp-root.crt",
                                   "/etc/pebble-test/ca.pem", "/opt/app_1/a+b@c"])
def test_safe_path_takes_plain_absolute_paths(value):
    assert inputs.safe_path(value)


@pytest.mark.parametrize("value", ATTACKS + [
    "srv/app", "/srv/app/", "/srv/../etc", "/srv/./app", "//srv/app", "/srv//app", "/srv/app\n", "/srv/a b",
    "/srv/$HOME", "/srv/a;b", "/srv/a{b}", "/srv/a\\b", "/srv/a'b", "/srv/~app", None, 3,
])
def test_safe_path_refuses_relative_unnormalised_and_quoting(value):
    assert not inputs.safe_path(value)


@pytest.mark.parametrize("value", ["/srv/shop", "/opt/blog", "/home/deploy/apps/shop", "/app", "/var/www/shop",
                                   "/var/lib/shop", "/data/apps/wiki"])
def test_app_root_takes_a_directory_of_its_own(value):
    assert inputs.app_root(value)


@pytest.mark.parametrize("value", [
    "/", "/etc", "/etc/shop", "/srv", "/opt", "/home", "/home/bob", "/var", "/var/lib", "/usr", "/usr/local",
    "/usr/local/shop", "/tmp/x", "/var/tmp/x", "/root/app", "/run/app", "/proc/1", "/boot/app",
    "/var/lib/gunicorn-shop", "/var/lib/gunicorn-shop/code", "/var/log/shop", "/srv/../etc", "/srv/shop/",
    "/srv/shop\n", "/var/www", "/var/cache/gunicorn-uvicorn-nginx",
])
def test_app_root_refuses_system_trees_and_shared_directories(value):
    assert not inputs.app_root(value)


@pytest.mark.parametrize("value", ["/var/log/shop", "/run/shop", "/var/cache/shop", "/data/uploads", "/tmp/shop",
                                   "/var/lib/shop-uploads", "/srv/shared/media"])
def test_writable_path_takes_directories_beside_the_app(value):
    assert inputs.writable_path(value, "/srv/shop")


@pytest.mark.parametrize("value", [
    "/", "/etc", "/etc/nginx", "/usr", "/usr/local/bin", "/var", "/var/lib", "/var/lib/gunicorn-blog",
    "/var/lib/gunicorn-shop/x", "/run", "/run/lock", "/root", "/boot", "/dev/shm", "/var/lib/dpkg",
    "/srv", "/srv/shop", "/srv/shop/releases", "/srv/shop/current", "var/data", "/srv/x/../../etc", "/data\n",
])
def test_writable_path_refuses_the_root_system_trees_and_the_app_root(value):
    assert not inputs.writable_path(value, "/srv/shop")


@pytest.mark.parametrize("value", ["10.0.0.1", "2001:db8::1", "::1", "192.0.2.0/24", "2001:db8::/32"])
def test_network_address_with_prefix(value):
    assert inputs.network_address(value, prefix=True)


@pytest.mark.parametrize("value", ["10.0.0.1/8", "[::1]", "10.0.0.1; include /y", "10.0.0.1\n", "10.0.0.256",
                                   "lb1.example.com", " 10.0.0.1", "", None])
def test_network_address_without_prefix_refuses(value):
    assert not inputs.network_address(value)


@pytest.mark.parametrize("value", ["lb1", "lb1.example.com", "gun-debian12", "10host"])
def test_host_name_takes_names(value):
    assert inputs.host_name(value)


@pytest.mark.parametrize("value", ATTACKS + ["lb1.", ".lb1", "lb_1", "a" * 64, "x y"])
def test_host_name_refuses(value):
    assert not inputs.host_name(value)


@pytest.mark.parametrize("value", ["shop", "blog_app", "app-1", "_svc"])
def test_own_account_takes_names_of_the_app(value):
    assert inputs.own_account(value)


@pytest.mark.parametrize("value", ["root", "www-data", "nobody", "shadow", "docker", "disk", "adm", "sudo",
                                   "systemd-journal", "systemd-network", "Shop", "shop\n", "1shop", "a" * 33, ""])
def test_own_account_refuses_privileged_system_and_invalid_names(value):
    assert not inputs.own_account(value)


def test_every_test_is_exported():
    exported = inputs.TestModule().tests()
    assert set(exported) == {"safe_path", "app_root", "writable_path", "server_names", "network_address",
                             "host_name", "dns_name", "own_account", "git_revision", "static_path",
                             "worker_count", "one_line", "within"} | set(inputs.PATTERNS)


@pytest.mark.parametrize("value", ["example.com", "www.example.org", "a-b.c-d.example", "xn--bcher-kva.example"])
def test_dns_name_takes_names_a_certificate_can_prove(value):
    assert inputs.dns_name(value)


@pytest.mark.parametrize("value", ["_", "localhost", "*.example.com", ".example.com", "www.example.*", "~^www\\.",
                                   "192.0.2.1", "999.1.1.1", "example.123", "-a.example.com", "a..example.com",
                                   "example.com\n", "ex ample.com", "a" * 250 + ".com", None, 7])
def test_dns_name_refuses(value):
    assert not inputs.dns_name(value)


# The shapes of single values (PATTERNS and the tests beside them), what users
# write and what must not pass.
SHAPES = {
    "app_name": (["shop", "my-app_2", "9lives"], ["-shop", "_x", "a.b", "a b", "shop\n", "a/b"]),
    "exact_version": (["23.0.0", "0.34.3", "1.0rc1", "2.0.post1", "1.0.dev3", "7"],
                      [">=23", "23.*", "latest", "1.0 ", "1.0\n", "v1.0", "1.0;rm"]),
    "index_url": (["https://pypi.example.com/simple", "http://10.0.0.5:3141/root/pypi/+simple/"],
                  ["ftp://x", "https://a b", "https://x'", 'https://x"', "https://x\\y", "https://x`id`", "pypi.org"]),
    "git_repo": (["https://github.com/o/r.git", "git@github.com:o/r.git", "ssh://git@h/r", "/srv/git/r", "file:///r"],
                 ["-oProxyCommand=id", "git@h:-x", "https://h/r x", "r.git", "https://h/'r'"]),
    "import_path": (["main:app", "pkg.module:create_app()", "_x:y"], ["main", "main:", "1x:app", "main:app;id", "m:a b"]),
    "memory_max": (["", "512M", "2G", "1024", "50%", "100%"], ["0", "101%", "512MB", "-1", "1.5G", "50 %"]),
    "address_list": (["*", "127.0.0.1", "10.0.0.1,10.0.0.2"], ["", "a, b", "a,", ",a", "a b"]),
    "identifier": (["DATABASE_URL", "_x", "app"], ["1X", "A-B", "A B", "", "A\n"]),
    "relative_path": (["data", "var/media", "a.b/c"], ["/data", "../x", "a/../b", "./a", "a/", "a b", ".", ".."]),
    "release_id": (["", "0123456789ab"], ["0123456789AB", "0123456789a", "0123456789abc", "x" * 12]),
    "url_path": (["/", "/health", "/healthz?deep=1"], ["health", "/a b", "", "/\n"]),
    "file_name": (["gzip", "rate-limit.v2", "a_b"], [".hidden", "-x", "a/b", "a b", "a;b", ""]),
    "nginx_size": (["0", "10m", "512k", "1G"], ["10mb", "-1", "10 m", "1.5m", ""]),
    "websocket_location": (["/ws", "/ws/", "/a.b_c~d-e/"], ["ws", "/ws x", "/ws;", "/{x}", ""]),
    "static_location": (["/static/", "/media/img/"], ["/", "/static", "static/", "/a b/", "/$x/", "/a;b/", "/a`b/"]),
    "acme_email": (["ops@example.com"], ["ops", "ops@example", "a b@example.com", "@example.com"]),
    "http_url": (["https://acme-v02.api.letsencrypt.org/directory", "http://pebble:14000/dir"],
                 ["acme.example", "https://a b", "ftp://x"]),
    "git_revision": (["main", "v1.2.3", "release/2026-12", "0f3b9c2"],
                     ["-x", ".x", "a..b", "main.lock", "feature/", "a b", "main\n"]),
    "static_path": (["static", "staticfiles/css", "/var/www/static"],
                    ["../x", "a/./b", "a b", "$HOME", "a;b", "", "a`id`", "a\\b"]),
    "worker_count": ([1, 8, "4", "auto"], [0, -1, True, "0", "04", "four", "", None, 1.5]),
    "one_line": (["--log-level debug", ""], ["a\nb", "a\r"]),
}
TESTS = inputs.TestModule().tests()


@pytest.mark.parametrize("name,value", [(name, value) for name, (good, _) in SHAPES.items() for value in good])
def test_shapes_take_what_users_write(name, value):
    assert TESTS[name](value)


@pytest.mark.parametrize("name,value", [(name, value) for name, (_, bad) in SHAPES.items() for value in bad])
def test_shapes_refuse_the_rest(name, value):
    assert not TESTS[name](value)


# Shapes whose values reach unquoted places (unit files, nginx's, command
# lines as arguments): no attack string passes them.
@pytest.mark.parametrize("name", ["app_name", "exact_version", "index_url", "git_repo", "import_path",
                                  "identifier", "file_name", "nginx_size", "websocket_location",
                                  "static_location", "git_revision", "static_path", "http_url"])
@pytest.mark.parametrize("value", ATTACKS)
def test_no_attack_string_passes_a_shape(name, value):
    assert not TESTS[name](value)


def test_every_shape_is_tested_and_takes_only_strings():
    assert set(inputs.PATTERNS) <= set(SHAPES)
    for name in inputs.PATTERNS:
        assert not TESTS[name](None) and not TESTS[name](["x"])


def test_within_names_paths_inside_the_shared_ones():
    assert inputs.within("data", ["data"]) and inputs.within("data/img", ["media", "data"])
    assert not inputs.within("database", ["data"]) and not inputs.within("static", [])
