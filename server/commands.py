"""The operator's commands (``run.py user | calendar | import | export | backup | check-config |
migrate-store``), each on the services over an opened store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib.metadata
import sqlite3
import sys
from pathlib import Path
from typing import TextIO

from server.config import Config
from server.http import iso_epoch
from server.services import Services, opened
from server.services.directory import Directory
from server.services.errors import Invalid, NotFound, ServiceError
from server.services.imports import DELIMITERS, ImportRequest, Upload
from server.urls import WEB
from storage import safe_url, store_for
from storage.errors import CannotOpen, StoreUnavailable
from storage.model import Calendar, ImportJob, User
from storage.sql import SQLStore
from storage.sql.copy import copy_store

try:
    VERSION = importlib.metadata.version("almanac")
except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
    VERSION = "(not installed)"


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise Invalid("the passwords do not match")
    return first


async def user_command(config: Config, args: argparse.Namespace) -> int:
    async with opened(config) as services:
        users = services.users
        if args.action == "list":
            everyone = await users.all()
            if everyone:
                print("user\te-mail\tcalendars\tobjects\tflags")
            for each in everyone:
                calendars = await services.calendars.of(each)
                events = sum(c.object_count or 0 for c in calendars)
                marks = (("admin", each.is_admin), (each.cutype.lower(), each.cutype != "INDIVIDUAL"),
                         ("directory", each.source != "local"))  # fmt: skip
                flags = [name for name, on in marks if on]
                counts = f"{len(calendars)} calendars\t{events} objects"
                print(f"{each.username}\t{each.email or '-'}\t{counts}\t{' '.join(flags) or '-'}")
            return 0
        if args.action == "invite":
            code = await users.invite(args.email, args.days)
            print(f"sign-up link, after the server's address (used once, for {args.days} days): "
                  f"{WEB}/signup?invitation={code}")  # fmt: skip
            return 0
        if args.action == "add":
            password = read_password(args.password_stdin)
            made = await users.create(args.name, password, args.email, is_admin=args.admin)
            print(f"created user {made.username}")
            return 0
        user = await users.get_by_name(args.name)
        if user is None:
            print(f"error: no user named {args.name}", file=sys.stderr)
            return 1
        if args.action == "passwd":
            await users.set_password(user, read_password(args.password_stdin))
            print(f"password of {user.username} changed; their tokens are signed out")
        elif args.action == "admin":
            await users.set_admin(user, args.state == "on")
            print(f"{user.username} is {'now' if args.state == 'on' else 'no longer'} an administrator")
        elif args.action == "set-type":
            await users.set_type(user, args.type)
            print(f"{user.username} is now a calendar user of type {args.type}")
        elif args.action == "delete":
            if not args.yes and input(f"Delete {user.username} and all their calendars? [y/N] ").lower() != "y":
                print("nothing deleted")
                return 1
            await users.delete(user)
            print(f"deleted user {user.username}")
        return 0


async def find_user(services: Services, name: str) -> User:
    user = await services.users.get_by_name(name)
    if user is None:
        raise NotFound(f"no user named {name}")
    return user


async def find_calendar(services: Services, user: User, name: str) -> Calendar:
    """A calendar of the user by id, slug or name."""
    for calendar in await services.calendars.of(user):
        if name in (calendar.uuid, calendar.slug, calendar.name):
            return calendar
    raise NotFound(f"{user.username} has no calendar called {name!r}")


class ProgressBar:
    """``[#######.............]  35%  3,500 of 10,000 written`` on standard error, redrawn in place."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, job: ImportJob) -> None:
        filled = job.progress // 5
        written = job.created + job.updated + job.unchanged
        detail = f"{written:,} of {job.total:,} written" if job.total else "reading the file"
        line = f"\r[{'#' * filled}{'.' * (20 - filled)}] {job.progress:3d}%  {detail}  "
        print(line, end="", file=self.stream, flush=True)

    def done(self) -> None:
        print(file=self.stream)


def print_line_errors(errors: list[dict[str, object]], count: int | None = None, limit: int = 20) -> None:
    """The first ``limit`` of the line errors (``count`` of them in all, of which ``errors`` lists the first)."""
    for error in errors[:limit]:
        print(f"  line {error['line']}: {error['error']}")
    count = len(errors) if count is None else count
    if count > limit:
        print(f"  ... and {count - limit:,} more")


async def import_command(config: Config, args: argparse.Namespace) -> int:
    async with opened(config) as services:
        user = await find_user(services, args.user)
        calendar = await find_calendar(services, user, args.calendar) if args.calendar else None
        try:
            start, end = (
                iso_epoch(value, name) for value, name in ((args.dtstart, "--dtstart"), (args.dtend, "--dtend"))
            )
        except ValueError as error:
            raise Invalid(str(error)) from None
        request = ImportRequest(
            door="cli", calendar=calendar, format=None if args.type == "autodetect" else args.type,
            filename=Path(args.file).name, start=start, end=end, create_calendars=not args.no_create_calendars,
            delimiter=DELIMITERS.get(args.field_delimiter or ""), skip_invalid=args.skip_invalid,
        )  # fmt: skip
        upload = Upload(path=Path(args.file))
        if args.dry_run:
            preview = await services.imports.preview(user, request, upload)
            print(
                f"{args.file} ({preview.format or 'unrecognised'}) would create {preview.created:,}, "
                f"update {preview.updated:,} and leave {preview.unchanged:,} unchanged; "
                f"{preview.discarded:,} outside the dates; {preview.line_error_count:,} line errors"
            )
            if preview.calendars:
                print("calendars it would make: " + ", ".join(preview.calendars))
            print_line_errors(preview.line_errors, preview.line_error_count)
            return 1 if preview.line_errors and not args.skip_invalid else 0
        bar = ProgressBar()
        try:
            job, _ = await services.imports.run(user, request, upload, progress=bar)
        except ServiceError as error:
            bar.done()
            print(f"error: {error.message}", file=sys.stderr)
            if isinstance(error, Invalid):
                print_line_errors(error.errors)
            return 1
        bar.done()
        print(
            f"import {job.id} complete: {job.created:,} created, {job.updated:,} updated, "
            f"{job.unchanged:,} unchanged, {job.discarded:,} discarded, calendars made: {len(job.calendars_created)}"
        )
        print_line_errors(job.errors, job.error_count)
        return 0


async def export_command(config: Config, args: argparse.Namespace) -> int:
    async with opened(config) as services:
        user = await find_user(services, args.user)
        chosen = (
            [await find_calendar(services, user, args.calendar)] if args.calendar else await services.calendars.of(user)
        )
        chunks = services.calendars.export(user, chosen, args.format, timezone=args.timezone)
        with (
            open(args.output, "w", encoding="utf-8", newline="")
            if args.output
            else contextlib.nullcontext(sys.stdout) as out
        ):
            async for chunk in chunks:
                out.write(chunk)
        return 0


async def migrate_store_command(config: Config, args: argparse.Namespace) -> int:
    """Copy every row (ids, hrefs, ETags, sync revisions, sessions, imports with their undo
    data) into an empty store, then compare both table by table; 1 when anything differs."""
    async with contextlib.AsyncExitStack() as opened_stores:
        stores = []
        for url, flag in ((args.source, "--from"), (args.target, "--to")):
            try:
                store = store_for(url, readers=config.readers, pool_size=config.pool_size)
                assert isinstance(store, SQLStore)
                await store.open()
            except (CannotOpen, ValueError) as error:
                print(f"error: cannot open the store {safe_url(url)}: {error} (it is set by {flag})", file=sys.stderr)
                return 1
            opened_stores.push_async_callback(store.close)
            stores.append(store)
        print(f"copying {safe_url(args.source)} to {safe_url(args.target)}", flush=True)
        try:
            results = await copy_store(stores[0], stores[1], lambda line: print(f"  {line}", flush=True))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    for each in results:
        verdict = "same" if each.same else f"DIFFERENT: {each.target_rows} rows, sha256 {each.target_digest[:16]}"
        print(f"{each.table:15} {each.rows:9} rows  sha256 {each.digest[:16]}  {verdict}")
    if all(each.same for each in results):
        print("every table holds the same rows in both stores", flush=True)
        return 0
    print("error: the copy differs from its source (see above)", file=sys.stderr)
    return 1


async def calendar_command(config: Config, args: argparse.Namespace) -> int:
    """``calendar list``: every calendar (or one user's) with its owner, events and shares;
    ``calendar share``: share one as its owner would (through the same rule as every door)."""
    async with opened(config) as services:
        if args.action == "list":
            owners = [await find_user(services, args.user)] if args.user else await services.users.all()
            print("owner\tcalendar\tslug\tevents\tshared with\tid")
            for owner in owners:
                for calendar in await services.calendars.of(owner):
                    grants = await services.access.grantees(owner, calendar)
                    shares = ", ".join(f"{u.username if u else 'everyone'} ({g.level}, {g.state})" for g, u in grants)
                    print(f"{owner.username}\t{calendar.name}\t{calendar.slug}\t{calendar.object_count or 0}\t"
                          f"{shares or '-'}\t{calendar.uuid}")  # fmt: skip
            return 0
        owner = await find_user(services, args.owner)
        calendar = await find_calendar(services, owner, args.calendar)
        grantee = await services.calendars.owner_of(args.grantee, by_email="@" in args.grantee)
        if grantee is None:
            raise NotFound(f"no user {args.grantee}")
        if args.level == "none":
            grant = await services.access.grant_to(grantee, calendar)
            if grant is None:
                raise NotFound(f"{calendar.name} is not shared with {grantee.username}")
            await services.access.revoke(owner, calendar, grant)
            print(f"{owner.username}'s {calendar.name} is no longer shared with {grantee.username}")
        else:
            await services.access.share(owner, calendar, grantee, args.level)
            print(f"{owner.username}'s {calendar.name} is shared with {grantee.username} ({args.level}): "
                  "they see it once they accept")  # fmt: skip
        return 0


async def backup_command(config: Config, args: argparse.Namespace) -> int:
    """SQLite: a consistent copy of the store while it serves (SQLite's online backup). For
    PostgreSQL, what to run instead."""
    target = Path(args.file)
    if not config.store_url.startswith("sqlite"):
        print(f"the store is PostgreSQL: back it up with its own tool, e.g.\n  pg_dump --format=custom "
              f"--file={target} '{safe_url(config.store_url)}'")  # fmt: skip
        return 0
    if target.exists():
        raise Invalid(f"{target} exists: a backup goes to a new file")
    source = config.store_url.removeprefix("sqlite:///")
    if not Path(source).exists():
        raise NotFound(f"there is no store at {source}")

    def copy() -> None:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reading, sqlite3.connect(target) as written:
            reading.backup(written, pages=1024)

    await asyncio.to_thread(copy)
    print(f"the store is copied to {target} ({target.stat().st_size:,} bytes)")
    return 0


async def check_config_command(config: Config, args: argparse.Namespace) -> int:
    """The settings read (or main said what is wrong), then each thing they name reached: one
    line each, and 1 when something is wrong."""
    problems = 0

    def say(ok: bool, line: str) -> None:
        nonlocal problems
        problems += not ok
        print(f"{'ok' if ok else 'error'}: {line}")

    say(True, f"settings read (data in {config.data_dir}, {config.workers} worker(s))")
    store = store_for(config.store_url)
    try:
        await store.open()
        why = await store.readiness()
        say(why is None, f"the store {safe_url(config.store_url)} " + (why or "answers, its schema is current"))
        await store.close()
    except (CannotOpen, StoreUnavailable) as error:
        say(False, f"the store {safe_url(config.store_url)} cannot be opened: {error}")
    if config.ldap is not None:
        directory = Directory(config.ldap)
        try:
            found = await directory.search("a", limit=1)
            say(True, f"the directory {config.ldap.url} answers ({len(found)} user(s) found for a test search)")
        except StoreUnavailable as error:
            say(False, f"the directory {config.ldap.url}: {error}")
        finally:
            directory.close()
    if config.smtp_host:
        try:
            async with asyncio.timeout(10):
                await asyncio.open_connection(config.smtp_host, config.smtp_port)
            say(True, f"the mail server {config.smtp_host}:{config.smtp_port} answers")
        except (OSError, TimeoutError) as error:
            say(False, f"the mail server {config.smtp_host}:{config.smtp_port}: {error or 'no answer'}")
    if config.metrics_listen:
        say(True, f"metrics at http://{config.metrics_listen}/metrics")
    return 1 if problems else 0
