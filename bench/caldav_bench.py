"""CalDAV benchmark: Almanac against Radicale and Xandikos, in the same run, on 127.0.0.1.

For each server and calendar size: PUT throughput at concurrency 8 (into the empty calendar,
and later 300 more into the full one), PROPFIND Depth 1 (getetag; the whole reply, and the
time to its first body bytes), a one-week calendar-query with and without expand, a
calendar-multiget of 100, sync-collection initial and incremental, GET throughput of single
events at concurrency 8, and two mixed loads of 8 clients: a listing-heavy one (50 % GET, 20 %
PROPFIND Depth 1, 20 % one-week query, 10 % PUT) and a Thunderbird-like one (each client looping
sync-collection, PUT with If-None-Match, the one-item multiget Thunderbird sends after a PUT, and
every fifth round an edit with If-Match and a DELETE). Calendars hold about 100 events a week
whatever their size, so a one-week query returns the same amount of data at every size. Before
the servers, the same client measures a bare aiohttp handler answering a constant event-sized
body: the floor a GET is compared with.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install radicale xandikos
    .venv/bin/python bench/caldav_bench.py --peers /tmp/peers [--sizes 1000 10000 100000]
                                           [--store postgresql://127.0.0.1/almanac_bench] [--workers 2]

The PUT rate is measured on the first 1,000 events of every calendar, for at most 30 s; the rest
goes in the fast way each server has: Almanac through WCAP import.wcap, Radicale by writing its
.ics files into the collection folder, Xandikos by committing them to the collection's git tree
(their own storage formats). Slow measurements stop repeating after 30 s (the median of what
was taken).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402
from bench.import_bench import Server, free_port, postgres_store  # noqa: E402

WEEK = ("20240115T000000Z", "20240122T000000Z")
XML = {"Content-Type": "text/xml; charset=utf-8"}
END = "END:VCALENDAR\r\n"
PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
QUERY = (
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
    '<C:calendar-data>{expand}</C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
    f'<C:comp-filter name="VEVENT"><C:time-range start="{WEEK[0]}" end="{WEEK[1]}"/></C:comp-filter>'
    "</C:comp-filter></C:filter></C:calendar-query>"
)
EXPAND = f'<C:expand start="{WEEK[0]}" end="{WEEK[1]}"/>'
MULTIGET = (
    '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
    "<C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"
)
SYNC = (
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>'
    "<D:prop><D:getcontenttype/><D:getetag/></D:prop></D:sync-collection>"
)


def events(count: int, prefix: str) -> list[tuple[str, str]]:
    """(uid, one-event VCALENDAR) pairs cut from the generator's file, about 100 a week."""
    text = ics(count, prefix=prefix, days=max(70, count * 7 // 100)).decode()
    head, _, rest = text.partition("BEGIN:VEVENT")
    blocks = ("BEGIN:VEVENT" + rest).split("END:VEVENT\r\n")[:-1]
    found = []
    for block in blocks:
        uid = re.search(r"UID:(\S+)", block).group(1)  # type: ignore[union-attr]
        found.append((uid.replace("@", "-"), f"{head}{block}END:VEVENT\r\n{END}"))
    return found


class Target:
    """One server under test: where its calendar is and how to fill it quickly."""

    def __init__(self, name: str, base: str, calendar: str, auth: aiohttp.BasicAuth | None) -> None:
        self.name, self.base, self.calendar, self.auth = name, base, calendar, auth
        self.stop: Callable[[], None] = lambda: None
        self.bulk_fill: Callable[[list[tuple[str, str]]], Awaitable[None]] | None = None

    def url(self, href: str = "") -> str:
        return self.base + (href if href.startswith("/") else self.calendar + href)


def wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


def start_almanac(folder: Path, shared: bool = False, store: str | None = None, workers: int = 1) -> Target:
    """Almanac, with the calendar its owner's; ``shared``: measured as another user it is
    shared with read-write (every request then goes through a grant); on SQLite in ``folder``
    or the ``store`` given, with ``workers`` processes."""
    server = Server(folder / "almanac", store, workers)
    owner = aiohttp.BasicAuth("bench", "benchmark-password")
    target = Target("Almanac", server.base, "/dav/calendars/bench/calendar/", owner)
    json_type = {"Content-Type": "application/json"}
    made = server.request("/v1/users", b'{"username": "bench", "password": "benchmark-password"}', json_type)
    calid = "bench"
    if shared:
        sharee = server.request("/v1/users", b'{"username": "sharee", "password": "benchmark-password"}', json_type)
        mine = {**json_type, "Authorization": f"Token token={made['authToken']}"}
        team = b'{"name": "Team", "membersCanPost": true, "invitees": ["sharee"]}'
        group = server.request("/v1/groups", team, mine)["id"]
        server.request(f"/v1/groups/{group}/accept", b"", {"Authorization": f"Token token={sharee['authToken']}"})
        target = Target("Almanac, as a sharee", server.base, "/dav/calendars/sharee/bench-team/",
                        aiohttp.BasicAuth("sharee", "benchmark-password"))  # fmt: skip
        calid = "bench:team"
    target.stop = server.stop

    async def fill(items: list[tuple[str, str]]) -> None:
        head = items[0][1].partition("BEGIN:VEVENT")[0]
        blocks = "".join(text[len(head) : -len(END)] for _, text in items)
        form = aiohttp.FormData()
        form.add_field("file", head + blocks + END, filename="bench.ics", content_type="text/calendar")
        url = f"{server.base}/import.wcap?calid={calid}&httpauth=1"
        async with aiohttp.ClientSession(auth=owner) as session, session.post(url, data=form) as reply:
            assert reply.headers["X-NSCP-WCAP-ERRNO"] == "0", await reply.text()

    target.bulk_fill = fill
    return target


def start_radicale(peers: Path, folder: Path) -> Target:
    port = free_port()
    config = folder / "radicale.conf"
    storage = folder / "radicale"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = none\n[storage]\nfilesystem_folder = {storage}\n"
        "[logging]\nlevel = warning\n"
    )
    process = subprocess.Popen([str(peers / "bin" / "radicale"), "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_up(base + "/", process)
    login = {"Authorization": "Basic YmVuY2g6eA=="}  # bench:x; Radicale makes the user's home on first use
    for path, method in (("/bench/", "PROPFIND"), ("/bench/cal/", "MKCALENDAR")):
        urllib.request.urlopen(urllib.request.Request(base + path, method=method, headers=login)).close()
    target = Target("Radicale 3.9", base, "/bench/cal/", aiohttp.BasicAuth("bench", "x"))
    target.stop = process.terminate

    async def fill(items: list[tuple[str, str]]) -> None:  # Radicale's storage is one .ics per item
        collection = storage / "collection-root" / "bench" / "cal"
        for uid, text in items:
            (collection / f"{uid}.ics").write_text(text, newline="")

    target.bulk_fill = fill
    return target


def start_xandikos(peers: Path, folder: Path) -> Target:
    port = free_port()
    process = subprocess.Popen(
        [str(peers / "bin" / "xandikos"), "serve", "-d", str(folder / "xandikos"), "--defaults", "-p", str(port),
         "-l", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_up(base + "/", process)
    target = Target("Xandikos 0.4", base, "/user/calendars/calendar/", None)
    target.stop = process.terminate

    async def fill(items: list[tuple[str, str]]) -> None:  # Xandikos's storage is a git tree
        collection = folder / "xandikos" / "user" / "calendars" / "calendar"
        for uid, text in items:
            (collection / f"{uid}.ics").write_text(text, newline="")
        for command in (["add", "-A"], ["-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "fill"]):
            subprocess.run(["git", *command], cwd=collection, check=True)

    target.bulk_fill = fill
    return target


async def timed(session: aiohttp.ClientSession, method: str, url: str, body: str = "", **headers: str) -> float:
    started = time.perf_counter()
    async with session.request(method, url, data=body.encode(), headers=headers) as reply:
        await reply.read()
        assert reply.status in (200, 201, 204, 207), f"{method} {url}: {reply.status}"
    return (time.perf_counter() - started) * 1000


async def first_byte(session: aiohttp.ClientSession, method: str, url: str, body: str, **headers: str) -> float:
    """Milliseconds until the first bytes of the reply's body arrive (the rest is read after)."""
    started = time.perf_counter()
    async with session.request(method, url, data=body.encode(), headers=headers) as reply:
        await reply.content.readany()
        took = (time.perf_counter() - started) * 1000
        await reply.read()
    return took


async def median_ms(runs: int, measure: Callable[[], Awaitable[float]], budget_ms: float = 30_000) -> float:
    """The median of ``runs`` measurements, or of fewer when they use up the budget (slow peers)."""
    times: list[float] = []
    while len(times) < runs and sum(times) < budget_ms:
        times.append(await measure())
    return statistics.median(times)


async def put_all(
    session: aiohttp.ClientSession, target: Target, items: list[tuple[str, str]], budget: float = 30
) -> tuple[float, list[tuple[str, str]]]:
    """PUT the items at concurrency 8 for at most ``budget`` seconds: PUTs per second, and the
    items left unsent."""
    queue = list(reversed(items))
    deadline = time.monotonic() + budget
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while queue and time.monotonic() < deadline:
            uid, text = queue.pop()
            await timed(session, "PUT", target.url(f"{uid}.ics"), text,
                        **{"If-None-Match": "*", "Content-Type": "text/calendar; charset=utf-8"})  # fmt: skip
            sent += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return sent / (time.perf_counter() - started), list(reversed(queue))


async def throughput(seconds: float, request: Callable[[int], Awaitable[None]]) -> tuple[float, int]:
    """8 clients calling ``request(n)`` (n counts their rounds) for ``seconds``: requests per
    second and errors."""
    done, errors = 0, 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, errors
        while time.monotonic() < deadline:
            try:
                await request(done + errors)
                done += 1
            except (AssertionError, AttributeError, aiohttp.ClientError):
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(8)))
    return done / (time.monotonic() - started), errors


def get_requests(session: aiohttp.ClientSession, urls: list[str]) -> Callable[[int], Awaitable[None]]:
    async def get(number: int) -> None:
        async with session.get(urls[number * 7919 % len(urls)]) as reply:
            await reply.read()
            assert reply.status == 200, reply.status

    return get


async def floor_get(seconds: float) -> float:
    """GETs per second of a bare aiohttp handler answering a constant event-sized body, with
    the same client: what no server on this stack can beat."""
    port = free_port()
    app = (
        "from aiohttp import web\n"
        "body = b'x' * 700\n"
        "async def get(request): return web.Response(body=body, content_type='text/calendar')\n"
        "app = web.Application(); app.router.add_get('/{name}', get)\n"
        f"web.run_app(app, host='127.0.0.1', port={port}, access_log=None, print=None)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", app])
    try:
        wait_until_up(f"http://127.0.0.1:{port}/up", process)
        urls = [f"http://127.0.0.1:{port}/{n}.ics" for n in range(100)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:
            rate, _ = await throughput(seconds, get_requests(session, urls))
        return rate
    finally:
        process.terminate()
        process.wait()


async def sync_token(session: aiohttp.ClientSession, target: Target, token: str = "") -> str:
    async with session.request(
        "REPORT", target.url(), data=SYNC.format(token=token), headers={**XML, "Depth": "1"}
    ) as r:
        text = await r.text()
    return re.search(r"sync-token>([^<]+)<", text).group(1)  # type: ignore[union-attr]


async def mixed_load(session: aiohttp.ClientSession, target: Target, seconds: float) -> tuple[float, int]:
    """Thunderbird-like clients for ``seconds``, starting from a synced state: requests per second
    and errors."""
    done, errors = 0, 0
    first_token = await sync_token(session, target)  # each client has synced once already
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        nonlocal done, errors
        token, round_ = first_token, 0
        while time.monotonic() < deadline:
            round_ += 1
            uid, text = events(1, f"mixed-{number}-{round_}-{uuid.uuid4().hex[:6]}")[0]
            href = target.url(f"{uid}.ics")
            try:
                token = await sync_token(session, target, token)
                async with session.put(href, data=text, headers={"If-None-Match": "*"}) as reply:
                    assert reply.status in (200, 201, 204), reply.status
                body = MULTIGET.format(hrefs=f"<D:href>{target.calendar}{uid}.ics</D:href>")
                async with session.request("REPORT", target.url(), data=body, headers={**XML, "Depth": "1"}) as r:
                    etag = re.search(r"getetag>([^<]+)<", await r.text()).group(1)  # type: ignore[union-attr]
                done += 3
                if round_ % 5 == 0:
                    edited = text.replace("SUMMARY:", "SUMMARY:Edited ")
                    async with session.put(href, data=edited, headers={"If-Match": etag}) as reply:
                        assert reply.status in (200, 201, 204), reply.status
                    await timed(session, "DELETE", href)
                    done += 2
            except (AssertionError, AttributeError, aiohttp.ClientError):
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(8)))
    return done / (time.monotonic() - started), errors


def listing_mix(session: aiohttp.ClientSession, target: Target, urls: list[str]) -> Callable[[int], Awaitable[None]]:
    """One request of the listing-heavy mix: 50 % GET, 20 % PROPFIND Depth 1, 20 % one-week
    query, 10 % PUT of a new event."""
    get = get_requests(session, urls)
    query = QUERY.format(expand="")

    async def request(number: int) -> None:
        kind = number % 10
        if kind < 5:
            await get(number)
        elif kind < 7:
            await timed(session, "PROPFIND", target.url(), PROPFIND, **XML, Depth="1")
        elif kind < 9:
            await timed(session, "REPORT", target.url(), query, **XML, Depth="1")
        else:
            uid, text = events(1, f"listing-{uuid.uuid4().hex[:8]}")[0]
            await timed(session, "PUT", target.url(f"{uid}.ics"), text, **{"If-None-Match": "*"})

    return request


async def measure(target: Target, size: int, mixed_seconds: float) -> dict[str, float]:
    items = events(size, "bench")
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(auth=target.auth, connector=connector) as session:
        first = min(1000, size)
        row: dict[str, float] = {}
        row["put/s"], unsent = await put_all(session, target, items[:first])
        if unsent or size > first:
            assert target.bulk_fill is not None
            await target.bulk_fill(unsent + items[first:])
        urls = [target.url(f"{uid}.ics") for uid, _ in items[:1000]]
        hrefs = "".join(f"<D:href>{target.calendar}{uid}.ics</D:href>" for uid, _ in items[:100])
        runs = 3 if size >= 100_000 else 5
        await timed(session, "PROPFIND", target.url(), PROPFIND, **XML, Depth="1")  # warm caches
        row["propfind depth1 ms"] = await median_ms(
            runs, lambda: timed(session, "PROPFIND", target.url(), PROPFIND, **XML, Depth="1")
        )
        row["propfind first byte ms"] = await median_ms(
            runs, lambda: first_byte(session, "PROPFIND", target.url(), PROPFIND, **XML, Depth="1")
        )
        row["week query ms"] = await median_ms(
            20, lambda: timed(session, "REPORT", target.url(), QUERY.format(expand=""), **XML, Depth="1")
        )
        row["week expand ms"] = await median_ms(
            20, lambda: timed(session, "REPORT", target.url(), QUERY.format(expand=EXPAND), **XML, Depth="1")
        )
        row["multiget100 ms"] = await median_ms(
            20, lambda: timed(session, "REPORT", target.url(), MULTIGET.format(hrefs=hrefs), **XML, Depth="1")
        )
        row["sync initial ms"] = await median_ms(
            runs, lambda: timed(session, "REPORT", target.url(), SYNC.format(token=""), **XML, Depth="1")
        )
        token = await sync_token(session, target)
        extra = events(1, "extra")[0][1]
        await timed(session, "PUT", target.url("extra.ics"), extra)
        row["sync incremental ms"] = await median_ms(
            10, lambda: timed(session, "REPORT", target.url(), SYNC.format(token=token), **XML, Depth="1")
        )
        row["get/s"], get_errors = await throughput(min(mixed_seconds, 10), get_requests(session, urls))
        # PUTs of new events into the calendar as it is now (the first PUT rate was into an empty one)
        row["put/s full"], _ = await put_all(session, target, events(300, f"full-{size}"), budget=15)
        # the listing mix first: the Thunderbird-like one leaves thousands more events behind
        # in a fast server's calendar, which would make its listings longer than the peers'
        row["listing mix req/s"], listing_errors = await throughput(mixed_seconds, listing_mix(session, target, urls))
        row["listing errors"] = listing_errors + get_errors
        row["mixed req/s"], row["mixed errors"] = await mixed_load(session, target, mixed_seconds)
    return row


COLUMNS = ("put/s", "put/s full", "propfind depth1 ms", "propfind first byte ms", "week query ms", "week expand ms",
           "multiget100 ms", "sync initial ms", "sync incremental ms", "get/s", "mixed req/s", "mixed errors",
           "listing mix req/s", "listing errors")  # fmt: skip


def main() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # aiohttp's BasicAuth, still the simplest
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000], help="Almanac's")
    parser.add_argument("--peers", type=Path, help="a venv with radicale and xandikos installed")
    parser.add_argument("--radicale-sizes", type=int, nargs="*", default=[1000, 10_000])
    parser.add_argument("--xandikos-sizes", type=int, nargs="*", default=[1000, 10_000])
    parser.add_argument("--mixed-seconds", type=float, default=20)
    parser.add_argument("--shared", action="store_true", help="also as a user the calendar is shared with")
    parser.add_argument("--no-almanac", action="store_true", help="only the peers")
    parser.add_argument("--store", help="Almanac on PostgreSQL: a database URL (a schema of its own per size)")
    parser.add_argument("--workers", type=int, default=1, help="Almanac's worker processes")
    options = parser.parse_args()
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}; Almanac on "
          f"{'PostgreSQL' if options.store else 'SQLite'}, {options.workers} worker(s)")  # fmt: skip
    print(f"# bare aiohttp GET floor: {asyncio.run(floor_get(min(options.mixed_seconds, 10))):,.0f} req/s")
    print("| server | events | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    starters: list[tuple[Callable[[Path, str | None], Target], list[int]]] = []
    if not options.no_almanac:
        starters.append((lambda folder, store: start_almanac(folder, False, store, options.workers), options.sizes))
    if options.shared:
        starters.append((lambda folder, store: start_almanac(folder, True, store, options.workers), options.sizes))
    if options.peers:
        starters += [
            (lambda folder, _: start_radicale(options.peers, folder), options.radicale_sizes),
            (lambda folder, _: start_xandikos(options.peers, folder), options.xandikos_sizes),
        ]
    for start, sizes in starters:
        for size in sizes:
            with tempfile.TemporaryDirectory() as folder, postgres_store(options.store) as store:
                target = start(Path(folder), store)
                try:
                    row = asyncio.run(measure(target, size, options.mixed_seconds))
                finally:
                    target.stop()
                cells = " | ".join(f"{row[c]:,.0f}" if row[c] >= 100 else f"{row[c]:.1f}" for c in COLUMNS)
                print(f"| {target.name} | {size:,} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
