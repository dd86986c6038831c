"""The server as its operator runs it (``run.py serve``, a real process on 127.0.0.1): killed in
the middle of an import with a conflicting write, it starts again and rolls the import back;
idle and slow clients are dropped and never keep anyone else waiting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.helpers import EVENT, Server, basic, sign_up

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
        await second.start()  # raised storage.model.Conflict before, and never listened
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

        trickling = asyncio.create_task(trickle())
        slowest = 0.0
        for _ in range(30):
            started = time.perf_counter()
            async with http.get(f"{live.url}/v1/me", headers=token) as response:
                assert response.status == 200
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.05)
        assert slowest < 0.2, f"a request among 50 slow clients took {slowest:.3f} s"
        replies = await asyncio.gather(*(closed_within(reader, 8) for reader, _ in connections))
        trickling.cancel()
        for _, writer in connections:
            writer.close()
        assert all(reply.startswith(b"HTTP/1.1 408") for reply in replies[2::3])  # the stalled bodies
        assert all(reply == b"" for reply in replies[0::3])  # idle: closed without a word
