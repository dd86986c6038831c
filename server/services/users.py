"""UserService: accounts, passwords and Timeslot tokens, shared by the CLI and every door."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence

from server.metrics import metrics
from server.services.auth import LoginThrottle, Passwords, digest, new_secret
from server.services.calendars import CalendarService
from server.services.directory import Directory, Entry
from server.services.errors import Forbidden, Invalid, NotFound
from storage.base import Store
from storage.errors import Conflict
from storage.model import User

#: usernames appear in CalDAV paths and WCAP calids, so they stay URL-safe
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,48}$")
#: how long a successful password check is remembered (in memory, as a salted digest)
VERIFIED_FOR = 300
#: the longest password accepted (longer ones are refused without hashing)
MAX_PASSWORD = 1024
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


log = logging.getLogger("almanac.users")
#: a user whose account (and password) is the directory's
DIRECTORY = "ldap"

#: the kinds of calendar user a user may be (iCalendar's CUTYPE)
USER_TYPES = ("INDIVIDUAL", "ROOM", "RESOURCE")


class UserService:
    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        calendars: CalendarService,
        min_password_length: int = 8,
        throttle: LoginThrottle | None = None,
        *,
        signup: str = "open",
        directory: Directory | None = None,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.calendars = calendars
        self.min_password_length = min_password_length
        self.signup = signup
        self.directory = directory
        self.signup_open = signup == "open"
        self.throttle = throttle or LoginThrottle(store)
        #: recent successful checks, so that per-request Basic auth does not rehash each time:
        #: (login, salted digest of the password) -> (user id, the hash it matched, monotonic
        #: expiry); the hash is compared at each use, so a password changed through another
        #: worker or node counts there at once
        self._verified: dict[tuple[str, str], tuple[int, str | None, float]] = {}
        #: the checks under way, by (login, salted digest, address): the same check asked again
        #: meanwhile (a client's parallel connections) waits for that one's answer
        self._checking: dict[tuple[str, str, str], asyncio.Future[User | None]] = {}
        self._salt = new_secret(16)

    def _check_password(self, password: object) -> str:
        if not isinstance(password, str) or len(password) < self.min_password_length:
            raise Invalid(f"password must be at least {self.min_password_length} characters", field="password")
        if len(password) > MAX_PASSWORD:
            raise Invalid(f"password is too long ({MAX_PASSWORD} characters at most)", field="password")
        return password

    async def create(self, username: object, password: object, email: object = None, is_admin: bool = False) -> User:
        """A new user with a default calendar."""
        if not isinstance(username, str) or not USERNAME.match(username):
            raise Invalid(
                "username must be 3 to 49 letters, digits, dots, dashes or underscores, "
                "starting with a letter or digit",
                field="username",
            )
        if email is not None and (not isinstance(email, str) or not EMAIL.match(email)):
            raise Invalid("email is not a valid e-mail address", field="email")
        password_hash = await self.passwords.hash(self._check_password(password))
        try:
            user = await self.store.create_user(username, email, password_hash, is_admin)
        except Conflict as conflict:
            raise Invalid(f"{conflict.args[0]} is already taken", field=conflict.args[0]) from None
        await self.calendars.create_default(user)
        return user

    async def sign_up(
        self, username: object, password: object, email: object = None, invitation: object = None
    ) -> User:
        """An account made by its user (REST sign-up, the web's sign-up page), as the operator's
        ``[auth] signup`` allows: open; by ``invitation`` (a code from ``invite``, used once,
        its address the account's unless another is given); Forbidden when closed, Invalid for
        an invitation that is unknown, used or expired."""
        if self.signup == "closed":
            raise Forbidden("sign-up is closed here: an operator makes accounts (run.py user add)")
        if self.signup == "open":
            return await self.create(username, password, email)
        code = digest(invitation) if isinstance(invitation, str) and 8 <= len(invitation) <= 64 else ""
        claimed, invited = await self.store.claim_signup_invitation(code, int(time.time())) if code else (False, None)
        if not claimed:
            raise Invalid("sign-up here is by invitation: this one is unknown, used or expired", field="invitation")
        try:
            made = await self.create(username, password, email or invited)
        except BaseException:
            await self.store.settle_signup_invitation(code, None)  # given back: the form can be sent again
            raise
        await self.store.settle_signup_invitation(code, made.id)
        return made

    async def _from_directory(self, entry: Entry, known: User | None) -> User | None:
        """The user here for a directory entry: made at their first sign-in (or when someone
        shares with them), their e-mail and display name kept in step afterwards. None when
        the entry's name cannot be a user name here, or is a local account's."""
        user = known if known is not None and known.username == entry.username else None
        user = user or await self.get_by_name(entry.username)
        if user is None:
            if not USERNAME.match(entry.username):
                log.warning("directory user %r cannot be a user here: not a valid user name", entry.username)
                return None
            try:
                user = await self.store.create_user(entry.username, entry.email, "!directory", source=DIRECTORY,
                                                    display_name=entry.name)  # fmt: skip
            except Conflict:  # the e-mail is a local account's; the name was taken meanwhile
                user = await self.get_by_name(entry.username)
                if user is None:
                    user = await self.store.create_user(entry.username, None, "!directory", source=DIRECTORY,
                                                        display_name=entry.name)  # fmt: skip
            await self.calendars.create_default(user)
            log.info("directory user %s made here", user.username)
            return user
        if user.source != DIRECTORY:
            return None  # a local account of that name is not the directory's to sign in
        if (user.email, user.display_name) != (entry.email, entry.name):
            try:
                user = await self.store.update_user(user.id, email=entry.email, display_name=entry.name) or user
            except Conflict:
                user = await self.store.update_user(user.id, display_name=entry.name) or user
        return user

    async def lookup(self, login: str) -> User | None:
        """A directory user by name or e-mail, made here if they have not signed in yet (so that
        they can be shared with and invited); None without a directory."""
        if self.directory is None:
            return None
        entry = await self.directory.find(login)
        return await self._from_directory(entry, None) if entry is not None else None

    async def findable(self, user: User, texts: Sequence[str]) -> list[User]:
        """Whom a principal search by ``user`` for ``texts`` may find: themself and those they
        share calendars with (``AccessService.directory``), and the account directory's users
        whose name, e-mail or display name holds one of the texts (made here as ``lookup`` does)."""
        found = {u.id: u for u in await self.calendars.access.directory(user)}
        if self.directory is None:
            return list(found.values())
        for text in {t.strip() for t in texts if len(t.strip()) >= 2}:
            for entry in await self.directory.search(text):
                made = await self._from_directory(entry, None)
                if made is not None:
                    found[made.id] = made
        return list(found.values())

    async def invite(self, email: str | None = None, days: int = 7) -> str:
        """An invitation to sign up (where ``[auth] signup = invitation``): its code, shown once."""
        if email is not None and not EMAIL.match(email):
            raise Invalid("email is not a valid e-mail address", field="email")
        code = new_secret()
        await self.store.add_signup_invitation(digest(code), email, int(time.time()) + days * 86400)
        return code

    async def authenticate(self, login: str, password: str, address: str = "") -> User | None:
        """The user with this username or e-mail and password, or None (also when the
        throttle refuses the attempt; while it slows an address, the attempt waits its turn)."""
        if not login or len(login) > 320 or len(password) > MAX_PASSWORD:
            return None  # no account has such a name or password: nothing to hash
        key = (login.lower(), digest(self._salt + password))
        cached = self._verified.get(key)
        if cached is not None and cached[2] > time.monotonic():
            user = await self.store.get_user(cached[0])
            if user is None or user.password_hash == cached[1]:
                return user
            self._verified.pop(key, None)  # the password changed: checked afresh
        # one check at a time of the same name, password and address: a client opening several
        # connections at once after a restart queued as many hashings (each a tenth of a second
        # of CPU in the one hashing thread), and held every request behind them for seconds
        checking = self._checking.get((*key, address))
        if checking is None:
            checking = asyncio.ensure_future(self._check(login, password, address, key))
            self._checking[(*key, address)] = checking
            checking.add_done_callback(lambda done: self._checked((*key, address), done))
        return await asyncio.shield(checking)

    def _checked(self, key: tuple[str, str, str], done: asyncio.Future[User | None]) -> None:
        del self._checking[key]
        if not done.cancelled():
            done.exception()  # retrieved here too: every request that waited for it may be gone

    async def _check(self, login: str, password: str, address: str, key: tuple[str, str]) -> User | None:
        """``authenticate`` past the remembered checks: the throttle, then the directory or the hash."""
        user = await self.store.find_user(login)
        account = f"#{user.id}" if user else login.lower()  # a username and an e-mail: one account
        attempt = await self.throttle.attempt(account, address)
        if attempt.wait is None:
            metrics().throttled.labels("refused").inc()
            return None
        if attempt.wait:
            metrics().throttled.labels("slowed").inc()
            await asyncio.sleep(attempt.wait)
        if self.directory is not None and (user is None or user.source == DIRECTORY):
            # the directory's password, checked every time (a change there counts at once)
            entry = await self.directory.verify(login, password)
            found = await self._from_directory(entry, user) if entry is not None else None
            if found is None:
                metrics().signin_failures.inc()
                await self.throttle.failed(account, address)
                return None
            await self.throttle.succeeded(account, address, attempt)
            return found
        if user is not None and user.source == DIRECTORY:  # the directory is not asked any more
            user = None
        ok, new_hash = await self.passwords.verify(password, user.password_hash if user else None)
        if not ok or user is None:
            metrics().signin_failures.inc()
            await self.throttle.failed(account, address)
            return None
        await self.throttle.succeeded(account, address, attempt)
        if new_hash:
            await self.store.update_user(user.id, password_hash=new_hash)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[key] = (user.id, new_hash or user.password_hash, time.monotonic() + VERIFIED_FOR)
        return user

    async def open_session(self, user: User, kind: str, timeout: int) -> str:
        """A new session id (only its hash is stored), valid while used within ``timeout`` s."""
        session = new_secret(24)
        await self.store.add_session(user.id, kind, digest(session), int(time.time()) + timeout)
        return session

    async def session_user(self, session: str | None, kind: str, timeout: int) -> User | None:
        """The user of a live session opened by the same door (``kind``: wcap or web)."""
        if not session or len(session) > 256:
            return None
        return await self.store.use_session(digest(session), kind, int(time.time()), timeout)

    async def close_session(self, session: str | None, kind: str) -> bool:
        if not session or len(session) > 256:
            return False
        return await self.store.delete_session(digest(session), kind)

    async def issue_token(self, user: User) -> str:
        token = new_secret()
        await self.store.add_token(user.id, digest(token))
        return token

    async def user_for_token(self, token: str | None) -> User | None:
        return await self.store.user_for_token(digest(token)) if token else None

    async def sign_out(self, user: User) -> None:
        """Revoke every token of the user (Timeslot's sign-out logs out every device)."""
        await self.store.delete_tokens(user.id)

    async def set_password(self, user: User, password: object) -> None:
        password_hash = await self.passwords.hash(self._check_password(password))
        await self.store.update_user(user.id, password_hash=password_hash)
        await self.store.delete_tokens(user.id)
        self._verified = {k: v for k, v in self._verified.items() if v[0] != user.id}

    async def change_password(self, user: User, current: str, new: object, address: str = "") -> None:
        """The user's own change: the current password first (throttled like a sign-in), then the
        new one; every API token is taken back, as with ``set_password``. A directory user's
        password is the directory's: Invalid."""
        if user.source == DIRECTORY:
            raise Invalid("your password is your organisation's directory's: change it there", field="new")
        if await self.authenticate(user.username, current, address) is None:
            raise Invalid("the current password is not right", field="current")
        await self.set_password(user, new)

    async def set_email(self, user: User, email: str) -> User:
        """A user's e-mail address (also where invitations reach them); Invalid when it is not an
        address or is another user's."""
        email = email.strip()
        if not EMAIL.match(email) or len(email) > 320:
            raise Invalid("email is not a valid e-mail address", field="email")
        try:
            updated = await self.store.update_user(user.id, email=email)
        except Conflict:
            raise Invalid(f"{email} is another user's address", field="email") from None
        if updated is None:
            raise NotFound("the user is gone")
        return updated

    async def tokens(self, user: User) -> list[tuple[int, str]]:
        """The user's API tokens: id and when issued (the tokens themselves are not kept)."""
        return await self.store.list_tokens(user.id)

    async def revoke_token(self, user: User, token_id: int) -> bool:
        return await self.store.delete_tokens(user.id, token_id) > 0

    async def set_admin(self, user: User, admin: bool) -> User:
        """Make a user an administrator of this server, or no longer."""
        updated = await self.store.update_user(user.id, is_admin=admin)
        if updated is None:
            raise NotFound("the user is gone")
        return updated

    async def set_type(self, user: User, cutype: str) -> User:
        """Make a user an individual, a room or a resource (rooms and resources answer
        invitations on their own: accepted when free, declined when busy)."""
        if cutype.upper() not in USER_TYPES:
            raise Invalid(f"a user is one of {', '.join(USER_TYPES).lower()}", field="type")
        updated = await self.store.update_user(user.id, cutype=cutype.upper())
        if updated is None:
            raise NotFound("the user is gone")
        return updated

    async def set_pref(self, user: User, key: str, value: object) -> User:
        """The user with one preference (a door's settings, WCAP's subscriptions) replaced."""
        updated = await self.store.update_user(user.id, prefs={**user.prefs, key: value})
        if updated is None:
            raise NotFound("the user is gone")
        return updated

    async def get(self, user_id: int) -> User | None:
        return await self.store.get_user(user_id)

    async def get_by_name(self, username: str) -> User | None:
        user = await self.store.find_user(username)
        return user if user and user.username.lower() == username.lower() else None

    async def all(self) -> list[User]:
        return await self.store.list_users()

    async def delete(self, user: User) -> None:
        await self.store.delete_user(user.id)
