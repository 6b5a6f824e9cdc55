#!/usr/bin/python
# Copyright: gunicorn_uvicorn_nginx contributors
# MIT License (see LICENSE)
"""Put a change of nginx's configuration into effect, in one module call.

The site file decides which unit pair nginx proxies to. Written in the same
call as nginx -t and the reload, it is never left on disk unloaded by a run
that stopped between two tasks: a reboot then would switch releases behind the
run's back. A rejected change takes the site and its link back before the
call fails; the role restores the other files it wrote (tasks/nginx.yml).
"""

DOCUMENTATION = r"""
module: nginx_apply
short_description: Write the app's nginx site, then nginx -t, reload, and wait for the old workers
description:
  - Internal to the role gunicorn_uvicorn_nginx (tasks/nginx.yml), run under the host's nginx lock.
  - Writes I(site) (atomically, root-owned, 0644) and links it from I(link) when they differ, runs C(nginx -t),
    and if it passes reloads nginx (starts it when it is stopped), waits until each worker that served before the
    reload has exited or is shutting down, removes I(remove) and touches I(stamp).
  - If C(nginx -t) fails (or the reload does), the site and the link are as they were before the call, and it
    fails with nginx's error in I(stderr).
  - In check mode it only reports (with the site's diff in diff mode); the role runs it when something changed.
options:
  site: {type: path, description: The app's site file.}
  content: {type: str, description: What I(site) must hold.}
  link: {type: path, description: The link in sites-enabled that must lead to I(site).}
  remove: {type: list, elements: path, default: [], description: Files removed once nginx runs with the change.}
  stamp: {type: path, required: true, description: Touched once nginx runs with the files on disk.}
  unlock: {type: path, description: "The host's nginx lock (a directory) this run holds: released last, once nginx
    runs with the change (saves the run a module call). Kept when the call fails: the role releases it."}
  wait: {type: int, default: 10, description: Seconds to wait for the old workers.}
"""

RETURN = r"""
done: {description: reloaded or started, type: str}
unlocked: {description: Whether I(unlock) was released, type: bool}
site_changed: {description: Whether the site was written, type: bool}
link_changed: {description: Whether the link was made, type: bool}
stderr: {description: What nginx -t printed, type: str}
"""

import os
import shutil
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyweb.gunicorn_uvicorn_nginx.plugins.module_utils.atomic import WriteError, link, replace


def run(argv):
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout, result.stderr


def workers(title="nginx: worker process"):
    """Processes whose title starts with title (a minimal host has no pgrep)."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/cmdline" % name, "rb") as handle:
                    if handle.read().startswith(title.encode()):
                        found.add(int(name))
            except OSError:
                continue
    return found


def wait_for_old_workers(old, seconds, sleep=time.sleep, now=time.monotonic):
    """Until each worker of old has exited or is shutting down (it serves no new request)."""
    deadline = now() + seconds
    while now() < deadline:
        if not (old & workers()) - workers("nginx: worker process is shutting down"):
            return True
        sleep(0.1)
    return False


class Change:
    """The site and its link as the call found them, to take back."""

    def __init__(self, site, content, link_path):
        self.site, self.content, self.link = site, content, link_path
        self.backup = None
        self.site_changed = self.link_changed = False
        self.site_existed = bool(site) and os.path.lexists(site)
        self.link_before = os.readlink(link_path) if link_path and os.path.islink(link_path) else None

    def before(self):
        try:
            with open(self.site, "rb") as handle:
                return handle.read().decode(errors="replace")
        except (OSError, TypeError):
            return None

    def diff(self):
        before = self.before()
        if self.content is None or before == self.content:
            return None
        return {"before_header": self.site, "after_header": self.site, "before": before or "", "after": self.content}

    def write(self):
        if self.site and self.content is not None:
            if self.before() != self.content:
                self.backup = replace(self.site, self.content.encode(), 0, 0, 0o644, backup=True)
                self.site_changed = True
        if self.link and self.link_before != self.site:
            if os.path.lexists(self.link) and not os.path.islink(self.link):
                raise WriteError("%s is not a link: this role did not make it" % self.link)
            link(self.link, self.site)
            self.link_changed = True

    def take_back(self):
        if self.link_changed:
            if self.link_before is None:
                os.unlink(self.link)
            else:
                link(self.link, self.link_before)
        if self.site_changed:
            if self.backup:
                os.rename(self.backup, self.site)
                self.backup = None
            elif not self.site_existed:
                os.unlink(self.site)


def main():
    module = AnsibleModule(
        argument_spec={
            "site": {"type": "path"},
            "content": {"type": "str"},
            "link": {"type": "path"},
            "remove": {"type": "list", "elements": "path", "default": []},
            "stamp": {"type": "path", "required": True},
            "wait": {"type": "int", "default": 10},
            "unlock": {"type": "path"},
        },
        required_by={"content": "site", "link": "site"},
        supports_check_mode=True,
    )
    params = module.params
    change = Change(params["site"], params["content"], params["link"])
    diff = change.diff() if module._diff else None  # pylint: disable=protected-access
    if module.check_mode:
        module.exit_json(changed=True, diff=diff)
    try:
        change.write()
    except (WriteError, OSError) as error:
        change.take_back()
        module.fail_json(msg="Could not write the nginx site: %s" % error, stderr="")
    status, out, err = run(["nginx", "-t"])
    if status != 0:
        change.take_back()
        module.fail_json(msg="nginx -t rejected the configuration", stderr=err or out, rc=status,
                         site_changed=False, link_changed=False)
    if run(["systemctl", "--quiet", "is-active", "nginx"])[0] == 0:
        old = workers()
        status, _, err = run(["systemctl", "reload", "nginx"])
        done = "reloaded"
        if status == 0:
            wait_for_old_workers(old, params["wait"])
    else:
        status, _, err = run(["systemctl", "start", "nginx"])
        done = "started"
    if status != 0:
        # nginx runs as it did before: so do its files.
        change.take_back()
        module.fail_json(msg="nginx -t passed, but nginx could not be %s: %s" % (done, err), stderr=err,
                         site_changed=False, link_changed=False)
    for path in params["remove"] + ([change.backup] if change.backup else []):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    # Last: a removal above changes its directory, which must not look newer
    # than the reload to the next run (host_state: nginx_stale).
    with open(params["stamp"], "a", encoding="utf-8"):
        os.utime(params["stamp"])
    if params["unlock"]:
        shutil.rmtree(params["unlock"], ignore_errors=True)
    module.exit_json(changed=True, done=done, site_changed=change.site_changed, link_changed=change.link_changed,
                     stderr=err, unlocked=bool(params["unlock"]), **({"diff": diff} if diff else {}))


if __name__ == "__main__":
    main()
