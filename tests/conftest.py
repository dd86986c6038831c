"""Shared fixtures: a server on a fresh store per test, users with tokens, a server process, a
browser. Helpers that are not fixtures are in helpers.py."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, async_playwright

from server import services as services_module
from server.app import create_app
from server.config import Config, load
from server.services.auth import Passwords
from storage import sqlite_url
from tests.helpers import (
    LIVE_OTHER,
    LIVE_PASSWORD,
    LIVE_USER,
    ROOT,
    Account,
    Server,
    free_port,
    postgres_schema,
    run,
    start_slapd,
)


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2/bcrypt hashing, at the lowest cost: tests make many users."""
    monkeypatch.setattr(
        services_module,
        "Passwords",
        functools.partial(Passwords, argon2__rounds=1, argon2__memory_cost=256, bcrypt__rounds=4),
    )


#: every test that touches a store runs once on each
STORES = ("sqlite", "postgres")


@pytest.fixture(scope="session", params=STORES)
def backend(request: pytest.FixtureRequest) -> str:
    """Which store the tests run on: one parameter for the whole suite (grouped by it)."""
    return str(request.param)


@contextlib.contextmanager
def fresh_store(backend: str, folder: Path) -> Iterator[str]:
    """The URL of an empty store of this kind: a SQLite file in ``folder`` or a new schema on
    the test PostgreSQL (dropped afterwards). No PostgreSQL is a failure, never a skip."""
    if backend == "sqlite":
        yield sqlite_url(folder / "almanac.sqlite3")
        return
    url, drop = postgres_schema()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_store(backend, tmp_path / "data") as url:
        yield url


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Config:
    return load(None, {("server", "data"): str(tmp_path / "data"), ("store", "url"): store_url}, environ={})


@pytest.fixture
async def services(config: Config) -> AsyncIterator[services_module.Services]:
    """The services over a fresh store, without a server (the rules' own tests)."""
    built = services_module.build(config)
    await built.store.open()
    yield built
    await built.store.close()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config) -> TestClient:
    return await aiohttp_client(create_app(config))


@pytest.fixture
def signup(client: TestClient) -> Callable[[str], Awaitable[Account]]:
    async def make(username: str = "alice") -> Account:
        response = await client.post(
            "/v1/users",
            json={"username": username, "password": "correct horse", "email": f"{username}@example.org"},
        )
        assert response.status == 201, await response.text()
        return Account(client, await response.json())

    return make


@pytest.fixture
async def alice(signup: Callable[[str], Awaitable[Account]]) -> Account:
    return await signup("alice")


@pytest.fixture
async def bob(signup: Callable[[str], Awaitable[Account]]) -> Account:
    return await signup("bob")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[str]:
    """A server started as the README starts it (its own process and data folder, on this
    run's store) with one user; its URL. Stopped by PID at the end of the module."""
    data = tmp_path_factory.mktemp("live") / "data"
    with fresh_store(backend, data) as url:
        yield from _serving(str(data), url)


def _serving(data: str, store: str) -> Iterator[str]:
    for name in (LIVE_USER, LIVE_OTHER):
        added = run(
            "user", "add", name, "--email", f"{name}@example.org", "--password-stdin", "--data", data,
            "--store", store, stdin=f"{LIVE_PASSWORD}\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "run.py", "serve", "--port", str(port), "--data", data, "--store", store],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
            time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def server(aiohttp_server, config: Config) -> TestServer:  # type: ignore[no-untyped-def]
    return await aiohttp_server(create_app(config))


@pytest.fixture
async def node(tmp_path: Path, store_url: str) -> AsyncIterator[Callable[..., Server]]:
    """Makes ``run.py serve`` processes on this test's store (each node with its own data
    folder when ``data`` names one); stops them all by PID at the end."""
    started: list[Server] = []

    def make(data: str = "data", **settings: str) -> Server:
        made = Server(tmp_path / data, store_url, **{"auth_password_scheme": "bcrypt", **settings})
        started.append(made)
        return made

    yield make
    for each in started:
        each.stop()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An OpenLDAP server for the directory tests: the one at ALMANAC_TEST_LDAP (its suffix and
    administrator as tests.helpers names them), or Debian's slapd started here in a temporary
    folder on a free port and stopped by its PID at the end (scripts/test.sh installs it)."""
    given = os.environ.get("ALMANAC_TEST_LDAP")
    if given:
        yield given
        return
    url, process = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
