"""The server as its operator runs it (``run.py serve``, a real process on 127.0.0.1): killed in
the middle of an import with a conflicting write, it starts again and rolls the import back;
idle and slow clients are dropped and never keep anyone else waiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from server.lineage import children
from server.workers import DRAIN
from tests.helpers import EVENT, Server, basic, probe_limit, sign_up

ALICE = basic("alice")  # the Authorization header
CAL = "/dav/calendars/alice/calendar/"


def big_calendar(events: int) -> bytes:
    """UID big-0 first (it replaces pre-0.ics in the first batch), then ``events`` more."""
    body = [EVENT.format(uid="big-0", summary="imported").split("BEGIN:VEVENT", 1)[1].rsplit("END:VCALENDAR", 1)[0]]
    for number in range(1, events + 1):
        body.append(
            f"\r\nUID:big-{number}\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250110T100000Z\r\n"
            f"DTEND:20250110T110000Z\r\nSUMMARY:event {number}\r\nEND:VEVENT\r\n"
        )
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + "BEGIN:VEVENT".join(["", *body])
            + "END:VCALENDAR\r\n").encode()  # fmt: skip


async def test_a_crash_during_an_import_with_a_conflicting_write_restarts_and_rolls_back(
    node: Callable[..., Server],
) -> None:
    first = node()
    await first.start()
    async with aiohttp.ClientSession() as http:
        token, calendar = await sign_up(http, first.url)
        before = EVENT.format(uid="big-0", summary="before")
        assert (await http.put(first.url + CAL + "pre-0.ics", data=before, headers=ALICE)).status == 201
        form = aiohttp.FormData()
        form.add_field("file", big_calendar(20_000), filename="big.ics")
        form.add_field("calendar", calendar)
        async with http.post(f"{first.url}/v1/imports", data=form, headers=token) as response:
            assert response.status == 202
            job = await response.json()
        status: dict[str, Any] = {}
        for _ in range(3000):  # until the batch that replaced big-0 is written
            async with http.get(f"{first.url}/v1/imports/{job['id']}", headers=token) as response:
                status = await response.json()
            if status["entries_updated"] or (status["status"] != "queued" and status["status"] != "in_progress"):
                break
            await asyncio.sleep(0.01)
        assert status["status"] == "in_progress" and status["entries_updated"] == 1, status
        assert (await http.delete(first.url + CAL + "pre-0.ics", headers=ALICE)).status == 204
        moved = await http.put(
            first.url + CAL + "moved-0.ics", data=EVENT.format(uid="big-0", summary="moved"), headers=ALICE
        )
        assert moved.status == 201
        async with http.get(f"{first.url}/v1/imports/{job['id']}", headers=token) as response:
            assert (await response.json())["status"] == "in_progress"
        first.kill()

        second = node()
        second.port = first.port
        await second.start()  # raised storage.errors.Conflict before, and never listened
        async with http.get(f"{second.url}/v1/imports/{job['id']}", headers=token) as response:
            rolled = await response.json()
        assert rolled["status"] == "failed" and "could not be put back" in rolled["message"]
        async with http.get(f"{second.url}/v1/imports/{job['id']}/details", headers=token) as response:
            assert [w["fields"] for w in (await response.json())["warnings"]] == [["big-0", "pre-0.ics"]]
        async with http.get(f"{second.url}/v1/me/slots", headers=token) as response:
            assert [slot["uid"] for slot in await response.json()] == ["big-0"]  # the import's events are gone
        async with http.get(second.url + CAL + "moved-0.ics", headers=ALICE) as response:
            assert response.status == 200 and "SUMMARY:moved" in await response.text()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before it closed the connection (it must close it in time). A reset
    is a close too: the kernel resets a connection closed with bytes unread (the trickle's)."""
    received = b""
    async with asyncio.timeout(seconds):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(4096):
                received += chunk
    return received


