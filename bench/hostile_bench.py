"""Hostile input against a running server, as an attacker beside an ordinary user would send it.

``run.py serve`` starts in a process of its own (SQLite in a temporary folder, on 127.0.0.1).
Every case of tests/test_hostile.py is sent over HTTP while another client sends a probe
request (GET /v1/me) every 20 ms; then the heavy attacks of issue 12 run one by one under
the same probe: an every-second slot exported as Outlook CSV, an expand over 100 years of an
every-second rule, and 24 connections guessing passwords while a calendar-query is timed.
Reports, per door: inputs sent, 5xx seen, the slowest probe; and the server's peak RSS.

    .venv/bin/python bench/hostile_bench.py
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_caldav import EVENT, basic  # noqa: E402
from tests.test_hostile import CASES, make_world, send  # noqa: E402
from tests.test_processes import Server  # noqa: E402

CAL = "/dav/calendars/alice/calendar/"
WEEK_QUERY = (
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="20250106T000000Z" end="20250113T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
    "</C:calendar-query>"
)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def probing(http: aiohttp.ClientSession, token: str, work: Awaitable[Any]) -> tuple[Any, float]:
    """``work``'s result and the slowest probe sent every 20 ms while it ran."""
    task = asyncio.ensure_future(work)
    slowest = 0.0
    while True:
        started = time.perf_counter()
        async with http.get("/v1/me", headers={"Authorization": token}) as response:
            await response.read()
        slowest = max(slowest, time.perf_counter() - started)
        if task.done():
            return await task, slowest
        await asyncio.sleep(0.02)


async def sign_up(http: aiohttp.ClientSession, name: str) -> str:
    body = {"username": name, "password": "correct horse", "email": f"{name}@example.org"}
    async with http.post("/v1/users", json=body) as response:
        return f"Token token={(await response.json())['authToken']}"


async def heavy_attacks(http: aiohttp.ClientSession, token: str, probe_token: str) -> list[tuple[str, str, float]]:
    """(name, what it got, the slowest probe meanwhile) for each of issue 12's heavy requests."""
    results = []
    slot = {"title": "tick", "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-01-01T00:00:01Z"}

    async def exported() -> str:
        async with http.post("/v1/slots", json={**slot, "rrule": "FREQ=SECONDLY"}, headers={"Authorization": token}):
            pass
        started = time.perf_counter()
        async with http.post("/v1/export/outlook", json={}, headers={"Authorization": token}) as response:
            rows = (await response.text()).count("\n")
        return f"{response.status}, {rows:,} rows in {time.perf_counter() - started:.2f} s"

    results.append(("every-second slot, Outlook export", *await probing(http, probe_token, exported())))
    tick = EVENT.format(uid="tick", summary="tick").replace("SUMMARY:tick", "SUMMARY:tick\r\nRRULE:FREQ=SECONDLY")

    async def expanded() -> str:
        await http.put(CAL + "tick.ics", data=tick, headers=basic("alice"))
        query = WEEK_QUERY.replace("<D:getetag/>", '<D:getetag/><C:calendar-data><C:expand start="20900101T000000Z" '
                                   'end="21900101T000000Z"/></C:calendar-data>')  # fmt: skip
        query = query.replace("20250106T000000Z", "20900101T000000Z").replace("20250113T000000Z", "21900101T000000Z")
        started = time.perf_counter()
        headers = {**basic("alice"), "Depth": "1"}
        async with http.request("REPORT", CAL, data=query, headers=headers) as response:
            size = len(await response.read())
        return f"{response.status}, {size / 1e6:.1f} MB in {time.perf_counter() - started:.2f} s"

    results.append(("expand of an every-second rule over 100 years", *await probing(http, probe_token, expanded())))
    for put in range(50):  # something for the timed query to find
        await http.put(f"/dav/calendars/bob/calendar/e{put}.ics", data=EVENT.format(uid=f"e{put}", summary="x"),
                       headers=basic("bob"))  # fmt: skip

    async def guessing(stop: float) -> int:
        """Wrong passwords as fast as the server takes them; the throttle soon holds them back."""
        answered = 0
        wrong = {"Authorization": basic("alice")["Authorization"][:-4] + "AAAA", "Depth": "0"}
        while (left := stop - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                async with http.request("PROPFIND", CAL, headers=wrong, timeout=aiohttp.ClientTimeout(left)) as r:
                    await r.read()
                    answered += 1
        return answered

    async def timed_queries(stop: float) -> list[float]:
        times = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            headers = {**basic("bob"), "Depth": "1"}
            async with http.request("REPORT", "/dav/calendars/bob/calendar/", data=WEEK_QUERY, headers=headers) as r:
                await r.read()
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
        return times

    async def flood() -> str:
        stop = time.monotonic() + 10
        *guesses, times = await asyncio.gather(*(guessing(stop) for _ in range(24)), timed_queries(stop))
        p50, slowest = statistics.median(times) * 1000, max(times) * 1000
        return f"{sum(guesses):,} guesses answered in 10 s; bob's calendar-query p50 {p50:.1f} ms, max {slowest:.1f} ms"

    results.append(("24 connections guessing passwords", *await probing(http, probe_token, flood())))
    return results


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        server = Server(Path(folder) / "data")
        await server.start()
        assert server.process is not None
        try:
            connector = aiohttp.TCPConnector(limit=100)
            jar = aiohttp.CookieJar(unsafe=True)  # the web pages' cookie, from 127.0.0.1
            async with aiohttp.ClientSession(server.url, connector=connector, cookie_jar=jar) as http:
                token = await sign_up(http, "alice")
                await sign_up(http, "bob")
                probe_token = await sign_up(http, "carol")
                world = await make_world(http, token, http.cookie_jar)
                sent: dict[str, int] = defaultdict(int)
                errors: dict[str, int] = defaultdict(int)
                stalls: dict[str, float] = defaultdict(float)
                started = time.perf_counter()
                for case in CASES:
                    response, slowest = await probing(http, probe_token, send(http, case, world))
                    await response.read()
                    sent[case.door] += 1
                    errors[case.door] += response.status >= 500
                    stalls[case.door] = max(stalls[case.door], slowest)
                print(f"{len(CASES)} hostile inputs in {time.perf_counter() - started:.1f} s")
                print("| door | inputs | 5xx | slowest probe |\n|---|---|---|---|")
                for door, count in sent.items():
                    print(f"| {door} | {count} | {errors[door]} | {stalls[door] * 1000:.0f} ms |")
                print("\n| heavy request | what it got | slowest probe |\n|---|---|---|")
                for name, outcome, slowest in await heavy_attacks(http, token, probe_token):
                    print(f"| {name} | {outcome} | {slowest * 1000:.0f} ms |")
            print(f"\npeak RSS of the server: {peak_rss_mib(server.process.pid):.0f} MiB")
        finally:
            with contextlib.suppress(Exception):
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())
