"""Many people at once (issue 31): ``--clients`` connections, each a calendar program of one of 20
users, for ``--seconds``: 80 % reads (a CalDAV GET of one of the user's events), 20 % writes (a
CalDAV PUT of a new event); the latency of each kind (p50, p99), the requests answered per
second and the errors. On SQLite or PostgreSQL, with 1 or more workers.

    .venv/bin/python bench/load_bench.py [--clients 150,200] [--seconds 30] [--workers 1]
                                         [--store postgresql://127.0.0.1:5432/test] [--wrk]

``--wrk``: the load comes from wrk (Debian's package ``wrk``, written in C) instead of this Python
process, so that the generator takes less of the two cores the server shares with it; wrk reports
one latency for every request, GETs and PUTs together.

Run by hand (not in CI); it starts its own server on 127.0.0.1 and stops it by PID (on
PostgreSQL in a schema of its own, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.caldav_bench import events  # noqa: E402
from bench.import_bench import Server, free_port, postgres_store  # noqa: E402
from bench.scale_bench import cpu_seconds, postgres_pids  # noqa: E402

USERS = 20
EVENTS = 200  # each user's to read from
PASSWORD = "benchmark-password"


def auth(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()


async def fill(base: str) -> dict[str, list[str]]:
    """The users and the events each has (their hrefs)."""
    hrefs: dict[str, list[str]] = {}
    async with aiohttp.ClientSession() as http:
        for n in range(USERS):
            user = f"user{n}"
            await http.post(f"{base}/v1/users", json={"username": user, "password": PASSWORD})
            hrefs[user] = []
            for uid, text in events(EVENTS, f"{user}-base"):
                href = f"/dav/calendars/{user}/calendar/{uid}.ics"
                async with http.put(base + href, data=text, headers={"Authorization": auth(user)}) as reply:
                    assert reply.status == 201, await reply.text()
                hrefs[user].append(href)
    return hrefs


async def load(
    base: str, hrefs: dict[str, list[str]], clients: int, seconds: float, server_cpu: Callable[[], float]
) -> dict[str, object]:
    reads: list[float] = []
    writes: list[float] = []
    errors = 0
    until = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)

    async def client(number: int, http: aiohttp.ClientSession) -> None:
        nonlocal errors
        user = f"user{number % USERS}"
        headers = {"Authorization": auth(user)}
        chooser = random.Random(number)
        while time.monotonic() < until:
            began = time.perf_counter()
            try:
                if chooser.random() < 0.2:
                    uid, text = events(1, f"{user}-{uuid.uuid4().hex[:12]}")[0]
                    href = f"/dav/calendars/{user}/calendar/{uid}.ics"
                    async with http.put(base + href, data=text, headers=headers) as reply:
                        await reply.read()
                        ok = reply.status == 201
                    (writes if ok else []).append(time.perf_counter() - began)
                else:
                    async with http.get(base + chooser.choice(hrefs[user]), headers=headers) as reply:
                        await reply.read()
                        ok = reply.status == 200
                    (reads if ok else []).append(time.perf_counter() - began)
                errors += not ok
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        started, own, served = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF), server_cpu()
        await asyncio.gather(*(client(n, http) for n in range(clients)))
        took = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        loader = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
        served = server_cpu() - served

    def quantiles(found: list[float]) -> tuple[float, float]:
        if not found:
            return 0.0, 0.0
        ordered = sorted(found)
        return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    return {"clients": clients, "req/s": (len(reads) + len(writes)) / took, "read": quantiles(reads),
            "write": quantiles(writes), "writes/s": len(writes) / took, "errors": errors,
            "server cores": served / took, "loader cores": loader / took}  # fmt: skip


WRK_SCRIPT = """
local users = USERS_TABLE
local body = BODY
local made = 0
function setup(thread)
  thread:set("tag", string.format("%s-%d", RUN, math.random(1, 1000000000)))
