"""What the tests share (data, accounts, requests in each door's form, a server process);
fixtures are in conftest.py. No test module imports another: they import from here."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from lxml import etree

from protocol.dav import CALDAV, CS, DAV

DATA = Path(__file__).parent / "data"


async def stream(*items: Any) -> AsyncIterator[Any]:
    """``items`` one at a time, as the store takes pages and pieces."""
    for item in items:
        yield item


async def kept_upload(store: Any, import_id: int) -> bytes | None:
    """A queued import's file as the store keeps it, whole; None when it keeps none."""
    pieces = [piece async for piece in store.upload_pieces(import_id)]
    return b"".join(pieces) if pieces else None


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


#: what a probe may take beyond the machine's own pace while other work runs (see probe_limit)
PROBE_BUDGET = 0.2


async def probe_limit(get: Callable[[], Awaitable[Any]], count: int = 5) -> float:
    """How long a probe may take in this test: the slowest of ``count`` probes sent now, with
    nothing else running (how fast this machine answers at the moment, loaded or not), plus
    PROBE_BUDGET. Bounds measured against the same test's own baseline hold on a busy machine."""
    slowest = 0.0
    for _ in range(count):
        started = time.perf_counter()
        await get()
        slowest = max(slowest, time.perf_counter() - started)
    return slowest + PROBE_BUDGET


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
#: a second user of ``live_server``, for what takes two (meetings): same password
LIVE_OTHER = "ben"


ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=60, check=False,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NS = {"D": DAV, "C": CALDAV, "CS": CS}
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN\r\n"
    "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250110T100000Z\r\n"
    "DTEND:20250110T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def basic(name: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:correct horse".encode()).decode()}


async def propfind(client: TestClient, path: str, props: str, depth: str = "0", user: str = "alice") -> Any:
    body = f'<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV}" xmlns:CS="{CS}"><D:prop>{props}</D:prop></D:propfind>'
    response = await client.request("PROPFIND", path, data=body, headers={**basic(user), "Depth": depth})
    assert response.status == 207, await response.text()
    return etree.fromstring(await response.read())


async def groups(account: Account) -> dict[str, dict]:
    response = await account.get("/v1/me/calendars")
    return {g["name"]: g for g in (await response.json())["result"]}


CAL = "/dav/calendars/alice/calendar/"
XML = {"Content-Type": "text/xml; charset=utf-8"}


TB_SYNC = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<sync-collection xmlns="DAV:"><sync-token>{token}</sync-token>'
    "<sync-level>1</sync-level><prop><getcontenttype/><getetag/></prop></sync-collection>"
)
#: Thunderbird's per-calendar PROPFIND and its multiget, byte for byte (comm-central's caldav provider)
TB_CALENDAR_PROPS = (
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<D:propfind xmlns:D='DAV:' xmlns:CS='http://calendarserver.org/ns/' "
    "xmlns:C='urn:ietf:params:xml:ns:caldav'><D:prop><D:resourcetype/><D:owner/><D:current-user-principal/>"
    "<D:current-user-privilege-set/><D:supported-report-set/><C:supported-calendar-component-set/><CS:getctag/>"
    "</D:prop></D:propfind>"
)
TB_MULTIGET = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<C:calendar-multiget xmlns:D="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}'
    "</C:calendar-multiget>"
)


async def report(client: TestClient, path: str, body: str, status: int = 207, depth: str = "1") -> Any:
    response = await client.request("REPORT", path, data=body, headers={**basic("alice"), **XML, "Depth": depth})
    assert response.status == status, await response.text()
    return etree.fromstring(await response.read())


def responses(root: Any) -> dict[str, Any]:
    return {r.findtext("D:href", namespaces=NS): r for r in root.findall("D:response", NS)}


