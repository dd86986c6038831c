"""Free/busy for many attendees: a VFREEBUSY REQUEST POSTed to the CalDAV outbox asking about 30
attendees, each with 10,000 events, for a week and for a month (RFC 6638 5; issue 28's target:
under 200 ms), with ``[scheduling] free_busy = everyone``.

    .venv/bin/python bench/scheduling_bench.py [--attendees 30] [--events 10000] [--runs 20]

Run by hand (not in CI); it starts its own server on 127.0.0.1 with a temporary data folder.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402
from bench.import_bench import free_port  # noqa: E402

PASSWORD = "benchmark-password"


def call(base: str, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, data=body or None, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.status, response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attendees", type=int, default=30)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = f"http://127.0.0.1:{free_port()}"
        env = {
            "PATH": "/usr/bin:/bin",
            "ALMANAC_SERVER_LOG_LEVEL": "WARNING",
            "ALMANAC_SCHEDULING_FREE_BUSY": "everyone",
        }
        server = subprocess.Popen(
            [sys.executable, "run.py", "serve", "--port", base.rsplit(":", 1)[1], "--data", f"{folder}/data"],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    call(base, "GET", "/")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.2)
            names = ["organizer"] + [f"attendee{n}" for n in range(args.attendees)]
            started = time.perf_counter()
            for name in names:
                body = json.dumps({"username": name, "password": PASSWORD, "email": f"{name}@bench.test"}).encode()
                _, reply = call(base, "POST", "/v1/users", body, **{"Content-Type": "application/json"})
                if name != "organizer":
                    token = json.loads(reply)["authToken"]
                    data = {"file": ics(args.events, seed=len(name), prefix=name).decode()}
                    call(base, "POST", "/v1/import/", json.dumps(data).encode(),
                         **{"Content-Type": "application/json", "Authorization": f"Token token={token}"})  # fmt: skip
            filled = time.perf_counter() - started
            auth = "Basic " + base64.b64encode(f"organizer:{PASSWORD}".encode()).decode()
            attendees = "".join(f"ATTENDEE:mailto:{name}@bench.test\r\n" for name in names[1:])
            rows = []
            for label, start, end in (("a week", "20240610T000000Z", "20240617T000000Z"),
                                      ("a month", "20240601T000000Z", "20240701T000000Z")):  # fmt: skip
                request = (
                    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n"
                    f"UID:bench\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
                    f"ORGANIZER:mailto:organizer@bench.test\r\n{attendees}END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
                ).encode()
                times, periods = [], 0
                for _ in range(args.runs):
                    began = time.perf_counter()
                    status, reply = call(base, "POST", "/dav/scheduling/organizer/outbox/", request,
                                         Authorization=auth, **{"Content-Type": "text/calendar"})  # fmt: skip
                    times.append((time.perf_counter() - began) * 1000)
                    assert status == 200 and reply.count(b"2.0;Success") == args.attendees, reply[:500]
                    periods = reply.count(b"FREEBUSY;")
                rows.append((label, statistics.median(times), max(times), periods))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    print(f"{args.attendees} attendees with {args.events:,} events each (filled in {filled:.0f} s)")
    print("| free/busy request | median | max | busy periods in the answer |")
    print("|---|---|---|---|")
    for label, median, worst, periods in rows:
        print(f"| {label} | {median:.0f} ms | {worst:.0f} ms | {periods:,} |")


if __name__ == "__main__":
    main()
