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
                             "host_name", "dns_name", "own_account"}


@pytest.mark.parametrize("value", ["example.com", "www.example.org", "a-b.c-d.example", "xn--bcher-kva.example"])
def test_dns_name_takes_names_a_certificate_can_prove(value):
    assert inputs.dns_name(value)


@pytest.mark.parametrize("value", ["_", "localhost", "*.example.com", ".example.com", "www.example.*", "~^www\\.",
                                   "192.0.2.1", "999.1.1.1", "example.123", "-a.example.com", "a..example.com",
                                   "example.com\n", "ex ample.com", "a" * 250 + ".com", None, 7])
def test_dns_name_refuses(value):
    assert not inputs.dns_name(value)
