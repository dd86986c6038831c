"""Background imports and everyone else: CalDAV GET latency while POST /v1/imports runs a big
import, the import's wall time, and the server's peak memory.

A client GETs one event over CalDAV back to back (with a 20 ms pause) before and during the
import, and the latencies' p50/p99/max are reported for both phases.

    .venv/bin/python bench/jobs_bench.py [--size 100000] [--notes 750]

Run by hand (not in CI); it starts its own server on 127.0.0.1 with a temporary data folder.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402
from bench.import_bench import Server, token  # noqa: E402

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\nUID:probe@bench\r\n"
    "DTSTAMP:20240101T000000Z\r\nDTSTART:20240110T100000Z\r\nDTEND:20240110T110000Z\r\n"
    "SUMMARY:Probe\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def call(server: Server, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, bytes, float]:
    request = urllib.request.Request(server.base + path, data=body or None, headers=headers, method=method)
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        payload = response.read()
    return response.status, payload, (time.perf_counter() - started) * 1000


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.ics"\r\n\r\n'
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{len(ordered):,} GETs: p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=0, help="characters of COMMENT per event (750: a 100 MB file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = Server(Path(folder) / "data")
        auth = token(server, login=False)
        basic = "Basic " + base64.b64encode(b"bench:benchmark-password").decode()
        probe = "/dav/calendars/bench/calendar/probe.ics"
        call(server, "PUT", probe, EVENT.encode(), Authorization=basic, **{"Content-Type": "text/calendar"})

        def get() -> float:
            status, _, elapsed = call(server, "GET", probe, Authorization=basic)
            assert status == 200
            return elapsed

        before = []
        for _ in range(300):
            before.append(get())
            time.sleep(0.02)
        data = ics(args.size, seed=3, prefix="jobs", notes=args.notes)
        body, kind = multipart(data)
        started = time.perf_counter()
        status, reply, _ = call(
            server, "POST", "/v1/imports", body, Authorization=f"Token token={auth}", **{"Content-Type": kind}
        )
        accepted = time.perf_counter() - started
        job = json.loads(reply)
        assert status == 202, reply
        during, last_check, state = [], 0.0, {}
        while True:
            during.append(get())
            time.sleep(0.02)
            if time.perf_counter() - last_check > 1:
                last_check = time.perf_counter()
                state = json.loads(
                    call(server, "GET", f"/v1/imports/{job['id']}", Authorization=f"Token token={auth}")[1]
                )
                if state["status"] in ("complete", "failed"):
                    break
        elapsed = time.perf_counter() - started
        rss = server.peak_rss_mib()
        server.stop()
    assert state["status"] == "complete" and state["entries_created"] == args.size, state
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    print(f"file: {args.size:,} events, {len(data) / 1e6:.1f} MB; POST answered 202 after {accepted:.2f} s")
    print(f"import complete after {elapsed:.1f} s ({args.size / elapsed:,.0f} events/s); server peak RSS {rss:.0f} MiB")
    print(f"CalDAV GET before the import: {summary(before)}")
    print(f"CalDAV GET during the import: {summary(during)}")


if __name__ == "__main__":
    main()
