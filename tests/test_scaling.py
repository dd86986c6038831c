"""Past one process: several servers on one store behave as one server (on SQLite and on
PostgreSQL): a write through one is read through every door of the other, an import queued on
one runs on another, a node killed during an import has it rolled back by another once its
lease lapses, and eight clients writing through different processes lose nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree

from server.config import Config
from server.services import build
from server.services.imports import ImportRequest, Upload
from tests.helpers import EVENT, NS, Server, basic, kept_upload, sample, sign_up

ALICE = basic("alice")
CAL = "/dav/calendars/alice/calendar/"
SYNC = (
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>'
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
)


async def sync(http: aiohttp.ClientSession, url: str, token: str = "") -> tuple[list[str], str]:
    """The hrefs a sync-collection report returns after ``token``, and the new token."""
    async with http.request("REPORT", url + CAL, data=SYNC.format(token), headers={**ALICE, "Depth": "1"}) as response:
        assert response.status == 207, await response.text()
        root = etree.fromstring(await response.read())
    return [h.rsplit("/", 1)[1] for h in root.xpath("D:response/D:href/text()", namespaces=NS)], str(
        root.findtext("D:sync-token", namespaces=NS)
    )


async def put(http: aiohttp.ClientSession, url: str, name: str) -> int:
    async with http.put(f"{url}{CAL}{name}.ics", data=EVENT.format(uid=name, summary=name), headers=ALICE) as reply:
        return reply.status


async def test_two_nodes_on_one_store_are_one_server(node: Callable[..., Server]) -> None:
    a, b = node("a"), node("b")
    await asyncio.gather(a.start(), b.start())
    async with aiohttp.ClientSession() as http:
        token, _ = await sign_up(http, a.url)
        _, start = await sync(http, b.url)
        assert await put(http, a.url, "through-a") == 201
        assert (await sync(http, b.url, start))[0] == ["through-a.ics"]  # B's next sync has A's PUT
        async with http.get(f"{b.url}/login.wcap", params={"user": "alice", "password": "correct horse"}) as reply:
            session = (await reply.text()).split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
        params = {"id": session, "dtstart": "20250101T000000Z", "dtend": "20260101T000000Z"}
        async with http.get(f"{b.url}/fetchcomponents_by_range.wcap", params=params) as reply:
            assert "UID:through-a" in await reply.text()
        async with http.post(f"{b.url}/v1/export/ical", json={}, headers=token) as reply:
            assert "UID:through-a" in await reply.text()
        async with http.get(f"{a.url}/wcap/get_calprops.wcap", params={"id": session}) as reply:
            assert "X-NSCP-WCAP-ERRNO:0" in await reply.text()  # a WCAP session from B works on A


async def test_an_import_queued_on_one_node_runs_on_another(config: Config, tmp_path: Path) -> None:
    """Node A queues (and then is gone); node B, with its own data folder, runs the import
    from the file A left in the store."""
    a = build(config)
    b = build(dataclasses.replace(config, data_dir=tmp_path / "b"))
    await a.store.open()
    await b.store.open()
    try:
        user = await a.users.create("carol", "correct horse")
        job = await a.imports.submit(user, ImportRequest("rest", calendar=None), Upload.of(sample("google.ics")))
        await a.store.close()
        assert b.imports.runner != a.imports.runner
        await b.imports.start()
        await b.imports.idle()
        ran = await b.store.get_import(job.id)
        assert ran is not None and (ran.status, ran.created, ran.runner) == ("complete", 3, b.imports.runner)
        assert await kept_upload(b.store, job.id) is None  # the file is gone once it ran
    finally:
        await b.imports.stop()
        await b.store.close()


async def queue_import(http: aiohttp.ClientSession, url: str, token: dict[str, str], calendar: str, events: int) -> int:
    """Queue an import of ``events`` events through ``/v1/imports``; its id."""
    form = aiohttp.FormData()
    form.add_field("file", big_calendar(events), filename="big.ics")
    form.add_field("calendar", calendar)
    async with http.post(f"{url}/v1/imports", data=form, headers=token) as response:
        return int((await response.json())["id"])


async def job_when(
    http: aiohttp.ClientSession,
    url: str,
    token: dict[str, str],
    job: int,
    done: Callable[[dict[str, Any]], bool],
    within: float = 30,
) -> dict[str, Any]:
    """The import as ``url`` shows it once ``done`` says so (or after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        async with http.get(f"{url}/v1/imports/{job}", headers=token) as response:
            status: dict[str, Any] = await response.json()
        if done(status) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.01)


