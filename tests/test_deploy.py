"""docs/deploy.md as an operator follows it: its nginx snippet, run as written (ports and
certificate paths aside) in front of two nodes on one store, serves every door as one server
and routes around a node that died; behind a trusted proxy, sign-in throttling counts the
client's address, not the proxy's."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import Config
from tests.helpers import ROOT, Server, basic, free_port, sign_up

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def snippet() -> str:
    """The nginx configuration docs/deploy.md shows."""
    found = re.search(r"```nginx\n(.*?)```", (ROOT / "docs" / "deploy.md").read_text(), re.S)
    assert found, "docs/deploy.md shows no nginx snippet"
    return found.group(1)


@contextlib.contextmanager
def nginx(folder: Path, upstreams: list[int]) -> Iterator[int]:
    """nginx with the snippet, its upstreams and TLS certificate replaced by this test's; its
    HTTPS port. Stopped by its PID."""
    folder.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    site = snippet()
    for documented, actual in zip(("127.0.0.1:8081", "127.0.0.1:8082"), upstreams, strict=True):
        site = site.replace(documented, f"127.0.0.1:{actual}")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    site = site.replace("/etc/ssl/almanac/fullchain.pem", str(folder / "cert.pem"))
    site = site.replace("/etc/ssl/almanac/privkey.pem", str(folder / "key.pem"))
    user = "user root;" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"{user}\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        f"events {{}}\nhttp {{\naccess_log off;\nclient_body_temp_path {folder}/body;\n"
        f"proxy_temp_path {folder}/proxy;\n{site}\n}}\n"
    )
    process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"])
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (folder / "error.log").read_text()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            assert time.monotonic() < deadline, "nginx did not listen"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


async def test_the_documented_nginx_serves_two_nodes_as_one(node: Callable[..., Server], tmp_path: Path) -> None:
    a, b = node("a", server_trusted_proxies="127.0.0.1"), node("b", server_trusted_proxies="127.0.0.1")
    await asyncio.gather(a.start(), b.start())
    with nginx(tmp_path / "nginx", [a.port, b.port]) as port:
        url = f"https://127.0.0.1:{port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, force_close=True)) as http:
            token, _ = await sign_up(http, url)
            async with http.get(f"{url}/.well-known/caldav", allow_redirects=False) as reply:
                assert reply.status == 301 and reply.headers["Location"].endswith("/dav/")
            for number in range(6):  # spread over both nodes
                event = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:p{number}\r\n"
                event += "DTSTAMP:20250101T000000Z\r\nDTSTART:20250110T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
                headers = basic("alice")
                async with http.put(f"{url}/dav/calendars/alice/calendar/p{number}.ics", data=event, headers=headers):
                    pass
            a.kill()  # a node dies: the proxy sends everything to the other
            for _ in range(4):
                async with http.get(f"{url}/v1/me/slots", headers=token) as reply:
                    assert reply.status == 200
                    assert sorted(slot["uid"] for slot in await reply.json()) == [f"p{n}" for n in range(6)]
            params = {"user": "alice", "password": "correct horse"}
            async with http.get(f"{url}/wcap/login.wcap", params=params) as reply:
                assert "X-NSCP-WCAP-ERRNO:0" in await reply.text()
            async with http.post(f"{url}/app/signin", data=params | {"username": "alice"}, allow_redirects=False) as r:
                assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]  # X-Forwarded-Proto: https


async def test_behind_a_trusted_proxy_throttling_counts_the_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config
) -> None:
    for trusted, other_client_slowed in ((frozenset({"127.0.0.1"}), False), (frozenset(), True)):
        client = await aiohttp_client(create_app(dataclasses.replace(config, trusted_proxies=trusted)))
        if trusted:  # the first round makes the account; the second uses the same store
            body = {"username": "alice", "password": "correct horse", "email": "alice@example.org"}
            assert (await client.post("/v1/users", json=body)).status == 201
        guesser = {"X-Forwarded-For": "198.51.100.1"}
        for _ in range(10):
            wrong = await client.post("/v1/users/signin", json={"login": "alice", "password": "guess"}, headers=guesser)
            assert wrong.status == 401
        started = time.monotonic()
        owner = {"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}
        right = {"login": "alice", "password": "correct horse"}
        assert (await client.post("/v1/users/signin", json=right, headers=owner)).status == 200
        assert (time.monotonic() - started >= 0.9) == other_client_slowed, trusted
        await client.close()
