"""What operators and load balancers ask of a node: is the process up, can it serve."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from server.http import SERVICES


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
