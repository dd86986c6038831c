"""Passwords, tokens and the credentials each door sends.

Passwords are hashed with passlib (argon2 or bcrypt). Tokens and session ids are random
and stored only as their SHA-256, so a copy of the database lets nobody sign in.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections import deque

from passlib.context import CryptContext

_TOKEN_HEADER = re.compile(r'^\s*Token\s+token\s*=\s*"?([^",\s]+)"?', re.IGNORECASE)
_BEARER_HEADER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


class Passwords:
    """Hash and check passwords off the event loop (a hash takes tens of milliseconds)."""

    def __init__(self, scheme: str = "argon2", **costs: int) -> None:
        """``costs`` are passlib settings such as ``argon2__rounds`` (tests make hashing cheap)."""
        self.context = CryptContext(schemes=["argon2", "bcrypt"], default=scheme, deprecated="auto", **costs)
        self._dummy = self.context.hash(secrets.token_hex(8))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.context.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """Whether the password matches, and a new hash when the stored one is outdated.

        Without a stored hash a dummy one is checked, so unknown users take as long.
        """
        if stored is None:
            await asyncio.to_thread(self.context.verify, password, self._dummy)
            return False, None
        return await asyncio.to_thread(self.context.verify_and_update, password, stored)


def new_secret(nbytes: int = 20) -> str:
    """A random URL-safe secret (20 bytes gives Timeslot's 27-character tokens)."""
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """What the store keeps of a token or session id."""
    return hashlib.sha256(secret.encode()).hexdigest()


def token_from_header(value: str | None) -> str | None:
    """The token of ``Authorization: Token token=...`` or ``Authorization: Bearer ...``."""
    if not value:
        return None
    match = _TOKEN_HEADER.match(value) or _BEARER_HEADER.match(value)
    return match.group(1) if match else None


class LoginThrottle:
    """Refuse sign-ins for a (user, address) pair after too many recent failures."""

    def __init__(self, failures: int = 10, window: int = 300) -> None:
        self.failures = failures
        self.window = window
        self._seen: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._seen.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, login: str, address: str) -> bool:
        key = (login.lower(), address)
        return len(self._recent(key, time.monotonic())) >= self.failures

    def failed(self, login: str, address: str) -> None:
        key = (login.lower(), address)
        times = self._recent(key, time.monotonic())
        times.append(time.monotonic())
        self._seen[key] = times
        if len(self._seen) > 100_000:  # bounded memory under a spray of names
            self._seen = {k: v for k, v in self._seen.items() if v}

    def succeeded(self, login: str, address: str) -> None:
        self._seen.pop((login.lower(), address), None)


def basic_credentials(value: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header."""
    if not value or value[:6].lower() != "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None
