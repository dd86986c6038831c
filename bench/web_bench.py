"""The calendar pages on a large calendar (issue 29): the month, week and agenda views and a
search of one user's calendar holding 1,000 and 10,000 events (80 % single events, 10 % weekly
series of 20 instances, 10 % all-day, over two years), as a signed-in browser asks for them:
the server's time (its X-Runtime header), the time the client waits, and the page's weight
(as sent, and gzipped as a proxy would send it).

    .venv/bin/python bench/web_bench.py [--sizes 1000,10000] [--runs 20]

Run by hand (not in CI); it starts its own server on 127.0.0.1 with a temporary data folder and
stops it by PID.
"""

from __future__ import annotations

import argparse
import gzip
import http.cookiejar
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402
from bench.import_bench import free_port  # noqa: E402

PASSWORD = "benchmark-password"
PAGES = (
    ("month view", "/app/calendar?view=month&date=2024-06-01"),
    ("week view", "/app/calendar?view=week&date=2024-06-12"),
    ("agenda (4 weeks)", "/app/calendar?view=agenda&date=2024-06-03"),
    ("search (a place)", "/app/search?q=Room+17"),
)


def started(folder: str) -> tuple[subprocess.Popen[bytes], str]:
    base = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [sys.executable, "run.py", "serve", "--port", base.rsplit(":", 1)[1], "--data", f"{folder}/data"],
        cwd=ROOT, env={**os.environ, "ALMANAC_SERVER_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=5).read()
            return server, base
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)


def measure(size: int, runs: int) -> list[tuple[str, float, float, int, int, int]]:
    with tempfile.TemporaryDirectory() as folder:
        server, base = started(folder)
        try:
            body = json.dumps({"username": "viewer", "password": PASSWORD}).encode()
            reply = urllib.request.urlopen(urllib.request.Request(
                base + "/v1/users", data=body, headers={"Content-Type": "application/json"}), timeout=60)  # fmt: skip
            token = json.loads(reply.read())["authToken"]
            data = json.dumps({"file": ics(size, prefix="web").decode()}).encode()
            headers = {"Content-Type": "application/json", "Authorization": f"Token token={token}"}
            request = urllib.request.Request(base + "/v1/import/", data=data, headers=headers)
            urllib.request.urlopen(request, timeout=600).read()
            browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            form = urllib.parse.urlencode({"username": "viewer", "password": PASSWORD}).encode()
            browser.open(base + "/app/signin", data=form, timeout=60).read()
            rows = []
            for label, path in PAGES:
                server_ms, client_ms, size_sent, shown = [], [], 0, 0
                for _ in range(runs):
                    began = time.perf_counter()
                    with browser.open(base + path, timeout=60) as response:
                        page = response.read()
                        client_ms.append((time.perf_counter() - began) * 1000)
                        server_ms.append(float(response.headers["X-Runtime"]) * 1000)
                    size_sent, shown = len(page), page.count(b'class="event ')
                rows.append((label, statistics.median(server_ms), statistics.median(client_ms), size_sent,
                             len(gzip.compress(page)), shown))  # fmt: skip
            return rows
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}; median of {args.runs}")
    print("| events | page | server | client | page weight | gzipped | occurrences shown |")
    print("|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        for label, server_ms, client_ms, sent, zipped, shown in measure(size, args.runs):
            print(f"| {size:,} | {label} | {server_ms:.1f} ms | {client_ms:.1f} ms | {sent / 1024:.0f} KiB "
                  f"| {zipped / 1024:.0f} KiB | {shown:,} |")  # fmt: skip


if __name__ == "__main__":
    main()