async def test_idle_and_slow_clients_are_dropped_and_never_stop_others(node: Callable[..., Server]) -> None:
    live = node(server_idle_timeout="2")
    await live.start()
    async with aiohttp.ClientSession() as http:
        token, _ = await sign_up(http, live.url)
        connections = [await asyncio.open_connection("127.0.0.1", live.port) for _ in range(50)]
        for index, (_, writer) in enumerate(connections):
            if index % 3 == 1:  # slow headers
                writer.write(b"GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            elif index % 3 == 2:  # a body that stops after 10 of its 1,000 bytes
                writer.write(b"POST /v1/users/signin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"login\": ")  # fmt: skip
            await writer.drain()  # index % 3 == 0: idle, it sends nothing at all

        async def trickle() -> None:  # the slow headers keep coming, a byte at a time
            for _ in range(10):
                await asyncio.sleep(0.5)
                for index, (_, writer) in enumerate(connections):
                    if index % 3 == 1 and not writer.is_closing():
                        with contextlib.suppress(OSError):
                            writer.write(b"X")

        async def probe() -> None:
            async with http.get(f"{live.url}/v1/me", headers=token) as response:
                assert response.status == 200

        limit = await probe_limit(probe)  # measured before the slow clients trickle
        trickling = asyncio.create_task(trickle())
        slowest = 0.0
        for _ in range(30):
            started = time.perf_counter()
            async with http.get(f"{live.url}/v1/me", headers=token) as response:
                assert response.status == 200
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.05)
        assert slowest < limit, f"a request among 50 slow clients took {slowest:.3f} s (limit {limit:.3f} s)"
        replies = await asyncio.gather(*(closed_within(reader, 8) for reader, _ in connections))
        trickling.cancel()
        for _, writer in connections:
            writer.close()
        assert all(reply.startswith(b"HTTP/1.1 408") for reply in replies[2::3])  # the stalled bodies
        assert all(reply == b"" for reply in replies[0::3])  # idle: closed without a word


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_worker_killed_is_replaced_and_leaves_nothing_behind(node: Callable[..., Server]) -> None:
    """Issue 26.5: ``serve --workers 2`` under load; each worker in turn is killed with -9: a
    new one runs within 2 s and serves, nothing of the dead one is left (its helpers ended and
    reaped: its process group is empty), every write a client saw acknowledged is kept, and
    SIGTERM then drains within its stated time, leaving no process behind."""
    server = node(server_workers="2")
    await server.start()

    def workers() -> list[int]:
        return server.pids()[1:]

    async def with_helpers(within: float = 30) -> list[int]:
        """The two workers, once each has its helpers (the parse process, the resource tracker)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = workers()
            if len(found) == 2 and all(len(children(pid)) >= 2 for pid in found):
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"the workers and their helpers did not start: {workers()}")

    groups = set(await with_helpers())
    acknowledged: set[str] = set()
    loading = True
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        await sign_up(http, server.url)

        async def client(number: int) -> None:
            count = 0
            while loading:
                name = f"c{number}-{count}"
                for _ in range(50):  # a request cut off with its worker is sent again
                    with contextlib.suppress(aiohttp.ClientError):
                        body = EVENT.format(uid=name, summary=name)
                        async with http.put(f"{server.url}{CAL}{name}.ics", data=body, headers=ALICE) as reply:
                            if reply.status in (201, 204):
                                acknowledged.add(name)
                                break
                    await asyncio.sleep(0.05)
                count += 1

        clients = [asyncio.create_task(client(n)) for n in range(4)]
        await asyncio.sleep(1)
        for victim in sorted(groups):
            before = set(workers())
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            while not set(workers()) - before:
                assert time.monotonic() - killed_at < 2, "no new worker within 2 s"
                await asyncio.sleep(0.02)
            groups |= set(workers())
            deadline = time.monotonic() + 5
            while group_alive(victim):  # its helpers: ended and reaped, none left as an orphan
                assert time.monotonic() < deadline, [p for p in children(server.pids()[0]) if os.getpgid(p) == victim]
                await asyncio.sleep(0.05)
            await with_helpers()  # the new one serves (and has its helpers) before the next kill
            served = len(acknowledged)
            while len(acknowledged) < served + 8:
                await asyncio.sleep(0.05)
        loading = False
        await asyncio.gather(*clients)
        async with http.request("PROPFIND", server.url + CAL, headers={**ALICE, "Depth": "1"}) as listing:
            kept = {
                href.rsplit("/", 1)[1][:-4]
                for href in re.findall(r"<D:href>([^<]+\.ics)</D:href>", await listing.text())
            }
    assert len(acknowledged) > 20 and acknowledged <= kept
    log = server.log.read_text()
    assert log.count("was killed by signal 9: starting it again") == 2 and log.count("is serving again") == 2
    assert server.process is not None
    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.process.wait, DRAIN + 15) == 0
    assert time.monotonic() - stopped_at < DRAIN
    assert [group for group in groups if group_alive(group)] == []
