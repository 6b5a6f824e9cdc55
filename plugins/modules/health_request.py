#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Request the site's health path through nginx until it answers 2xx or 3xx."""

DOCUMENTATION = r"""
module: health_request
short_description: Request a health path on this host until it answers 2xx or 3xx
description:
  - Internal to the role gunicorn_uvicorn_nginx (tasks/healthcheck.yml), the last check of a run.
  - Asks I(url) with the site's Host header, follows no redirect, checks no certificate (it names the site, not
    the address asked), every quarter of a second until a 2xx or 3xx answer or I(timeout) seconds.
  - Never fails by itself; I(status) and I(msg) say what answered, and the role gives the verdict.
  - Standard library only, where ansible.builtin.uri's helpers cost about half a second per run.
options:
  url: {type: str, required: true, description: "http:// or https:// with an address, a port and the path."}
  host: {type: str, required: true, description: The Host header (the site's name).}
  timeout: {type: int, default: 30, description: Seconds to wait for a 2xx or 3xx answer.}
  unlock:
    type: list
    elements: path
    default: []
    description:
      - Lock directories the run holds, removed after the last request whatever it answered (the run's last
        module run on the host also ends its locks, instead of a module run of its own).
"""

RETURN = r"""
status: {description: The last HTTP status (-1 for no answer), type: int}
msg: {description: What it answered or why nothing answered, type: str}
unlocked: {description: The lock directories it removed, type: list, elements: str}
"""

import shutil
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.health import connector, wait_healthy


def target(url):
    """(scheme, address, port, path) of URL; ValueError for anything but http(s) with an address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("%s is not an http(s) URL with an address" % url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 30},
            "unlock": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=False,
    )
    params = module.params
    try:
        scheme, address, port, path = target(params["url"])
    except ValueError as error:
        module.fail_json(msg=str(error))
    try:
        status, message = wait_healthy(connector(scheme, address, port), path, params["host"], params["timeout"])
    finally:
        for lock in params["unlock"]:
            shutil.rmtree(lock, ignore_errors=True)
    module.exit_json(changed=False, status=status, msg=message, unlocked=params["unlock"])


if __name__ == "__main__":
    main()
