"""A million events on PostgreSQL (issue 31): 1,000 users, ten of them with 100,000 events each,
built through the imports; after each of the ten imports, on the first big calendar, a one-week
calendar-query, the first byte of a PROPFIND Depth 1 and a sync-collection of ten changes
(median of 20 each), and the server's memory (RSS now, and its peak); at the end the same on a
server started afresh on the full store.

    .venv/bin/python bench/million_bench.py --store postgresql://127.0.0.1:5432/almanac_bench
                                            [--users 1000] [--big 10] [--events 100000]

Run by hand (not in CI); it starts its own server on 127.0.0.1 (in a PostgreSQL schema of its own,
dropped after) and stops it by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.caldav_bench import PROPFIND, QUERY, SYNC, XML, events, first_byte, timed  # noqa: E402
from bench.generate import ics  # noqa: E402
from bench.import_bench import Server, postgres_store, upload  # noqa: E402

PASSWORD = "benchmark-password"
RUNS = 20
TOKEN = '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>'


def rss_mib(server: Server) -> tuple[float, float]:
    """The server's resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
    status = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


async def sign_up(base: str, users: int) -> dict[str, str]:
    """``users`` accounts (two at a time: each hashes a password): their API tokens by name."""
    tokens: dict[str, str] = {}
    names = iter(f"user{n:04}" for n in range(users))

    async def worker(http: aiohttp.ClientSession) -> None:
        for name in names:
            body = {"username": name, "password": PASSWORD, "email": f"{name}@bench.test"}
            async with http.post(f"{base}/v1/users", json=body) as reply:
                tokens[name] = (await reply.json())["authToken"]

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(worker(http), worker(http))
    return tokens


async def measure(base: str, user: str, round_: int) -> dict[str, float]:
    """The three timings on ``user``'s calendar, in milliseconds (medians of RUNS)."""
    calendar = f"{base}/dav/calendars/{user}/calendar/"
    found: dict[str, float] = {}
    async with aiohttp.ClientSession(auth=aiohttp.BasicAuth(user, PASSWORD)) as http:

        async def sync(token: str) -> tuple[float, str]:
            started = time.perf_counter()
            body = SYNC.format(token=token)
            async with http.request("REPORT", calendar, data=body, headers={**XML, "Depth": "1"}) as reply:
                text = await reply.text()
            took = (time.perf_counter() - started) * 1000
            assert text.count("getetag>") >= 10, text[:300]  # the ten changes
            return took, re.search(r"sync-token>([^<]+)<", text).group(1)  # type: ignore[union-attr]

        query = QUERY.format(expand="")
        await timed(http, "REPORT", calendar, query, **XML, Depth="1")  # the first checks the password
        found["week query ms"] = statistics.median(
            [await timed(http, "REPORT", calendar, query, **XML, Depth="1") for _ in range(RUNS)]
        )
        found["PROPFIND first byte ms"] = statistics.median(
            [await first_byte(http, "PROPFIND", calendar, PROPFIND, **XML, Depth="1") for _ in range(RUNS)]
        )
        async with http.request("PROPFIND", calendar, data=TOKEN, headers={**XML, "Depth": "0"}) as reply:
            token = re.search(r"sync-token>([^<]+)<", await reply.text()).group(1)  # type: ignore[union-attr]
        syncs = []
        for run in range(RUNS):
            for uid, text in events(10, f"change-{round_}-{run}"):
                async with http.put(calendar + f"{uid}.ics", data=text) as reply:
                    assert reply.status == 201, reply.status
            took, token = await sync(token)
            syncs.append(took)
        found["sync of 10 changes ms"] = statistics.median(syncs)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", required=True, help="a PostgreSQL database URL (a schema of its own, dropped after)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--big", type=int, default=10, help="users with --events events each")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    rows: list[tuple[str, dict[str, float], tuple[float, float]]] = []
    with tempfile.TemporaryDirectory() as folder, postgres_store(args.store) as store:
        server = Server(Path(folder) / "data", store)
        try:
            began = time.perf_counter()
            tokens = asyncio.run(sign_up(server.base, args.users))
            signed_up = time.perf_counter() - began
            imported, total = 0.0, 0
            for big in range(args.big):
                user = f"user{big:04}"
                data = ics(args.events, seed=big, prefix=f"{user}-", days=max(70, args.events * 7 // 100))
                took, reply = upload(server, tokens[user], data)
                assert reply["created"] == args.events, json.dumps(reply)[:300]
                imported += took
                total += args.events
                rows.append((f"{total:,} events", asyncio.run(measure(server.base, "user0000", big)), rss_mib(server)))
                print(rows[-1], flush=True)
            server.stop()
            server = Server(Path(folder) / "data", store)  # a fresh process on the full store
            rows.append((f"{total:,} events, restarted", asyncio.run(measure(server.base, "user0000", 99)),
                         rss_mib(server)))  # fmt: skip
        finally:
            server.stop()
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}; PostgreSQL, 1 worker")
    print(f"built: {args.users:,} users signed up in {signed_up:.0f} s; {args.big} imports of {args.events:,} events "
          f"in {imported:.0f} s ({total / imported:,.0f} events/s)")  # fmt: skip
    print("| store | week query | PROPFIND first byte | sync of 10 changes | server RSS (peak) |")
    print("|---|---|---|---|---|")
    for label, found, (rss, peak) in rows:
        print(f"| {label} | {found['week query ms']:.1f} ms | {found['PROPFIND first byte ms']:.1f} ms "
              f"| {found['sync of 10 changes ms']:.1f} ms | {rss:.0f} MiB ({peak:.0f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
