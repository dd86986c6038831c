"""Import benchmark: POST /v1/import/ with generated 10,000- and 100,000-event .ics files.

Reports events/s, the ratio to the time ``icalendar`` alone takes to parse the same file, and
the server's peak RSS; then restarts the server on the filled store and imports another
10,000 events, to show that memory does not grow with the size of the store.

    .venv/bin/python bench/import_bench.py [--sizes 10000 100000] [--store postgresql://...] [--workers 2]

Run by hand (not in CI); it starts its own server on 127.0.0.1 with a temporary data folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from icalendar import Calendar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(base: str, within: float = 60) -> None:
    """Wait until the server at ``base`` answers (it is ready), at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server at {base} did not start") from None
            time.sleep(0.2)


async def fresh_schema(server: str) -> tuple[str, str]:
    """A new schema on the PostgreSQL ``server`` (a database URL): its name and a store URL in it."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f"CREATE SCHEMA {name}")
    finally:
        await connection.close()
    return name, f"{server}{'&' if '?' in server else '?'}search_path={name},public"


async def drop_schema(server: str, name: str) -> None:
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await connection.close()


@contextlib.contextmanager
def postgres_store(server: str | None) -> Iterator[str | None]:
    """A store URL in a schema of its own on the PostgreSQL ``server``, dropped after the run;
    None (SQLite) when no server is given."""
    if server is None:
        yield None
        return
    name, url = asyncio.run(fresh_schema(server))
    try:
        yield url
    finally:
        asyncio.run(drop_schema(server, name))


class Server:
    """``run.py serve`` in a subprocess (SQLite under ``data`` unless a ``store`` URL is given)."""

    def __init__(
        self, data: Path, store: str | None = None, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
        self.port, self.workers = free_port(), workers
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "run.py",
                "serve",
                "--port",
                str(self.port),
                "--data",
                str(data),
                "--workers",
                str(workers),
            ]
            + (["--store", store] if store else []),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"ALMANAC_SERVER_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin", **(env or {})},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        self.settle()

    def children(self) -> list[int]:
        """The server's processes below it (workers, and their helpers), at every depth."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            children = Path(f"/proc/{pid}/task/{pid}/children")
            below = [int(child) for child in children.read_text().split()] if children.exists() else []
            found += below
            todo += below
        return found

    def settle(self) -> None:
        """Wait for the helper process each worker starts to build the VTIMEZONE bundle to finish
        (the ones that read big imports stay), so that it does not share the CPU with what is
        measured: one per worker seen, and none left."""
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            helpers = set()
            for pid in self.children():
                with contextlib.suppress(OSError):
                    if b"build_all_timezones" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        helpers.add(pid)
            seen |= helpers
            if len(seen) >= self.workers and not helpers:
                return
            time.sleep(0.2)

    def peak_rss_mib(self) -> tuple[float, float]:
        """The server's peak RSS, and its helper processes' together."""
        peaks = []
        for pid in [self.process.pid, *self.children()]:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return peaks[0], sum(peaks[1:])

    def request(self, path: str, body: bytes, headers: dict[str, str]) -> dict:
        request = urllib.request.Request(self.base + path, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=3600) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def token(server: Server, login: bool) -> str:
    body = {"username": "bench", "password": "benchmark-password", "email": "bench@example.org"}
    path = "/v1/users/signin" if login else "/v1/users"
    reply = server.request(path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return reply["authToken"]


def upload(server: Server, auth: str, data: bytes) -> tuple[float, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.ics"\r\n'
            f"Content-Type: text/calendar\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        "Authorization": f"Token token={auth}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Accept": "application/json",
    }
    started = time.perf_counter()
    reply = server.request("/v1/import/", body, headers)
    return time.perf_counter() - started, reply


def bare_parse(data: bytes) -> float:
    started = time.perf_counter()
    Calendar.from_ical(data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--store", help="a PostgreSQL database URL (a schema of its own, dropped after)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder, postgres_store(args.store) as store:
        data_dir = Path(folder) / "data"
        server = Server(data_dir, store, args.workers)
        auth = token(server, login=False)
        total = 0
        for size in args.sizes:
            data = ics(size, seed=size, prefix=f"run{size}")
            parse = bare_parse(data)
            elapsed, reply = upload(server, auth, data)
            assert reply["created"] == size, reply
            total += size
            rows.append(
                (f"{size:,} events into a store of {total - size:,}", len(data), elapsed, parse, server.peak_rss_mib())
            )
        server.stop()
        # A fresh process on the filled store: the same import must not need more memory.
        server = Server(data_dir, store, args.workers)
        auth = token(server, login=True)
        size = args.sizes[0]
        data = ics(size, seed=7, prefix="again")
        parse = bare_parse(data)
        elapsed, reply = upload(server, auth, data)
        assert reply["created"] == size, reply
        rows.append(
            (f"{size:,} events into a store of {total:,} (restarted)", len(data), elapsed, parse, server.peak_rss_mib())
        )
        server.stop()
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}; "
          f"{'PostgreSQL' if args.store else 'SQLite'}, {args.workers} worker(s)")  # fmt: skip
    print("| import | file | wall time | events/s | icalendar parse alone | ratio | server peak RSS (+ helper) |")
    print("|---|---|---|---|---|---|---|")
    for label, size_bytes, elapsed, parse, (rss, helper) in rows:
        count = int(label.split()[0].replace(",", ""))
        print(
            f"| {label} | {size_bytes / 1e6:.1f} MB | {elapsed:.2f} s | {count / elapsed:,.0f} | {parse:.2f} s "
            f"| {elapsed / parse:.2f}x | {rss:.0f} (+ {helper:.0f}) MiB |"
        )


if __name__ == "__main__":
    main()
