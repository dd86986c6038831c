"""Almanac past one process, on 127.0.0.1: SQLite and PostgreSQL, 1 and N worker processes, and
two nodes on one PostgreSQL. For each: CalDAV PUT throughput (1,000 new events at concurrency 8,
spread over the nodes), a Thunderbird-like mixed load (the CalDAV benchmark's, with more clients)
with its p99 latency, and a 10,000-event import through ``/v1/imports``; and the CPU time per
request: the servers' (every process of every node) plus PostgreSQL's (its processes on this
machine), so that SQLite's in-process work and PostgreSQL's are counted alike. The load
generator's own CPU is reported beside it: on a small machine it takes a core of its own.

    .venv/bin/python bench/scale_bench.py [--postgres postgresql://127.0.0.1:5432/test] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.caldav_bench import END, MULTIGET, SYNC, XML, events  # noqa: E402
from bench.generate import ics  # noqa: E402
from bench.import_bench import free_port, postgres_store, wait_until_up  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
CALENDAR = "/dav/calendars/bench/calendar/"


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of these processes and all their descendants (living ones)."""
    total, seen, todo = 0.0, set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass
class Topology:
    name: str
    store: str  # sqlite or postgres
    workers: int
    nodes: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def cpu(self) -> float:
        servers = cpu_seconds([p.pid for p in self.processes])
        return servers + (cpu_seconds(postgres_pids()) if self.store == "postgres" else 0.0)


