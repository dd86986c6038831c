"""WCAP benchmark: import.wcap of a 10,000-event file, then fetchcomponents_by_range over a
one-week and a one-year window on calendars of 10,000 and 100,000 events (both about 100
events a week: 2 and 20 years of history).

    .venv/bin/python bench/wcap_bench.py [--sizes 10000 100000] [--runs 20]

Fetches use Lightning's parameters (recurring=1: masters with their exceptions) and, for
comparison, WCAP's default of expanded instances (recurring=0). Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from icalendar import Calendar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402
from bench.import_bench import Server  # noqa: E402

SESSION = {"id": ""}


def wcap(server: Server, command: str, body: bytes | None = None, headers: dict | None = None, **params: str) -> str:
    query = "&".join(f"{k.replace('_', '-')}={v}" for k, v in {**SESSION, **params}.items())
    request = urllib.request.Request(f"{server.base}/wcap/{command}.wcap?{query}", data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=3600) as response:
        return response.read().decode()


def import_wcap(server: Server, calid: str, data: bytes) -> float:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.ics"\r\n'
            "Content-Type: text/calendar\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    started = time.perf_counter()
    reply = wcap(server, "import", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, calid=calid)
    elapsed = time.perf_counter() - started
    assert "X-NSCP-WCAP-ERRNO:0" in reply, reply[-300:]
    return elapsed


def fetch_ms(server: Server, calid: str, start: str, end: str, recurring: str, runs: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        reply = wcap(server, "fetchcomponents_by_range", calid=calid, dtstart=start, dtend=end, recurring=recurring)
        times.append((time.perf_counter() - started) * 1000)
        count = reply.count("BEGIN:VEVENT")
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        server = Server(Path(folder) / "data")
        request = urllib.request.Request(
            server.base + "/v1/users", method="POST", headers={"Content-Type": "application/json"},
            data=b'{"username": "bench", "password": "benchmark-password"}',
        )  # fmt: skip
        urllib.request.urlopen(request).close()
        login = wcap(server, "login", user="bench", password="benchmark-password")
        SESSION["id"] = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split()[0]
        for size in args.sizes:
            calid = f"bench:c{size}"
            wcap(server, "createcalendar", calid=calid, name=f"c{size}")
            # The same density (about 100 events a week) whatever the size: a bigger calendar is
            # a longer history, so the numbers show how a query scales with the calendar's size.
            data = ics(size, seed=size, prefix=f"w{size}", days=size // 5000 * 365)
            if size == args.sizes[0]:
                started = time.perf_counter()
                Calendar.from_ical(data)
                parse = time.perf_counter() - started
                elapsed = import_wcap(server, calid, data)
                lines.append(
                    f"| import.wcap of {size:,} events ({len(data) / 1e6:.1f} MB) | {elapsed:.1f} s "
                    f"| icalendar parse alone {parse:.1f} s: {elapsed / parse:.2f}x |"
                )
            else:
                import_wcap(server, calid, data)
            for label, start, end in (
                ("one week", "20240610T000000Z", "20240617T000000Z"),
                ("one year", "20240101T000000Z", "20250101T000000Z"),
            ):
                for recurring in ("1", "0"):
                    ms, count = fetch_ms(server, calid, start, end, recurring, args.runs if label == "one week" else 3)
                    lines.append(
                        f"| fetchcomponents_by_range, {label}, {size:,} events, recurring={recurring} "
                        f"| {ms:.1f} ms | {count:,} components |"
                    )
        server.stop()
    print("| what | time (median) | notes |\n|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
