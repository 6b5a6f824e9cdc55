#!/usr/bin/env python3
"""Bounded load generator for the Molecule scenarios: runs on the host under
test against loopback only, so it measures nginx and gunicorn and not Docker.

    load.py URL [--host-header NAME] --connections N --max-seconds S --stop-file PATH

Each connection sends GET requests one after another on a keep-alive
connection (a new connection after the server closes one), until the stop
file appears or S seconds have passed. Prints one JSON object: requests,
statuses, errors (connection-level failures) and their first messages.
"""

import argparse
import collections
import http.client
import json
import os
import threading
import time
import urllib.parse


def worker(url, host_header, deadline, stop_file, statuses, errors, lock):
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    connection = None
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        try:
            if connection is None:
                connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
            connection.request("GET", path, headers={"Host": host_header or parts.hostname})
            reply = connection.getresponse()
            reply.read()
            with lock:
                statuses[reply.status] += 1
            if reply.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as error:
            with lock:
                errors.append(f"{type(error).__name__}: {error}")
            if connection is not None:
                connection.close()
            connection = None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--host-header", help="Host header to send (an nginx server_name)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--stop-file", default="/tmp/load.stop")
    args = parser.parse_args()
    statuses, errors, lock = collections.Counter(), [], threading.Lock()
    deadline = time.monotonic() + args.max_seconds
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(args.url, args.host_header, deadline, args.stop_file, statuses, errors, lock))
               for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({
        "seconds": round(time.monotonic() - started, 1),
        "requests": sum(statuses.values()) + len(errors),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": len(errors),
        "first_errors": errors[:5],
    }))


if __name__ == "__main__":
    main()
