"""The account directory (``[auth] backend = ldap``): who a sign-in name is, whether their password
is right, whether they may sign in (a group), and who a search finds, asked of an LDAP server
through ldap3. Never on the event loop: each question runs in one of ``pool_size`` threads, on a
connection kept open for the next one (a bound search connection; a connection a password is
checked on by a rebind), within ``timeout`` seconds. A directory that does not answer is
``DirectoryUnavailable``: the doors say 503 with Retry-After, and nobody is locked out."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from server.config import Ldap
from storage.errors import StoreUnavailable

T = TypeVar("T")
#: entries a search for principals reads at most
MAX_FOUND = 50


class DirectoryUnavailable(StoreUnavailable):
    """The directory did not answer in time (or refused the server's own account): nothing was
    decided; the same request may succeed later."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A user as the directory has them."""

    dn: str
    username: str
    email: str | None
    name: str | None


class Directory:
    def __init__(self, settings: Ldap) -> None:
        self.settings = settings
        self.server = ldap3.Server(settings.url, connect_timeout=settings.timeout, get_info=ldap3.NONE)
        self.threads = ThreadPoolExecutor(settings.pool_size, thread_name_prefix="ldap")
        #: open connections: bound as the server's account (searches), and for checking passwords
        self.searchers: queue.SimpleQueue[ldap3.Connection] = queue.SimpleQueue()
        self.checkers: queue.SimpleQueue[ldap3.Connection] = queue.SimpleQueue()

    def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        for pool in (self.searchers, self.checkers):
            while not pool.empty():
                pool.get_nowait().unbind()

    async def _run(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.timeout * 2 + 1):  # a connect, then a request
                return await loop.run_in_executor(self.threads, work)
        except TimeoutError:
            raise DirectoryUnavailable("the account directory did not answer in time") from None

    def _connection(self, pool: queue.SimpleQueue[ldap3.Connection], service: bool) -> ldap3.Connection:
        try:
            return pool.get_nowait()
        except queue.Empty:
            pass
        user, password = (self.settings.bind_dn, self.settings.bind_password) if service else ("", "")
        made = ldap3.Connection(self.server, user=user or None, password=password or None, read_only=True,
                                receive_timeout=self.settings.timeout, raise_exceptions=False)  # fmt: skip
        try:
            if not made.bind():
                raise DirectoryUnavailable(f"the directory refused the server's own account: {made.result}")
        except LDAPException as error:
            raise DirectoryUnavailable(f"the account directory does not answer: {error}") from None
        return made

    def _with(self, pool: queue.SimpleQueue[ldap3.Connection], service: bool, work: Callable[[Any], T]) -> T:
        """``work`` on a pooled connection (put back after; closed if the directory failed)."""
        connection = self._connection(pool, service)
        try:
            done = work(connection)
        except LDAPException as error:
            connection.unbind()
            raise DirectoryUnavailable(f"the account directory does not answer: {error}") from None
        pool.put(connection)
        return done

    def _entries(self, connection: ldap3.Connection, search: str, limit: int) -> list[Entry]:
        names = self.settings.username_attribute, self.settings.email_attribute, self.settings.name_attribute
        done = connection.search(self.settings.base, search, ldap3.SUBTREE, attributes=list(names), size_limit=limit)
        if not done and connection.result.get("result") not in (0, 4, 32):  # success, size limit, no such object
            raise DirectoryUnavailable(f"the directory's search failed: {connection.result.get('description')}")
        found = []
        for item in connection.response or []:
            values = item.get("attributes", {})
            first = [_first(values.get(name)) for name in names]
            if item.get("type") == "searchResEntry" and first[0]:
                found.append(Entry(item["dn"], first[0], first[1], first[2]))
        return found

    def _member(self, connection: ldap3.Connection, entry: Entry) -> bool:
        if not self.settings.group:
            return True
        attribute = self.settings.group_attribute
        member = entry.username if attribute.lower() == "memberuid" else entry.dn
        search = f"({attribute}={escape_filter_chars(member)})"
        return bool(connection.search(self.settings.group, search, ldap3.BASE, attributes=[]) and connection.response)

    def _find(self, connection: ldap3.Connection, login: str) -> Entry | None:
        found = self._entries(connection, self.settings.filter.replace("{login}", escape_filter_chars(login)), 2)
        if len(found) != 1:  # none, or a name that is more than one person's: nobody
            return None
        return found[0] if self._member(connection, found[0]) else None

    async def find(self, login: str) -> Entry | None:
        """The user a sign-in name (or e-mail) is, if the directory has exactly one who may sign in."""
        return await self._run(lambda: self._with(self.searchers, True, lambda c: self._find(c, login)))

    async def verify(self, login: str, password: str) -> Entry | None:
        """The user, when ``password`` is theirs in the directory and they may sign in; else None."""
        if not password:  # an empty password is an anonymous bind, which proves nothing
            return None
        entry = await self.find(login)
        if entry is None:
            return None

        def check(connection: ldap3.Connection) -> bool:
            return bool(connection.rebind(user=entry.dn, password=password))

        return entry if await self._run(lambda: self._with(self.checkers, False, check)) else None

    async def search(self, text: str, limit: int = MAX_FOUND) -> list[Entry]:
        """The users whose name, e-mail or display name holds ``text`` (who may sign in)."""
        words = escape_filter_chars(text)
        attributes = self.settings.username_attribute, self.settings.email_attribute, self.settings.name_attribute
        anyone = self.settings.filter.replace("{login}", "*")
        search = f"(&{anyone}(|{''.join(f'({a}=*{words}*)' for a in attributes)}))"

        def found(connection: ldap3.Connection) -> list[Entry]:
            return [e for e in self._entries(connection, search, limit) if self._member(connection, e)]

        return await self._run(lambda: self._with(self.searchers, True, found))


def _first(value: object) -> str | None:
    """An attribute's first value as text (ldap3 gives lists for multi-valued ones)."""
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None
