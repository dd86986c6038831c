"""Passwords, tokens and session ids.

Passwords are hashed with passlib (argon2 or bcrypt). Tokens and session ids are random
and stored only as their SHA-256, so a copy of the database lets nobody sign in.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from passlib.context import CryptContext

from storage.base import Store

T = TypeVar("T")


class Passwords:
    """Hash and check passwords off the event loop (a hash takes tens of milliseconds), in a
    pool of their own: a flood of sign-ins queues there and never starves the threads that
    serve everything else."""

    def __init__(self, scheme: str = "argon2", threads: int = 1, **costs: int) -> None:
        """``costs`` are passlib settings such as ``argon2__rounds`` (tests make hashing cheap)."""
        self.context = CryptContext(schemes=["argon2", "bcrypt"], default=scheme, deprecated="auto", **costs)
        self._dummy = self.context.hash(secrets.token_hex(8))
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="passwords")

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def hash(self, password: str) -> str:
        return await self._run(self.context.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """Whether the password matches, and a new hash when the stored one is outdated.

        Without a stored hash a dummy one is checked, so unknown users take as long.
        """
        if stored is None:
            await self._run(self.context.verify, password, self._dummy)
            return False, None
        return await self._run(self.context.verify_and_update, password, stored)


def new_secret(nbytes: int = 20) -> str:
    """A random URL-safe secret (20 bytes gives Timeslot's 27-character tokens)."""
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """What the store keeps of a token or session id."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in attempt as the throttle sees it."""

    wait: float | None  #: seconds to wait before the password is checked; None: refused at once
    failed_before: bool  #: this account has failed from this address lately


class LoginThrottle:
    """Slow down guessing without locking anyone out.

    Failures are counted per account (its username and e-mail count as one) and address, and
    per address over all accounts. Past ``failures`` within ``window`` seconds (five times as
    many for an address over all accounts), each further attempt from that address waits its
    turn: 1, 2, 4, ... seconds apart, up to ``max_delay``. An attempt whose turn is more than
    ``max_wait`` seconds away is refused at once. The account's owner, from anywhere else, is
    never slowed, and the right password still works once its turn comes.

    The counts and turns are kept in the store, so every process and node of one Almanac
    counts the same guesses (N processes do not allow N times as many)."""

    def __init__(
        self,
        store: Store,
        failures: int = 10,
        window: int = 300,
        delay: float = 1.0,
        max_delay: float = 30,
        max_wait: float = 60,
    ) -> None:
        self.store = store
        self.failures = failures
        self.window = window
        self.delay = delay
        self.max_delay = max_delay
        self.max_wait = max_wait

    def _keys(self, account: str, address: str) -> tuple[tuple[str, int], ...]:
        """The keys an attempt counts under, with their limits (an address has no spaces)."""
        return (f"{address} {account}", self.failures), (f"{address} ", 5 * self.failures)

    async def attempt(self, account: str, address: str) -> Attempt:
        """How this attempt goes: how long it waits before it is checked, or refused."""
        now = time.time()
        keys = self._keys(account, address)
        counts = await self.store.login_failures([key for key, _ in keys], now - self.window)
        failed_before = counts[keys[0][0]] > 0
        wait = 0.0
        for key, limit in keys:
            over = counts[key] - limit
            if over >= 0:
                spacing = min(self.delay * 2**over, self.max_delay)
                turn = await self.store.take_turn(key, now, spacing, now + self.max_wait)
                if turn is None:
                    return Attempt(None, failed_before)
                wait = max(wait, turn - now)
        return Attempt(wait, failed_before)

    async def failed(self, account: str, address: str) -> None:
        now = time.time()
        await self.store.add_login_failure([key for key, _ in self._keys(account, address)], now, now - self.window)

    async def succeeded(self, account: str, address: str, attempt: Attempt) -> None:
        if attempt.failed_before:  # (most sign-ins have nothing to forget: no write for them)
            await self.store.clear_login_failures(self._keys(account, address)[0][0])
