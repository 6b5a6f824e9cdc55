#!/usr/bin/env python3
"""Bounded load generator for the Molecule scenarios: runs on the host under
test against loopback only, so it measures nginx and gunicorn and not Docker.

    load.py URL [--host-header NAME] --connections N --max-seconds S --stop-file PATH [--pause S]

URL may be https (the certificate is not checked: tests judge certificates
elsewhere). Answers that are JSON with a "host" field (the sample app's
index) are counted per host: the fleet's tests see which app hosts served.

Each connection sends GET requests one after another on a keep-alive
connection (a new connection after the server closes one), until the stop
file appears or S seconds have passed. Prints one JSON object: requests,
statuses, errors (connection-level failures) and their first messages, and
`retried`: requests sent on an idle keep-alive connection that the server
closed at that moment, before any byte of an answer (nginx does so to idle
connections when it reloads). Like browsers, curl and urllib3 (RFC 9112,
9.3.1), the generator sends such a GET once more on a new connection; only if
that fails too is it an error. --pause makes each connection wait between requests: a
steady stream that leaves the CPUs to what is being tested.
"""

import argparse
import collections
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse


def worker(url, host_header, pause, deadline, stop_file, statuses, errors, retried, hosts, lock):
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    connection, reused = None, False
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        answered = False
        try:
            if connection is None:
                if parts.scheme == "https":
                    connection = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=30,
                                                             context=ssl._create_unverified_context())
                else:
                    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
                reused = False
            connection.request("GET", path, headers={"Host": host_header or parts.hostname})
            reply = connection.getresponse()
            answered = True
            body = reply.read()
            try:
                served_by = json.loads(body).get("host")
            except (ValueError, AttributeError):
                served_by = None
            with lock:
                statuses[reply.status] += 1
                if isinstance(served_by, str):
                    hosts[served_by] += 1
            reused = True
            time.sleep(pause)
            if reply.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as error:
            if connection is not None:
                connection.close()
            connection = None
            # Closed while idle: the request never reached the server; send it again.
            if reused and not answered and isinstance(error, ConnectionError):
                with lock:
                    retried.append(f"{type(error).__name__}: {error}")
                reused = False
                continue
            with lock:
                errors.append(f"{type(error).__name__}: {error}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--host-header", help="Host header to send (an nginx server_name)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--stop-file", default="/tmp/load.stop")
    parser.add_argument("--pause", type=float, default=0, help="seconds between requests on a connection")
    args = parser.parse_args()
    statuses, errors, retried, hosts, lock = collections.Counter(), [], [], collections.Counter(), threading.Lock()
    deadline = time.monotonic() + args.max_seconds
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(args.url, args.host_header, args.pause, deadline, args.stop_file, statuses, errors, retried,
                                                  hosts, lock))
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
        "retried": len(retried),
        "hosts": dict(sorted(hosts.items())),
    }))


if __name__ == "__main__":
    main()