def big_calendar(events: int) -> bytes:
    body = "".join(
        f"BEGIN:VEVENT\r\nUID:big-{n}\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250110T100000Z\r\n"
        f"DTEND:20250110T110000Z\r\nSUMMARY:event {n}\r\nEND:VEVENT\r\n"
        for n in range(events)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n".encode()


async def test_a_node_killed_during_an_import_is_rolled_back_by_another(node: Callable[..., Server]) -> None:
    a, b = node("a", imports_lease="3"), node("b", imports_lease="3")
    await a.start()  # B starts once A runs the import (else B's workers may claim it first)
    async with aiohttp.ClientSession() as http:
        token, calendar = await sign_up(http, a.url)
        assert await put(http, a.url, "kept-before") == 201
        job = await queue_import(http, a.url, token, calendar, 12_000)
        # A has written some (it parses the whole file first: on a slow machine that takes a while)
        status = await job_when(http, a.url, token, job, lambda s: s["entries_created"] > 0, within=120)
        assert status["status"] == "in_progress" and status["entries_created"], status
        a.kill()
        await b.start()
        assert await put(http, b.url, "kept-during") == 201  # acknowledged while A is dead
        status = await job_when(http, b.url, token, job, lambda s: s["status"] != "in_progress")
        assert status["status"] == "failed" and "server stopped" in status["message"], status
        hrefs, _ = await sync(http, b.url)
        assert sorted(hrefs) == ["kept-before.ics", "kept-during.ics"]  # the import's events are gone


async def test_eight_clients_through_different_processes_lose_nothing(node: Callable[..., Server]) -> None:
    """Two nodes, the first with two workers: eight clients each write ten events into one
    calendar, alternating nodes; every write is acknowledged and kept, and an incremental
    sync on each node, run while they write, returns each change exactly once."""
    a, b = node("a", server_workers="2"), node("b")
    await asyncio.gather(a.start(), b.start())
    urls = [a.url, b.url]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        await sign_up(http, a.url)
        starts = [(await sync(http, url))[1] for url in urls]
        writing = True

        async def client(number: int) -> list[int]:
            return [await put(http, urls[(number + n) % 2], f"c{number}-{n}") for n in range(10)]

        async def watch(url: str, token: str) -> list[str]:
            seen: list[str] = []
            while True:
                done = not writing
                hrefs, token = await sync(http, url, token)
                seen += hrefs
                if done:
                    return seen
                await asyncio.sleep(0.05)

        watchers = [asyncio.create_task(watch(url, token)) for url, token in zip(urls, starts, strict=True)]
        statuses = await asyncio.gather(*(client(n) for n in range(8)))
        writing = False
        seen = await asyncio.gather(*watchers)
    assert all(status == 201 for each in statuses for status in each)
    expected = sorted(f"c{c}-{n}.ics" for c in range(8) for n in range(10))
    for changes in seen:
        assert sorted(changes) == expected  # each change once: none lost, none twice
    assert len(a.pids()) == 3  # the supervisor and its two workers


async def test_sigterm_drains_and_hands_the_running_import_to_another_node(node: Callable[..., Server]) -> None:
    """SIGTERM: the request in flight is answered; the import running in the background is
    rolled back and queued again; another node then runs it, whole."""
    a, b = node("a"), node("b")
    await a.start()
    async with aiohttp.ClientSession() as http:
        token, calendar = await sign_up(http, a.url)
        job = await queue_import(http, a.url, token, calendar, 12_000)
        status = await job_when(http, a.url, token, job, lambda s: s["entries_created"] > 0, 120)
        assert status["status"] == "in_progress", status
        small = aiohttp.FormData()
        small.add_field("file", big_calendar(3_000).replace(b"UID:big-", b"UID:small-"), filename="small.ics")
        in_flight = asyncio.create_task(http.post(f"{a.url}/v1/import/", data=small, headers=token))
        await asyncio.sleep(0.3)  # the server is reading it
        assert a.process is not None
        a.process.send_signal(signal.SIGTERM)
        async with await in_flight as answered:
            assert answered.status == 200, await answered.text()  # finished, not cut off
        assert await asyncio.to_thread(a.process.wait, 60) == 0
        await b.start()
        status = await job_when(http, b.url, token, job, lambda s: s["status"] not in ("queued", "in_progress"), 120)
        assert (status["status"], status["entries_created"]) == ("complete", 12_000), status
        async with http.get(f"{b.url}/v1/me/slots", headers=token) as response:
            assert len(await response.json()) == 15_000
