"""Passwords, tokens and session ids.

Passwords are hashed with passlib (argon2 or bcrypt). Tokens and session ids are random
and stored only as their SHA-256, so a copy of the database lets nobody sign in.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from passlib.context import CryptContext

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


class LoginThrottle:
    """Slow down guessing without locking anyone out.

    Failures are counted per account (its username and e-mail count as one) and address, and
    per address over all accounts. Past ``failures`` within ``window`` seconds (five times as
    many for an address over all accounts), each further attempt from that address waits its
    turn: 1, 2, 4, ... seconds apart, up to ``max_delay``. An attempt whose turn is more than
    ``max_wait`` seconds away is refused at once. The account's owner, from anywhere else, is
    never slowed, and the right password still works once its turn comes."""

    def __init__(
        self, failures: int = 10, window: int = 300, delay: float = 1.0, max_delay: float = 30, max_wait: float = 60
    ) -> None:
        self.failures = failures
        self.window = window
        self.delay = delay
        self.max_delay = max_delay
        self.max_wait = max_wait
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._turn: dict[tuple[str, str], float] = {}  #: when the next slowed attempt may run

    def _keys(self, account: str, address: str) -> tuple[tuple[tuple[str, str], int], ...]:
        return ((account, address), self.failures), (("", address), 5 * self.failures)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._seen.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def wait(self, account: str, address: str) -> float | None:
        """Seconds this attempt must wait before it is checked (0: at once), or None: refused."""
        now = time.monotonic()
        wait = 0.0
        for key, limit in self._keys(account, address):
            over = len(self._recent(key, now)) - limit
            if over >= 0:
                turn = max(now, self._turn.get(key, now)) + min(self.delay * 2**over, self.max_delay)
                if turn - now > self.max_wait:
                    return None
                self._turn[key] = turn
                wait = max(wait, turn - now)
        return wait

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        for key, _ in self._keys(account, address):
            times = self._recent(key, now)
            times.append(now)
            self._seen[key] = times
        if len(self._seen) > 100_000:  # bounded memory under a spray of names
            self._seen = {k: v for k, v in self._seen.items() if self._recent(k, now)}
            self._turn = {k: v for k, v in self._turn.items() if v > now}

    def succeeded(self, account: str, address: str) -> None:
        self._seen.pop((account, address), None)
        self._turn.pop((account, address), None)
