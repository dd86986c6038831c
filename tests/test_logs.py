"""Logs an operator can follow (issue 30): each request's line has the client's address (from
X-Forwarded-For only behind a trusted proxy), the user, the request id the reply carries, the
user agent and the time; secrets never appear (feed tokens, passwords and WCAP session ids in
query strings); one JSON object per line on request; imports say when they end."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.cli import JsonLines
from server.config import Config
from server.http import new_request_id


def access_lines(caplog: Any) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "almanac.access"]


async def test_a_request_line_says_who_what_and_which(aiohttp_server: Any, config: Config, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    server: TestServer = await aiohttp_server(create_app(config))
    secret = "s3cret-Passw0rd"
    async with aiohttp.ClientSession() as http:
        headers = {"User-Agent": "Thunderbird/128.0", "X-Forwarded-For": "203.0.113.9"}
        made = await http.post(
            server.make_url("/v1/users"), json={"username": "ada", "password": secret}, headers=headers
        )
        request_id = made.headers["X-Request-Id"]
        login = await http.get(server.make_url("/login.wcap"), params={"user": "ada", "password": secret})
        session = (await login.text()).split("SESSION-ID:")[1].split()[0]
        await http.get(server.make_url("/fetchcomponents_by_range.wcap"), params={"id": session})
        await http.get(server.make_url("/feeds/abcdefghijklmnopqrstuvwx.ics"))
    lines = access_lines(caplog)
    (signup,) = [r for r in lines if r.fields["request_id"] == request_id]  # type: ignore[attr-defined]
    text = signup.getMessage()
    assert text.startswith("POST /v1/users 201 ") and "user=ada" in text and f"id={request_id}" in text
    assert "client=127.0.0.1" in text and "203.0.113.9" not in text  # not a trusted proxy
    assert "agent='Thunderbird/128.0'" in text
    # Almanac's own log (aiohttp's access log, with whole query strings, is off under run.py serve)
    everything = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("almanac"))
    assert secret not in everything and session not in everything and "abcdefghijklmnopqrstuvwx" not in everything
    assert "/feeds/<secret>.ics" in everything


async def test_behind_a_trusted_proxy_the_forwarded_client(aiohttp_server: Any, config: Config, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    server = await aiohttp_server(create_app(replace(config, trusted_proxies=frozenset({"127.0.0.1"}))))
    async with aiohttp.ClientSession() as http:
        await http.get(server.make_url("/healthz"), headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.1"})
    (line,) = [r for r in access_lines(caplog) if "/healthz" in r.getMessage()]
    assert "client=198.51.100.7" in line.getMessage()


def test_one_json_object_per_line() -> None:
    fields = {"method": "GET", "path": "/dav/", "status": 207, "ms": 3.2, "user": "ada", "client": "10.0.0.1",
              "request_id": "abc", "agent": "DAVx5"}  # fmt: skip
    record = logging.LogRecord("almanac.access", logging.INFO, __file__, 1, "%(method)s %(path)s", (fields,), None)
    record.fields = fields
    line = json.loads(JsonLines().format(record))
    assert line["message"] == "GET /dav/" and line["level"] == "INFO" and line["logger"] == "almanac.access"
    assert {k: line[k] for k in fields} == fields and line["time"].endswith("+00:00")


async def test_an_import_says_how_it_ended(aiohttp_server: Any, config: Config, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    server = await aiohttp_server(create_app(config))
    async with aiohttp.ClientSession() as http:
        made = await http.post(server.make_url("/v1/users"), json={"username": "ada", "password": "correct horse"})
        token = {"Authorization": f"Token token={(await made.json())['authToken']}"}
        calendar = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"  # noqa: E501
        await http.post(server.make_url("/v1/import/"), json={"file": calendar}, headers=token)
        await http.post(
            server.make_url("/v1/import/"),
            json={"file": "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:never\r\n"},
            headers=token,
        )
    ended = [r.getMessage() for r in caplog.records if r.name == "almanac.imports"]
    assert any(m.startswith("import 1 by ada complete in ") and "1 created" in m for m in ended), ended
    assert any(m.startswith("import 2 by ada failed after ") for m in ended), ended


def test_request_ids_differ_between_requests_and_workers() -> None:
    """Two requests never share an id, nor do a worker forked from this process and this one
    (each process draws its own prefix)."""
    first, second = new_request_id(), new_request_id()
    assert first != second and re.fullmatch("[0-9a-f]{32}", first) and first[:16] == second[:16]
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the worker: its first id, then gone
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert re.fullmatch("[0-9a-f]{32}", theirs) and theirs[:16] != first[:16]
