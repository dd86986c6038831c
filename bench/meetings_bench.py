"""What scheduling costs a write (issue 28's targets): a CalDAV PUT of an event without attendees,
with 10 local attendees (at most 3x the first), with 100 local attendees (under 1 s), and an
attendee's answer (their PUT, which updates the organizer's and the other attendees' copies).

    .venv/bin/python bench/meetings_bench.py [--runs 30] [--store postgresql://...]

Run by hand (not in CI); it starts its own server on 127.0.0.1 with a temporary data folder
(SQLite, or a PostgreSQL database given with --store: in a schema of its own, dropped after).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_bench import Server, postgres_store  # noqa: E402

PASSWORD = "benchmark-password"


def call(server: Server, method: str, path: str, user: str, body: bytes = b"", **headers: str) -> tuple[int, float]:
    auth = "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        server.base + path, data=body or None, method=method, headers={"Authorization": auth, **headers}
    )
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()
        return response.status, (time.perf_counter() - began) * 1000


def meeting(uid: str, attendees: list[str], partstat: str = "NEEDS-ACTION") -> bytes:
    lines = "".join(f"ATTENDEE;PARTSTAT={partstat};RSVP=TRUE:mailto:{a}@bench.test\r\n" for a in attendees)
    organizer = "ORGANIZER:mailto:organizer@bench.test\r\n" if attendees else ""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:20270302T090000Z\r\nDURATION:PT1H\r\n"
        f"SUMMARY:Meeting {uid}\r\n{organizer}{lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--store", help="a PostgreSQL database to run on (in a schema of its own, dropped after)")
    args = parser.parse_args()
    names = [f"att{n:02}" for n in range(100)]
    rows = []
    with tempfile.TemporaryDirectory() as folder, postgres_store(args.store) as store:
        server = Server(Path(folder) / "data", store)
        try:
            for name in ["organizer", *names]:
                body = json.dumps({"username": name, "password": PASSWORD, "email": f"{name}@bench.test"}).encode()
                server.request("/v1/users", body, {"Content-Type": "application/json"})
            calendar = "/dav/calendars/organizer/calendar/"
            ics = {"Content-Type": "text/calendar"}
            for label, count, runs in (("no attendees", 0, args.runs), ("10 local attendees", 10, args.runs),
                                       ("100 local attendees", 100, max(3, args.runs // 5))):  # fmt: skip
                times = []
                for run in range(runs):
                    uid = f"m{count}-{run}"
                    status, took = call(server, "PUT", f"{calendar}{uid}.ics", "organizer",
                                        meeting(uid, names[:count]), **ics)  # fmt: skip
                    assert status == 201
                    times.append(took)
                rows.append((f"PUT, {label}", statistics.median(times), max(times)))
            times = []
            for run in range(args.runs):  # att00 accepts each meeting of 10 in their copy
                uid = f"m10-{run}"
                body = meeting(uid, names[:10]).replace(
                    b"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:att00@", b"PARTSTAT=ACCEPTED:mailto:att00@"
                )
                status, took = call(server, "PUT", f"/dav/calendars/att00/calendar/{uid}.ics", "att00", body, **ics)
                assert status == 204
                times.append(took)
            rows.append(("an attendee's answer (10 attendees)", statistics.median(times), max(times)))
        finally:
            server.stop()
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    backend = "PostgreSQL" if args.store else "SQLite"
    print(f"{backend}; {args.runs} runs each (100 attendees: {max(3, args.runs // 5)})")
    print("| write | median | max |")
    print("|---|---|---|")
    for label, median, worst in rows:
        print(f"| {label} | {median:.1f} ms | {worst:.1f} ms |")


if __name__ == "__main__":
    main()
