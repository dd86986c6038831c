"""Sign-up, sign-in, tokens and sign-out on the /v1 door."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import Config
from server.http import SERVICES
from server.services import build
from server.services.auth import Attempt, LoginThrottle, Passwords
from tests.helpers import Account

UNAUTHORIZED = {"error": "auth_token invalid or missing"}


async def test_signup_returns_the_user_with_a_token(alice: Account) -> None:
    assert alice.data["username"] == "alice"
    assert alice.data["email"] == "alice@example.org"
    assert len(alice.token) == 27
    assert alice.data["calendarCount"] == 1  # the default calendar
    me = await alice.get("/v1/me")
    assert me.status == 200
    assert (await me.json())["myCalendarUuid"] == alice.data["myCalendarUuid"]


async def test_signup_rejects_bad_and_taken_names(client: TestClient, alice: Account) -> None:
    for body, field in (
        ({"username": "alice", "password": "long enough", "email": "x@example.org"}, "username"),
        ({"username": "carol", "password": "long enough", "email": "alice@example.org"}, "email"),
        ({"username": "a b", "password": "long enough"}, "username"),
        ({"username": "carol", "password": "short"}, "password"),
        ({"username": "carol", "password": "long enough", "email": "not-an-address"}, "email"),
    ):
        response = await client.post("/v1/users", json=body)
        assert response.status == 422
        assert (await response.json())["field"] == field


async def test_signin_by_email_or_username(client: TestClient, alice: Account) -> None:
    for login in ({"email": "alice@example.org"}, {"username": "alice"}, {"email": "ALICE@example.org"}):
        response = await client.post("/v1/users/signin", json={**login, "password": "correct horse"})
        assert response.status == 200
        data = await response.json()
        assert data["username"] == "alice"
        me = await client.get("/v1/me", headers={"Authorization": f"Token token={data['authToken']}"})
        assert me.status == 200


async def test_signin_with_a_wrong_password_is_401(client: TestClient, alice: Account) -> None:
    response = await client.post("/v1/users/signin", json={"email": "alice@example.org", "password": "wrong one"})
    assert response.status == 401
    assert await response.json() == {"error": "email and password didn't match"}
    response = await client.post("/v1/users/signin", json={"email": "nobody@example.org", "password": "x" * 9})
    assert response.status == 401
    missing = await client.post("/v1/users/signin", json={"email": "alice@example.org"})
    assert missing.status == 422


async def test_missing_or_wrong_token_is_401(client: TestClient, alice: Account) -> None:
    for headers in ({}, {"Authorization": "Token token=nope"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        response = await client.get("/v1/me", headers=headers)
        assert response.status == 401
        assert await response.json() == UNAUTHORIZED
    response = await client.post("/v1/import/", json={"file": "BEGIN:VCALENDAR"})
    assert response.status == 401


async def test_bearer_and_quoted_tokens_work(client: TestClient, alice: Account) -> None:
    for header in (f"Bearer {alice.token}", f'Token token="{alice.token}"'):
        response = await client.get("/v1/me", headers={"Authorization": header})
        assert response.status == 200


async def test_signout_revokes_the_token(alice: Account) -> None:
    response = await alice.get("/v1/me/signout")
    assert response.status == 200
    assert (await alice.get("/v1/me")).status == 401


async def test_tokens_are_stored_hashed(client: TestClient, alice: Account) -> None:
    store = client.app[SERVICES].store
    hashes = [row[0] for row in await store.db.all("SELECT token_hash FROM tokens")]
    passwords = [row[0] for row in await store.db.all("SELECT password_hash FROM users")]
    assert alice.token not in hashes and all(len(h) == 64 for h in hashes)
    assert all(p.startswith("$argon2") for p in passwords)


async def test_unknown_routes_and_methods_answer_in_json(alice: Account) -> None:
    missing = await alice.get("/v1/nothing-here")
    assert (missing.status, await missing.json()) == (404, {"error": "not found"})
    wrong = await alice.client.put("/v1/me", headers=alice.headers)
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]


async def test_a_changed_password_is_not_remembered(client: TestClient, alice: Account) -> None:
    users = client.app[SERVICES].users
    assert await users.authenticate("alice", "correct horse") is not None
    assert await users.authenticate("alice", "correct horse") is not None  # from the cache
    user = await users.get_by_name("alice")
    await users.set_password(user, "a new secret")
    assert await users.authenticate("alice", "correct horse") is None
    assert await users.authenticate("alice", "a new secret") is not None


async def test_the_same_sign_in_at_once_is_checked_once(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client opening many connections at once (after a restart) sends the same name and
    password on each: the password is hashed once, and every request gets the answer; a wrong
    password too (each still refused)."""
    users = client.app[SERVICES].users
    checks = []
    verify = users.passwords.verify

    async def counted(password: str, stored: str | None) -> tuple[bool, str | None]:
        checks.append(password)
        return await verify(password, stored)

    monkeypatch.setattr(users.passwords, "verify", counted)
    found = await asyncio.gather(*(users.authenticate("alice", "correct horse", "addr") for _ in range(20)))
    assert [u.username if u else None for u in found] == ["alice"] * 20 and checks == ["correct horse"]
    wrong = await asyncio.gather(*(users.authenticate("alice", "wrong horse", "addr") for _ in range(20)))
    assert wrong == [None] * 20 and checks == ["correct horse", "wrong horse"]
    assert await users.authenticate("alice", "wrong horse", "addr") is None and len(checks) == 3  # not remembered


