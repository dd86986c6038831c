"""Many people at once (issue 31): ``--clients`` connections, each a calendar program of one of 20
users, for ``--seconds``: 80 % reads (a CalDAV GET of one of the user's events), 20 % writes (a
CalDAV PUT of a new event); the latency of each kind (p50, p99), the requests answered per
second and the errors. On SQLite or PostgreSQL, with 1 or more workers.

    .venv/bin/python bench/load_bench.py [--clients 150,200] [--seconds 30] [--workers 1]
                                         [--store postgresql://127.0.0.1:5432/test]

Run by hand (not in CI); it starts its own server on 127.0.0.1 and stops it by PID (on
PostgreSQL in a schema of its own, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.caldav_bench import events  # noqa: E402
from bench.import_bench import Server, free_port, postgres_store  # noqa: E402
from bench.scale_bench import cpu_seconds, postgres_pids  # noqa: E402

USERS = 20
EVENTS = 200  # each user's to read from
PASSWORD = "benchmark-password"


def auth(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()


async def fill(base: str) -> dict[str, list[str]]:
    """The users and the events each has (their hrefs)."""
    hrefs: dict[str, list[str]] = {}
    async with aiohttp.ClientSession() as http:
        for n in range(USERS):
            user = f"user{n}"
            await http.post(f"{base}/v1/users", json={"username": user, "password": PASSWORD})
            hrefs[user] = []
            for uid, text in events(EVENTS, f"{user}-base"):
                href = f"/dav/calendars/{user}/calendar/{uid}.ics"
                async with http.put(base + href, data=text, headers={"Authorization": auth(user)}) as reply:
                    assert reply.status == 201, await reply.text()
                hrefs[user].append(href)
    return hrefs


async def load(
    base: str, hrefs: dict[str, list[str]], clients: int, seconds: float, server_cpu: Callable[[], float]
) -> dict[str, object]:
    reads: list[float] = []
    writes: list[float] = []
    errors = 0
    until = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)

    async def client(number: int, http: aiohttp.ClientSession) -> None:
        nonlocal errors
        user = f"user{number % USERS}"
        headers = {"Authorization": auth(user)}
        chooser = random.Random(number)
        while time.monotonic() < until:
            began = time.perf_counter()
            try:
                if chooser.random() < 0.2:
                    uid, text = events(1, f"{user}-{uuid.uuid4().hex[:12]}")[0]
                    href = f"/dav/calendars/{user}/calendar/{uid}.ics"
                    async with http.put(base + href, data=text, headers=headers) as reply:
                        await reply.read()
                        ok = reply.status == 201
                    (writes if ok else []).append(time.perf_counter() - began)
                else:
                    async with http.get(base + chooser.choice(hrefs[user]), headers=headers) as reply:
                        await reply.read()
                        ok = reply.status == 200
                    (reads if ok else []).append(time.perf_counter() - began)
                errors += not ok
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        started, own, served = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF), server_cpu()
        await asyncio.gather(*(client(n, http) for n in range(clients)))
        took = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        loader = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
        served = server_cpu() - served

    def quantiles(found: list[float]) -> tuple[float, float]:
        if not found:
            return 0.0, 0.0
        ordered = sorted(found)
        return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    return {"clients": clients, "req/s": (len(reads) + len(writes)) / took, "read": quantiles(reads),
            "write": quantiles(writes), "writes/s": len(writes) / took, "errors": errors,
            "server cores": served / took, "loader cores": loader / took}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="150,200")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--store", help="postgresql://... (default: SQLite in a temporary folder)")
    parser.add_argument("--show-store", action="store_true", help="print the store's waits and writes (metrics)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, postgres_store(args.store) as store:
        metrics_port = free_port()
        env = {"ALMANAC_AUTH_LOGIN_FAILURES": "1000000", "ALMANAC_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
        server = Server(Path(folder) / "data", store, args.workers, env)
        try:
            hrefs = asyncio.run(fill(server.base))

            def server_cpu() -> float:  # the server's processes, and PostgreSQL's
                return cpu_seconds([server.process.pid]) + (cpu_seconds(postgres_pids()) if store else 0.0)

            rows = [asyncio.run(load(server.base, hrefs, int(c), args.seconds, server_cpu))
                    for c in args.clients.split(",")]  # fmt: skip
            if args.show_store:  # where the writes' time went, as the server's metrics say
                scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
                print("\n".join(line for line in scraped.splitlines() if line.startswith("almanac_store_seconds_")
                                and ("_sum" in line or "_count" in line)))  # fmt: skip
        finally:
            server.stop()
    store = "PostgreSQL" if args.store else "SQLite"
    print(f"Python {platform.python_version()} on {platform.machine()}; {store}, {args.workers} worker(s), "
          f"{args.seconds:.0f} s each, 80 % GET / 20 % PUT, {USERS} users")  # fmt: skip
    print("| clients | req/s | PUT/s | GET p50 | GET p99 | PUT p50 | PUT p99 | errors "
          "| CPU cores: server (+ PostgreSQL) / load generator |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        (rp50, rp99), (wp50, wp99) = row["read"], row["write"]  # type: ignore[misc]
        print(f"| {row['clients']} | {row['req/s']:.0f} | {row['writes/s']:.0f} | {rp50:.0f} ms | {rp99:.0f} ms "
              f"| {wp50:.0f} ms | {wp99:.0f} ms | {row['errors']} | {row['server cores']:.2f} / "
              f"{row['loader cores']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
