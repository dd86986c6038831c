"""What operators and load balancers ask of a node: is the process up, can it serve."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import Config, load
from server.http import SERVICES
from tests.helpers import CAL, EVENT, POSTGRES, Account, CommitCutter, basic, postgres_schema


async def test_healthz_says_the_process_is_up(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and await response.text() == "ok\n"


async def test_readyz_says_whether_the_store_can_serve(client: TestClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status == 200 and await ready.text() == "ready\n"
    # a schema older than this server's (another node has not migrated it yet): not ready
    store = client.app[SERVICES].store
    async with store.db.transaction() as tx:
        await tx.run("DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)")
    behind = await client.get("/readyz")
    assert behind.status == 503 and behind.headers["Retry-After"].isdigit()
    assert (await behind.text()).startswith("migrations pending")
    assert (await client.get("/healthz")).status == 200  # the process itself is fine
    await store.close()
    closed = await client.get("/readyz")
    assert closed.status == 503 and "not open" in await closed.text()


@contextlib.asynccontextmanager
async def store_locked(backend: str, config: Config) -> AsyncIterator[None]:
    """Another process holding the store's write lock (SQLite) or every calendar's row
    (PostgreSQL) until the block ends."""
    if backend == "sqlite":
        other = sqlite3.connect(config.store_url.removeprefix("sqlite:///"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    other = await asyncpg.connect(config.store_url)
    try:
        async with other.transaction():
            await other.execute("SELECT id FROM calendars FOR UPDATE")
            yield
    finally:
        await other.close()


async def test_a_write_that_waits_too_long_is_503_and_writes_nothing(
    aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config, backend: str
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(config, statement_timeout=1)))
    body = {"username": "alice", "password": "correct horse", "email": "alice@example.org"}
    assert (await client.post("/v1/users", json=body)).status == 201
    event = EVENT.format(uid="late", summary="late")
    async with store_locked(backend, config):
        put = await client.put(f"{CAL}late.ics", data=event, headers=basic("alice"))
        assert put.status == 503 and put.headers["Retry-After"].isdigit()
        assert (await client.get(f"{CAL}late.ics", headers=basic("alice"))).status == 404  # reads go on
    assert (await client.get(f"{CAL}late.ics", headers=basic("alice"))).status == 404  # nothing was written
    assert (await client.put(f"{CAL}late.ics", data=event, headers=basic("alice"))).status == 201


async def test_a_read_survives_a_lost_database_connection(alice: Account, backend: str, config: Config) -> None:
    """PostgreSQL closes the server's connections (a restart, a failover): reads are sent again
    on a fresh connection. SQLite has no connection to lose: the same request just works."""
    if backend == "postgres":
        admin = await asyncpg.connect(config.store_url)
        try:
            killed = await admin.fetchval(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND application_name = current_setting('application_name')"  # this test's: not a run beside it
            )
            assert killed >= 1  # the server's pool
        finally:
            await admin.close()
    response = await alice.get("/v1/me")
    assert response.status == 200


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, whichever store the rest of the suite runs on."""
    url, drop = postgres_schema()
    yield url
    drop()


async def test_an_answer_never_lies_about_a_write(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, postgres_url: str
) -> None:
    """Issue 26.6, on PostgreSQL (the store a connection can be lost to): the connection is cut
    in a PUT's COMMIT. Committed, the PUT is a success (and a retry with If-None-Match: * is
    412, as the resource exists); not committed, it is 503 and nothing was written (and the
    retry is 201)."""
    target = urlsplit(POSTGRES)
    cutter = CommitCutter(target.hostname or "127.0.0.1", target.port or 5432)
    port = await cutter.start()
    try:
        user = target.netloc.rsplit("@", 1)[0] + "@" if "@" in target.netloc else ""
        proxied = postgres_url.replace(target.netloc, f"{user}127.0.0.1:{port}", 1)
        config = load(None, {("server", "data"): str(tmp_path / "data"), ("store", "url"): proxied}, environ={})
        client = await aiohttp_client(create_app(config))
        body = {"username": "alice", "password": "correct horse", "email": "alice@example.org"}
        assert (await client.post("/v1/users", json=body)).status == 201
        for when, answer, retried in (("after", 201, 412), ("before", 503, 201)):
            cutter.arm(when)
            event = EVENT.format(uid=when, summary=when)
            put = await client.put(f"{CAL}{when}.ics", data=event, headers=basic("alice"))
            assert cutter.cuts and put.status == answer, (when, await put.text())
            got = await client.get(f"{CAL}{when}.ics", headers=basic("alice"))
            assert got.status == (200 if answer == 201 else 404), when
            again = await client.put(f"{CAL}{when}.ics", data=event, headers={**basic("alice"), "If-None-Match": "*"})
            assert again.status == retried, when
            cutter.cuts = 0
    finally:
        await cutter.stop()


async def test_readyz_is_ready_only_on_exactly_this_servers_schema(client: TestClient) -> None:
    """Issue 26.7: another node, upgraded, migrated the store past this one's schema: this node
    is not ready (and says to upgrade it), though its process is up."""
    store = client.app[SERVICES].store
    async with store.db.transaction() as tx:
        await tx.run("INSERT INTO schema_migrations VALUES (999, '2030-01-01T00:00:00.000Z')")
    ahead = await client.get("/readyz")
    assert ahead.status == 503 and ahead.headers["Retry-After"].isdigit()
    node = store.db.latest_version()
    said = f"the store's schema is newer than this server: upgrade this node (schema 999, node {node})\n"
    assert await ahead.text() == said
    assert (await client.get("/healthz")).status == 200