def start(topology: Topology, url: str, folder: Path) -> None:
    for number in range(topology.nodes):
        port = free_port()
        command = [sys.executable, "run.py", "serve", "--port", str(port), "--data", str(folder / f"node{number}"),
                   "--store", url, "--workers", str(topology.workers)]  # fmt: skip
        env = {"ALMANAC_SERVER_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}
        topology.processes.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        topology.urls.append(f"http://127.0.0.1:{port}")
    for base in topology.urls:
        wait_until_up(base)
    time.sleep(8)  # each worker builds the VTIMEZONE bundle in a helper at start: let it finish


def stop(topology: Topology) -> None:
    for process in topology.processes:
        process.terminate()
    for process in topology.processes:
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()


async def put_rate(session: aiohttp.ClientSession, urls: list[str]) -> tuple[float, int]:
    items = events(1000, f"put-{uuid.uuid4().hex[:6]}")
    queue = list(enumerate(items))

    async def worker() -> None:
        while queue:
            number, (uid, text) = queue.pop()
            url = f"{urls[number % len(urls)]}{CALENDAR}{uid}.ics"
            async with session.put(url, data=text, headers={"If-None-Match": "*"}) as reply:
                assert reply.status == 201, reply.status

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return len(items) / (time.perf_counter() - started), len(items)


async def mixed(
    session: aiohttp.ClientSession, urls: list[str], seconds: float, clients: int
) -> tuple[float, float, int, int]:
    """req/s, p99 ms, requests, errors: each client syncs, PUTs, multigets (and every fifth round
    edits and deletes), through the node its number picks."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def call(method: str, url: str, body: str, headers: dict[str, str]) -> str:
        started = time.perf_counter()
        async with session.request(method, url, data=body.encode(), headers=headers) as reply:
            text = await reply.text()
            assert reply.status in (200, 201, 204, 207), (method, reply.status)
        latencies.append((time.perf_counter() - started) * 1000)
        return text

    async def client(number: int) -> None:
        nonlocal errors
        base = urls[number % len(urls)] + CALENDAR
        token, round_ = "", 0
        while time.monotonic() < deadline:
            round_ += 1
            uid, text = events(1, f"mixed-{number}-{round_}-{uuid.uuid4().hex[:6]}")[0]
            try:
                synced = await call("REPORT", base, SYNC.format(token=token), {**XML, "Depth": "1"})
                token = synced.split("sync-token>")[1].split("<")[0]
                await call("PUT", f"{base}{uid}.ics", text, {"If-None-Match": "*"})
                multiget = MULTIGET.format(hrefs=f"<D:href>{CALENDAR}{uid}.ics</D:href>")
                got = await call("REPORT", base, multiget, {**XML, "Depth": "1"})
                etag = got.split("getetag>")[1].split("<")[0]
                if round_ % 5 == 0:
                    edited = text.replace("SUMMARY:", "SUMMARY:Edited ")
                    await call("PUT", f"{base}{uid}.ics", edited, {"If-Match": etag})
                    await call("DELETE", f"{base}{uid}.ics", "", {})
            except (AssertionError, IndexError, aiohttp.ClientError):
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.monotonic() - started
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 100 else float("nan")
    return len(latencies) / elapsed, p99, len(latencies), errors


async def import_rate(base: str, token: str, count: int) -> float:
    form = aiohttp.FormData()
    form.add_field("file", ics(count, prefix=f"imp-{uuid.uuid4().hex[:6]}"), filename="bench.ics")
    started = time.perf_counter()
    headers = {"Authorization": f"Token token={token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base}/v1/imports", data=form) as reply:
            job = await reply.json()
        while job["status"] in ("queued", "in_progress"):
            await asyncio.sleep(0.1)
            async with session.get(f"{base}/v1/imports/{job['id']}") as reply:
                job = await reply.json()
    assert job["status"] == "complete", job
    return count / (time.perf_counter() - started)


async def measure(topology: Topology, seconds: float, clients: int) -> dict[str, float]:
    headers = {"Authorization": "Basic " + base64.b64encode(b"bench:benchmark-password").decode()}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as session:
        body = {"username": "bench", "password": "benchmark-password", "email": "bench@example.org"}
        async with session.post(f"{topology.urls[0]}/v1/users", json=body) as reply:
            token = (await reply.json())["authToken"]
        head = events(1, "x")[0][1].partition("BEGIN:VEVENT")[0]
        fill = events(1000, "fill")
        form = aiohttp.FormData()
        blocks = "".join(text[len(head) : -len(END)] for _, text in fill)
        form.add_field("file", head + blocks + END, filename="fill.ics", content_type="text/calendar")
        async with session.post(f"{topology.urls[0]}/import.wcap?calid=bench&httpauth=1", data=form) as reply:
            assert reply.headers["X-NSCP-WCAP-ERRNO"] == "0"
        result: dict[str, float] = {}
        own, cpu = resource.getrusage(resource.RUSAGE_SELF), topology.cpu()
        result["put/s"], puts = await put_rate(session, topology.urls)
        result["put cpu ms"] = (topology.cpu() - cpu) * 1000 / puts
        own, cpu = resource.getrusage(resource.RUSAGE_SELF), topology.cpu()
        result["mixed req/s"], result["p99 ms"], requests, result["errors"] = await mixed(
            session, topology.urls, seconds, clients
        )
        after = resource.getrusage(resource.RUSAGE_SELF)
        result["mixed cpu ms"] = (topology.cpu() - cpu) * 1000 / requests
        result["loader cpu ms"] = (after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime) * 1000 / requests
        result["import ev/s"] = await import_rate(topology.urls[-1], token, 10_000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    topologies = [
        Topology("SQLite, 1 process", "sqlite", 1, 1),
        Topology(f"SQLite, {args.workers} workers", "sqlite", args.workers, 1),
        Topology("PostgreSQL, 1 process", "postgres", 1, 1),
        Topology(f"PostgreSQL, {args.workers} workers", "postgres", args.workers, 1),
        Topology("PostgreSQL, 2 nodes", "postgres", 1, 2),
    ]
    columns = ["put/s", "put cpu ms", "mixed req/s", "p99 ms", "mixed cpu ms", "loader cpu ms", "errors", "import ev/s"]
    print(f"{os.cpu_count()} CPUs; {args.clients} mixed clients for {args.seconds:.0f} s\n")
    print("| topology | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for topology in topologies:
        postgres = None if topology.store == "sqlite" else args.postgres
        with tempfile.TemporaryDirectory() as folder, postgres_store(postgres) as store:
            try:
                start(topology, store or f"sqlite:///{folder}/almanac.sqlite3", Path(folder))
                result = asyncio.run(measure(topology, args.seconds, args.clients))
            finally:
                stop(topology)
        cells = [f"{result[c]:,.0f}" if result[c] >= 100 else f"{result[c]:.2f}" for c in columns]
        print(f"| {topology.name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
