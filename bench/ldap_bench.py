"""Signing in through an LDAP directory (issue 30): a CalDAV PROPFIND (Depth 0) with Basic
credentials, as a calendar program sends on every request, by a directory user (the directory
asked each time: a search on a kept connection, then a bind on another) and by a local user (the
password hashed once, then remembered for five minutes), against Debian's slapd on 127.0.0.1.

    .venv/bin/python bench/ldap_bench.py [--requests 300] [--pool 4]

Run by hand (not in CI); it starts slapd and a server with temporary folders and stops both by PID.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import ldap3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_bench import free_port, wait_until_up  # noqa: E402
from tests.helpers import LDAP_ADMIN, LDAP_SECRET, LDAP_SUFFIX, start_slapd  # noqa: E402

PASSWORD = "benchmark-password"


def timed(base: str, user: str, count: int) -> list[float]:
    auth = "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    times = []
    for _ in range(count):
        request = urllib.request.Request(
            base + "/dav/", method="PROPFIND", headers={"Authorization": auth, "Depth": "0"}
        )
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            assert response.status == 207
        times.append((time.perf_counter() - began) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pool", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, slapd = start_slapd(Path(folder) / "slapd")
        try:
            admin = ldap3.Connection(ldap3.Server(url), LDAP_ADMIN, LDAP_SECRET, auto_bind=True)
            admin.add(f"ou=people,{LDAP_SUFFIX}", ["organizationalUnit"], {"ou": "people"})
            for n in range(200):  # a directory of some size
                person = {"cn": f"User {n}", "sn": str(n), "mail": f"user{n}@corp.example", "userPassword": PASSWORD}
                admin.add(f"uid=user{n},ou=people,{LDAP_SUFFIX}", ["inetOrgPerson"], person)
            added = subprocess.run(
                [sys.executable, "run.py", "user", "add", "local", "--password-stdin", "--data", f"{folder}/data"],
                cwd=ROOT, input=f"{PASSWORD}\n", capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            port = free_port()
            env = {
                **os.environ, "ALMANAC_SERVER_LOG_LEVEL": "WARNING", "ALMANAC_AUTH_BACKEND": "ldap",
                "ALMANAC_LDAP_URL": url, "ALMANAC_LDAP_BIND_DN": LDAP_ADMIN,
                "ALMANAC_LDAP_BIND_PASSWORD": LDAP_SECRET, "ALMANAC_LDAP_BASE": f"ou=people,{LDAP_SUFFIX}",
                "ALMANAC_LDAP_POOL_SIZE": str(args.pool),
            }  # fmt: skip
            command = [sys.executable, "run.py", "serve", "--port", str(port), "--data", f"{folder}/data"]
            server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(base)
                rows = []
                for label, user in (("directory user (LDAP)", "user7"), ("local user", "local")):
                    timed(base, user, 20)  # warm: the user made here, the connections open
                    times = sorted(timed(base, user, args.requests))
                    rows.append((label, statistics.median(times), times[int(len(times) * 0.95)]))
            finally:
                server.terminate()
                server.wait(timeout=30)
        finally:
            slapd.terminate()
            slapd.wait(timeout=30)
    machine = f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}"
    print(f"{machine}; {args.requests} requests, pool {args.pool}")
    print("| who | p50 | p95 |")
    print("|---|---|---|")
    for label, median, p95 in rows:
        print(f"| {label} | {median:.1f} ms | {p95:.1f} ms |")


if __name__ == "__main__":
    main()