#: the PostgreSQL server the tests make their schemas in (scripts/test.sh brings one up)
POSTGRES = os.environ.get("ALMANAC_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


async def _schema(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def postgres_schema() -> tuple[str, Any]:
    """A fresh, empty schema on the test server: its store URL, and what drops it."""
    name = f"almanac_test_{os.getpid()}_{time.monotonic_ns()}"
    asyncio.run(_schema(f'CREATE SCHEMA "{name}"'))
    separator = "&" if "?" in POSTGRES else "?"
    # the test's connections carry the schema's name: the ones a test left open (a server
    # process killed with -9, a connection cut mid-statement) are closed before the drop
    leftovers = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
    return f"{POSTGRES}{separator}search_path={name},public&application_name={name}", lambda: asyncio.run(
        _schema(f'{leftovers}; DROP SCHEMA "{name}" CASCADE')
    )


def files_left(data: Path) -> list[Path]:
    """The files uploads and imports left in a data folder's spool (every worker's)."""
    return [path for path in (data / "imports").rglob("*") if path.is_file()]


class Server:
    """``run.py serve`` in a process of its own, stopped by its PID."""

    def __init__(self, data: Path, store: str, **settings: str) -> None:
        self.data, self.port = data, free_port()
        settings = {"store_url": store, **settings}
        self.env = {**os.environ, **{f"ALMANAC_{k.upper()}": v for k, v in settings.items()}}
        self.workers = int(settings.get("server_workers", "1"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.data.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, within: float = 30) -> None:
        command = [sys.executable, "run.py", "serve", "--port", str(self.port), "--data", str(self.data)]
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:  # a file, not a pipe: a full pipe would block the server
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the server did not listen within {within} s")

    def kill(self) -> None:
        """kill -9: no clean-up of any kind (its workers too, when it has several)."""
        assert self.process is not None
        for pid in self.pids()[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait(10)

    def pids(self) -> list[int]:
        """The server's process, then its workers' (children) when it has several."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        found = children.read_text().split() if children.exists() else []
        return [self.process.pid, *map(int, found)]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)  # a supervisor drains its workers first
            except subprocess.TimeoutExpired:
                self.kill()


async def sign_up(http: aiohttp.ClientSession, url: str) -> tuple[dict[str, str], str]:
    """alice's token header and the uuid of her default calendar."""
    body = {"username": "alice", "password": "correct horse", "email": "alice@example.org"}
    async with http.post(f"{url}/v1/users", json=body) as response:
        assert response.status == 201
        made = await response.json()
    return {"Authorization": f"Token token={made['authToken']}"}, made["myCalendarUuid"]


class CommitCutter:
    """A TCP proxy to PostgreSQL that, once armed, cuts off the connection that sends the next
    COMMIT: ``after`` passing it on and its answer arriving (the write is kept, the client never
    hears so), or ``before`` it reaches the server (the write is rolled back)."""

    #: a simple-protocol Query of asyncpg's COMMIT
    COMMIT = b"Q\x00\x00\x00\x0cCOMMIT;\x00"

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.armed: str | None = None  #: "after" or "before": cut the next COMMIT so
        self.cuts = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def arm(self, when: str) -> None:
        self.armed = when

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        server, to_server = await asyncio.open_connection(self.host, self.port)
        cutting = False  #: the COMMIT went on: what the server answers is not passed back
        answered = asyncio.Event()

        async def upstream() -> None:
            nonlocal cutting
            while data := await client.read(65536):
                at = data.find(self.COMMIT)
                if at < 0 or self.armed is None:
                    to_server.write(data)
                    continue
                when, self.armed = self.armed, None
                self.cuts += 1
                if when == "after":
                    cutting = True
                    to_server.write(data[: at + len(self.COMMIT)])
                    await asyncio.wait_for(answered.wait(), 10)  # the server has committed
                break

        async def downstream() -> None:
            while data := await server.read(65536):
                if cutting:
                    answered.set()
                    return
                to_client.write(data)

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        to_client.close()
        to_server.close()


def screenshots(tmp_path: Path) -> Path:
    """Where a browser test puts its screenshots: ``tmp_path``, or the folder ALMANAC_SCREENSHOTS
    names (``ALMANAC_SCREENSHOTS=docs/screenshots ./scripts/test.sh -k web`` refreshes the README's)."""
    folder = Path(os.environ.get("ALMANAC_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: the test directory (tests/conftest.py's ``slapd``): its suffix and administrator
LDAP_SUFFIX = "dc=almanac,dc=test"
LDAP_ADMIN = f"cn=admin,{LDAP_SUFFIX}"
LDAP_SECRET = "directory secret"

SLAPD_CONF = """include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {folder}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{admin}"
rootpw "{secret}"
directory {folder}/db
"""


def start_slapd(folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Debian's slapd on a free port of 127.0.0.1, its database in ``folder``, holding the
    suffix's entry; its URL and process (stop it by its PID)."""
    import ldap3

    (folder / "db").mkdir(parents=True)
    conf = folder / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(folder=folder, suffix=LDAP_SUFFIX, admin=LDAP_ADMIN, secret=LDAP_SECRET))
    url = f"ldap://127.0.0.1:{free_port()}"
    process = subprocess.Popen(["/usr/sbin/slapd", "-d", "0", "-f", str(conf), "-h", f"{url}/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            admin = ldap3.Connection(ldap3.Server(url, connect_timeout=2), LDAP_ADMIN, LDAP_SECRET, auto_bind=True)
            break
        except ldap3.core.exceptions.LDAPException:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("slapd did not start") from None
            time.sleep(0.1)
    admin.add(LDAP_SUFFIX, ["dcObject", "organization"], {"o": "Almanac tests", "dc": "almanac"})
    admin.unbind()
    return url, process
