#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Start a release's unit pair beside the serving one and ask it for its health path.

One call instead of a start task and a polling uri task (about a module run
and a second of polling granularity saved per release). A pair that an
interrupted run left running starts over: its gunicorn is stopped, its socket
renewed, then gunicorn started (Type=notify: systemd returns once gunicorn's
master is ready). Then the health path is requested directly from the new
gunicorn, over its unix socket or TCP, with the site's Host header and no
redirect followed, until it answers 2xx or 3xx or the time is up.
"""

DOCUMENTATION = r"""
module: start_pair
short_description: Start a gunicorn unit pair on a renewed socket and wait until it answers its health path
description:
  - Internal to the role gunicorn_uvicorn_nginx.
  - Fails naming the systemctl step that failed, or the last answer of the health path.
  - Not in check mode (the role starts nothing there).
options:
  unit: {type: str, required: true, description: The gunicorn service of the pair.}
  socket: {type: str, required: true, description: Its socket unit.}
  path: {type: str, required: true, description: The health path (gunicorn_health_path).}
  unix_socket: {type: path, description: The socket to ask; without it, I(address) and I(port).}
  address: {type: str, default: 127.0.0.1, description: The TCP address to ask (brackets allowed for IPv6).}
  port: {type: int, default: 8000, description: The TCP port to ask.}
  host: {type: str, required: true, description: The Host header (the site's name).}
  timeout: {type: int, default: 30, description: Seconds to wait for a 2xx or 3xx answer.}
"""

RETURN = r"""
status: {description: The health path's last HTTP status (-1 for no answer), type: int}
msg: {description: What it answered or why nothing answered, type: str}
"""

import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.health import connector, wait_healthy


def main():
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "socket": {"type": "str", "required": True},
            "path": {"type": "str", "required": True},
            "unix_socket": {"type": "path"},
            "address": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 8000},
            "host": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 30},
        },
    )
    params = module.params
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "stop", params["unit"]],
                 ["systemctl", "restart", params["socket"]], ["systemctl", "start", params["unit"]]):
        run = subprocess.run(argv, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            module.fail_json(msg=f"{' '.join(argv)} failed: {run.stderr.strip()}", status=-1)
    connect = connector(address=params["address"], port=params["port"], unix_socket=params["unix_socket"])
    status, message = wait_healthy(connect, params["path"], params["host"], params["timeout"])
    if not 200 <= status < 400:
        module.fail_json(msg=f"{params['path']} answered {message} (2xx or 3xx needed) within {params['timeout']} s.",
                         status=status, changed=True)
    module.exit_json(changed=True, status=status, msg=message)


if __name__ == "__main__":
    main()