async def test_a_password_changed_on_another_worker_counts_at_once(client: TestClient, alice: Account) -> None:
    """Two workers (two services over one store): the one that remembers alice's password
    check sees the change made through the other at its next request."""
    here = client.app[SERVICES].users
    other = build(client.app[SERVICES].config)
    await other.store.open()
    try:
        assert await here.authenticate("alice", "correct horse") is not None  # remembered here
        changed = await other.users.get_by_name("alice")
        assert changed is not None
        await other.users.set_password(changed, "a new secret")
        assert await here.authenticate("alice", "correct horse") is None
        assert await here.authenticate("alice", "a new secret") is not None
    finally:
        await other.store.close()


async def timed(client: TestClient, login: str, password: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.post("/v1/users/signin", json={"username": login, "password": password})
    return response.status, time.perf_counter() - started


@pytest.fixture
async def throttled(aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config) -> TestClient:
    """A server that slows an account from an address after 2 failures, an address after 10."""
    client = await aiohttp_client(create_app(dataclasses.replace(config, login_failures=2)))
    body = {"username": "alice", "password": "correct horse", "email": "alice@example.org"}
    assert (await client.post("/v1/users", json=body)).status == 201
    return client


async def test_guessing_many_accounts_from_one_address_is_slowed(throttled: TestClient) -> None:
    """Issue 32.5: password spraying (one guess at each of many accounts) is slowed per address
    over every account; the times are measured against an attempt made first, in this test."""
    _, baseline = await timed(throttled, "someone", "a guess")
    for number in range(9):  # with the one above: the address's 10 failures
        assert (await timed(throttled, f"account{number}", "a guess"))[0] == 401
    status, waited = await timed(throttled, "yet-another", "a guess")
    assert status == 401 and waited >= baseline + 0.9  # its turn came a second later
    status, waited = await timed(throttled, "alice", "correct horse")
    assert status == 200 and waited >= baseline + 0.9  # slowed, never locked out


async def test_a_sign_in_forgets_the_failures_before_it(throttled: TestClient) -> None:
    """Issue 32.5: after two failures the owner's right password waits its turn once; having
    signed in, the failures are forgotten: a later mistake is not slowed."""
    _, baseline = await timed(throttled, "alice", "a slip")
    assert (await timed(throttled, "alice", "another slip"))[0] == 401
    status, waited = await timed(throttled, "alice", "correct horse")
    assert status == 200 and waited >= baseline + 0.9
    status, waited = await timed(throttled, "alice", "a third slip")
    assert status == 401 and waited < baseline + 0.5


async def test_the_throttle_counts_waits_and_forgets_as_it_says(config: Config) -> None:
    """Issue 32.5: LoginThrottle's rules, at small delays: free below the limit; then waits
    that double up to the cap; refused when the turn is too far; per account and address, and
    per address over all accounts at five times the limit; a sign-in forgets the account's
    failures from that address (not the address's); old failures stop counting."""
    services = build(config)
    await services.store.open()
    try:
        throttle = LoginThrottle(services.store, failures=2, window=2, delay=0.05, max_delay=0.2, max_wait=0.3)
        first = await throttle.attempt("acct", "addr")
        assert first == Attempt(0.0, False)
        await throttle.failed("acct", "addr")
        assert await throttle.attempt("acct", "addr") == Attempt(0.0, True)
        waits = []
        for _ in range(4):
            await throttle.failed("acct", "addr")
            attempt = await throttle.attempt("acct", "addr")
            assert attempt.wait is not None
            waits.append(round(attempt.wait, 3))
            await asyncio.sleep(attempt.wait)  # its turn comes
        assert waits == [0.05, 0.1, 0.2, 0.2]  # doubling, up to max_delay
        turns = [await throttle.attempt("acct", "addr") for _ in range(3)]  # without waiting their turns
        assert [t.wait is None for t in turns] == [False, True, True]  # 0.2 away, then past max_wait
        assert await throttle.attempt("acct", "elsewhere") == Attempt(0.0, False)  # the owner elsewhere
        assert await throttle.attempt("other", "addr") == Attempt(0.0, False)  # 5 of the address's 10
        for number in range(5):
            await throttle.failed(f"other{number}", "addr")
        spray = await throttle.attempt("another", "addr")  # the address's 10 failures, over all accounts
        assert spray.wait is not None and spray.wait > 0 and not spray.failed_before
        await throttle.succeeded("acct", "addr", Attempt(0.0, True))
        counts = await services.store.login_failures(["addr acct", "addr "], 0)
        assert counts == {"addr acct": 0, "addr ": 10}  # the account forgotten, the address not
        await throttle.succeeded("other0", "addr", Attempt(0.0, False))  # nothing to forget: nothing written
        assert (await services.store.login_failures(["addr other0"], 0))["addr other0"] == 1
        await asyncio.sleep(2.1)  # the window passes
        assert await throttle.attempt("another", "addr") == Attempt(0.0, False)
    finally:
        await services.store.close()


async def test_no_stored_hash_matches_no_password() -> None:
    """Without an account there is nothing to match (a dummy hash is checked, for the time it
    takes); with one, the right password matches and the wrong one does not."""
    passwords = Passwords(argon2__rounds=1, argon2__memory_cost=256)
    for password in ("", "correct horse"):
        assert await passwords.verify(password, None) == (False, None)
    stored = await passwords.hash("correct horse")
    assert (await passwords.verify("correct horse", stored))[0] is True
    assert await passwords.verify("wrong horse", stored) == (False, None)


def test_the_throttles_own_bounds_are_the_documented_ones() -> None:
    """docs/architecture.md: past 10 failures in 5 minutes each attempt waits 1, 2, 4 ... 30 s;
    one more than a minute away is refused (the server passes its configured count and window)."""
    throttle = LoginThrottle(None)  # type: ignore[arg-type]  # the store is not used here
    assert (throttle.failures, throttle.window, throttle.delay, throttle.max_delay, throttle.max_wait) == (
        10, 300, 1.0, 30, 60,
    )  # fmt: skip


async def test_hashes_use_the_chosen_scheme_and_costs_and_outdated_ones_are_replaced() -> None:
    bcrypt = Passwords(scheme="bcrypt", bcrypt__rounds=4)
    old = await bcrypt.hash("correct horse")
    assert old.startswith("$2b$04$")
    argon2 = Passwords(argon2__rounds=1, argon2__memory_cost=256)
    new = await argon2.hash("correct horse")
    assert new.startswith("$argon2") and ",t=1," in new
    ok, replaced = await argon2.verify("correct horse", old)  # a bcrypt hash from before: replaced
    assert ok and replaced is not None and replaced.startswith("$argon2")
    bcrypt.close()
    argon2.close()
