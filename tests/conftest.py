"""Shared fixtures: a server on a fresh store per test, users with tokens, sample files."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import services as services_module
from server.app import create_app
from server.config import Config, load
from server.services.auth import Passwords
from tests.test_cli import ROOT, free_port, run

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2/bcrypt hashing, at the lowest cost: tests make many users."""
    monkeypatch.setattr(
        services_module,
        "Passwords",
        functools.partial(Passwords, argon2__rounds=1, argon2__memory_cost=256, bcrypt__rounds=4),
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(None, {("server", "data"): str(tmp_path / "data")}, environ={})


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config) -> TestClient:
    return await aiohttp_client(create_app(config))


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def seed_body() -> dict[str, Any]:
    """Seed 000's JSON body: the file as an array of lines."""
    return json.loads((DATA / "seed000_body.json").read_text())


class Account:
    """A signed-up user and the headers that authenticate them."""

    def __init__(self, client: TestClient, data: dict[str, Any]) -> None:
        self.client = client
        self.data = data
        self.token = data["authToken"]
        self.headers = {"Authorization": f"Token token={self.token}"}

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, headers=self.headers, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.post(path, headers=headers, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Any:
        return await self.client.patch(path, headers=self.headers, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.client.delete(path, headers=self.headers, **kwargs)

    async def export(self, kind: str, **params: str) -> str:
        response = await self.post(f"/v1/export/{kind}", json=params)
        assert response.status == 200, await response.text()
        return await response.text()

    async def create_group(self, name: str, **fields: Any) -> dict[str, Any]:
        response = await self.post("/v1/groups", json={"name": name, **fields})
        assert response.status == 201, await response.text()
        return await response.json()


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


async def while_probing(account: Account, work: Awaitable[Any], every: float = 0.02) -> tuple[Any, float]:
    """Run ``work`` while another client's request (GET /v1/me) is sent every ``every`` seconds,
    as a user beside an attacker would; the result and the slowest probe in seconds."""
    task = asyncio.ensure_future(work)
    slowest = 0.0
    while True:
        started = time.perf_counter()
        response = await account.get("/v1/me")
        assert response.status == 200, await response.text()
        slowest = max(slowest, time.perf_counter() - started)
        if task.done():
            return await task, slowest
        await asyncio.sleep(every)


#: the user of ``live_server``, made with the command line
LIVE_USER, LIVE_PASSWORD = "ada", "interop-secret-1"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server started as the README starts it (its own process and data folder) with one
    user; its URL. Stopped by PID at the end of the module."""
    data = str(tmp_path_factory.mktemp("live") / "data")
    added = run("user", "add", LIVE_USER, "--password-stdin", "--data", data, stdin=f"{LIVE_PASSWORD}\n")
    assert added.returncode == 0, added.stderr
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "run.py", "serve", "--port", str(port), "--data", data],
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
