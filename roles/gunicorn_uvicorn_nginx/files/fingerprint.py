"""Fingerprint of an app's source directory, run on the controller.

Prints {"code": ..., "requirements": ...}: SHA-256 over every file's relative
path, executable bit and content (what the copy to the host carries), and
over the top-level requirements*.txt and constraints*.txt files alone ("" if
there are none: a requirements.txt may pull in the others with -r and -c).
The release id and the virtualenv's key derive from them, so an unchanged
source means no new release.
"""

import fnmatch
import hashlib
import json
import os
import sys

root = sys.argv[1]
code = hashlib.sha256()
requirements = hashlib.sha256()
pip_files = 0
for base, dirs, files in os.walk(root, followlinks=True):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(base, name)
        relative = os.path.relpath(path, root)
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        executable = "x" if os.access(path, os.X_OK) else "-"
        code.update(f"{relative}\0{executable}\0{digest}\n".encode())
        if base == root and any(fnmatch.fnmatch(name, pattern) for pattern in ("requirements*.txt", "constraints*.txt")):
            requirements.update(f"{name}\0{digest}\n".encode())
            pip_files += 1
print(json.dumps({"code": code.hexdigest(), "requirements": requirements.hexdigest() if pip_files else ""}))
