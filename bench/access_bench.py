"""What the access check costs per request, measured in one process on a real store: the
lookups a CalDAV request makes to reach a calendar and check the user's level, for its owner and
for a user it is shared with, beside the lookup before sharing existed (one query by slug) and
the week query they guard.

    .venv/bin/python bench/access_bench.py [--postgres postgresql://127.0.0.1:5432/test] [--events 1000]

Each figure is the median of 7 runs of 500 calls, in microseconds per call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402
from bench.import_bench import drop_schema, fresh_schema  # noqa: E402
from protocol.ical.values import epoch  # noqa: E402
from server.config import load  # noqa: E402
from server.services import build  # noqa: E402
from server.services.access import Level  # noqa: E402
from server.services.imports import ImportRequest, Upload  # noqa: E402

CALLS, RUNS = 500, 7


async def per_call(work: Callable[[], Awaitable[object]]) -> float:
    """Median microseconds per call of ``work``."""
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(CALLS):
            await work()
        runs.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(runs)


async def measure(server: str, events: int) -> None:
    """On SQLite in a temporary folder, or in a schema of its own on the PostgreSQL ``server``."""
    schema, store_url = await fresh_schema(server) if server else (None, "")
    try:
        await measure_on(store_url, events)
    finally:
        if schema:
            await drop_schema(server, schema)


async def measure_on(store_url: str, events: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = load(None, {("server", "data"): folder, ("store", "url"): store_url}, environ={})
        services = build(config)
        await services.store.open()
        try:
            alice = await services.users.create("alice", "a long enough password")
            bob = await services.users.create("bob", "a long enough password")
            calendar = await services.calendars.default(alice)
            request = ImportRequest(door="bench", calendar=calendar, format="ics")
            await services.imports.run(alice, request, Upload(ics(events, prefix="bench")))
            grant = await services.access.share(alice, calendar, bob, "read-write")
            await services.access.answer(bob, grant, accept=True)
            assert grant.slug is not None
            shared = await services.calendars.find(bob, grant.slug)
            assert shared is not None
            week = epoch(datetime(2024, 1, 15, tzinfo=UTC)), epoch(datetime(2024, 1, 22, tzinfo=UTC))
            calendars = services.calendars
            rows = {
                "find by slug, before sharing": await per_call(
                    lambda: services.store.get_calendar_by_slug(alice.id, calendar.slug)
                ),
                "find the calendar, owner": await per_call(lambda: calendars.find(alice, calendar.slug)),
                "find the calendar, sharee": await per_call(lambda: calendars.find(bob, grant.slug or "")),
                "check the level, owner": await per_call(lambda: calendars.need(alice, [calendar], Level.READ)),
                "check the level, sharee": await per_call(lambda: calendars.need(bob, [shared], Level.READ)),
                "week query (what they guard)": await per_call(
                    lambda: calendars.list_objects(alice, [calendar], start=week[0], end=week[1])
                ),
            }
        finally:
            await services.store.close()
    print("| store | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    print(f"| {services.store.__class__.__name__} | " + " | ".join(f"{v:,.0f} µs" for v in rows.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--events", type=int, default=1000)
    options = parser.parse_args()
    asyncio.run(measure(options.postgres, options.events))


if __name__ == "__main__":
    main()