end
function init(args)
  math.randomseed(os.time() + #tag)
end
function request()
  local user = users[math.random(#users)]
  if math.random() < 0.2 then
    made = made + 1
    local uid = string.format("wrk-%s-%d", tag, made)
    return wrk.format("PUT", "/dav/calendars/" .. user.name .. "/calendar/" .. uid .. ".ics",
      {["Authorization"] = user.auth, ["Content-Type"] = "text/calendar"}, (body:gsub("@@UID@@", uid)))
  end
  return wrk.format("GET", user.hrefs[math.random(#user.hrefs)], {["Authorization"] = user.auth})
end
"""


def lua(value: object) -> str:
    """A Lua literal of strings, lists and string-keyed tables."""
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in value.items()) + "}"


def load_with_wrk(
    base: str, hrefs: dict[str, list[str]], clients: int, seconds: float, server_cpu: Callable[[], float], folder: Path
) -> dict[str, object]:
    """The same mix from wrk: requests per second, the latency of all (p50, p99), errors."""
    text = events(1, "wrk-template")[0][1]
    uid = re.search(r"UID:(\S+)", text).group(1)  # type: ignore[union-attr]
    users = [{"name": user, "auth": auth(user), "hrefs": found} for user, found in hrefs.items()]
    script = folder / f"load-{clients}.lua"
    filled = WRK_SCRIPT.replace("RUN", lua(uuid.uuid4().hex[:8])).replace("USERS_TABLE", lua(users))
    script.write_text(filled.replace("BODY", lua(text.replace(uid, "@@UID@@"))))
    before, served = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds:.0f}s", "--timeout", "30s", "--latency", "-s", str(script), base],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    after, served = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu() - served

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    total = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = sum(int(n) for n in sockets.groups()) if sockets else 0
    loader = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"clients": clients, "req/s": total, "latency": (ms("50%"), ms("99%")),
            "errors": (int(bad.group(1)) if bad else 0) + failed,
            "server cores": served / seconds, "loader cores": loader / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="150,200")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--store", help="postgresql://... (default: SQLite in a temporary folder)")
    parser.add_argument("--show-store", action="store_true", help="print the store's waits and writes (metrics)")
    parser.add_argument("--wrk", action="store_true", help="generate the load with wrk (one latency for all)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load first, not reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, postgres_store(args.store) as store:
        metrics_port = free_port()
        env = {"ALMANAC_AUTH_LOGIN_FAILURES": "1000000", "ALMANAC_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
        server = Server(Path(folder) / "data", store, args.workers, env)
        try:
            hrefs = asyncio.run(fill(server.base))

            def server_cpu() -> float:  # the server's processes, and PostgreSQL's
                return cpu_seconds([server.process.pid]) + (cpu_seconds(postgres_pids()) if store else 0.0)

            def run(clients: int, seconds: float) -> dict[str, object]:
                if args.wrk:
                    return load_with_wrk(server.base, hrefs, clients, seconds, server_cpu, Path(folder))
                return asyncio.run(load(server.base, hrefs, clients, seconds, server_cpu))

            counts = [int(c) for c in args.clients.split(",")]
            if args.warmup:  # each worker checks each user's password once (then remembers it for 5 minutes)
                run(counts[0], args.warmup)
            rows = [run(clients, args.seconds) for clients in counts]
            if args.show_store:  # where the writes' time went, as the server's metrics say
                scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
                print("\n".join(line for line in scraped.splitlines() if line.startswith("almanac_store_seconds_")
                                and ("_sum" in line or "_count" in line)))  # fmt: skip
        finally:
            server.stop()
    store = "PostgreSQL" if args.store else "SQLite"
    print(
        f"Python {platform.python_version()} on {platform.machine()}; {store}, {args.workers} worker(s), "
        f"{args.seconds:.0f} s each, 80 % GET / 20 % PUT, {USERS} users, load from {'wrk' if args.wrk else 'Python'}"
    )
    if args.wrk:
        print("| clients | req/s | p50 | p99 | errors | CPU cores: server (+ PostgreSQL) / load generator |")
        print("|---|---|---|---|---|---|")
    else:
        print("| clients | req/s | PUT/s | GET p50 | GET p99 | PUT p50 | PUT p99 | errors "
              "| CPU cores: server (+ PostgreSQL) / load generator |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if args.wrk:
            p50, p99 = row["latency"]  # type: ignore[misc]
            print(f"| {row['clients']} | {row['req/s']:.0f} | {p50:.0f} ms | {p99:.0f} ms | {row['errors']} "
                  f"| {row['server cores']:.2f} / {row['loader cores']:.2f} |")  # fmt: skip
            continue
        (rp50, rp99), (wp50, wp99) = row["read"], row["write"]  # type: ignore[misc]
        print(f"| {row['clients']} | {row['req/s']:.0f} | {row['writes/s']:.0f} | {rp50:.0f} ms | {rp99:.0f} ms "
              f"| {wp50:.0f} ms | {wp99:.0f} ms | {row['errors']} | {row['server cores']:.2f} / "
              f"{row['loader cores']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
