"""Prometheus metrics (issue 30): ``run.py serve --workers 2`` with ``[metrics] listen`` answers
GET /metrics on its own port (never on the public one), in Prometheus' text format as the client
library's own parser reads it, with counts that match the requests sent across both workers, the
workers alive, sign-in failures, imports and the store's timings."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.generate import ics
from server.metrics import FOLDER, Metrics
from tests.helpers import Server, free_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all((k, w) in ls for k, w in labels.items()))


async def test_one_scrape_sees_every_worker(node: Callable[..., Server]) -> None:
    port = free_port()
    server = node(server_workers="2", metrics_listen=f"127.0.0.1:{port}")
    await server.start()
    scrape_url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as http:
        for _ in range(50):  # both workers up
            found = samples(await (await http.get(scrape_url)).text())
            if total(found, "almanac_workers") == 2:
                break
            await asyncio.sleep(0.2)
        assert total(found, "almanac_workers") == 2
        before = total(found, "almanac_requests_total", door="rest", method="POST", status="201")
        for n in range(30):  # new connections: the kernel spreads them over both workers
            async with aiohttp.ClientSession() as one:
                made = await one.post(
                    f"{server.url}/v1/users", json={"username": f"user{n}", "password": "correct horse"}
                )
                assert made.status == 201
        token = (await made.json())["authToken"]
        imported = await http.post(f"{server.url}/v1/import/", json={"file": ics(5, prefix="m").decode()},
                                   headers={"Authorization": f"Token token={token}"})  # fmt: skip
        assert imported.status == 200, await imported.text()
        wrong = "Basic " + base64.b64encode(b"user1:wrong horse").decode()
        for _ in range(3):
            async with aiohttp.ClientSession() as one:
                refused = await one.request("PROPFIND", f"{server.url}/dav/", headers={"Authorization": wrong})
                assert refused.status == 401
        assert (await http.get(f"{server.url}/metrics")).status == 404  # not on the public port
        scraped = await http.get(scrape_url)
        assert scraped.headers["Content-Type"].startswith("text/plain")
        found = samples(await scraped.text())
    assert total(found, "almanac_requests_total", door="rest", method="POST", status="201") - before == 30
    assert total(found, "almanac_request_seconds_count", door="rest") >= 30
    assert total(found, "almanac_request_seconds_count", door="caldav") >= 3
    assert total(found, "almanac_signin_failures_total") >= 3
    assert total(found, "almanac_store_seconds_count", kind="write") >= 30  # each sign-up wrote
    assert total(found, "almanac_store_seconds_count", kind="read") > 0
    assert (
        total(found, "almanac_imports_total", event="started")
        == total(found, "almanac_imports_total", event="complete")
        == 1
    )
    assert total(found, "almanac_imported_objects_total") == 5 and total(found, "almanac_imports_running") == 0
    pids = {dict(ls).get("pid") for (n, ls), _ in found.items() if n == "almanac_workers"}
    assert len(pids - {None}) <= 2  # one series per live worker (or their sum)


def test_an_invented_method_is_counted_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client may send any token as a method: those Almanac does not know are counted under
    one label, so that no client makes labels (and the files that hold them) without end."""
    monkeypatch.delenv(FOLDER, raising=False)  # this process's own values only
    counted = Metrics()
    for method in ("GET", "FROB", "X-RANDOM-1", "X-RANDOM-2"):
        counted.answered("caldav", method, 405, 0.001)
    found = samples(counted.scrape().decode())
    methods = {dict(labels)["method"] for name, labels in found if name == "almanac_requests_total"}
    assert methods == {"GET", "other"}
    assert total(found, "almanac_requests_total", method="other") == 3
