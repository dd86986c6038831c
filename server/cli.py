"""The command line: ``python run.py serve | user add/passwd/list/delete | import | export``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from aiohttp import web

from protocol.ical.resources import keep_timezones
from server import demo
from server.app import create_app
from server.config import ROOT, Config, ConfigError, load
from server.http import SERVICES, iso_epoch
from server.lineage import parent_gone
from server.services import Services, opened
from server.services.errors import Invalid, NotFound, ServiceError
from server.services.imports import DELIMITERS, ImportRequest, Upload
from server.services.users import USER_TYPES
from server.urls import WEB
from server.workers import DRAIN, CannotListen, supervise
from storage import safe_url, store_for
from storage.errors import CannotOpen
from storage.model import Calendar, ImportJob, User
from storage.sql import SQLStore
from storage.sql.copy import copy_store

#: ``--format`` names of the exports (the REST door's names too)
EXPORT_FORMATS = ("ics", "google", "outlook", "timeslot")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="folder for the database (default ./data)")
    parser.add_argument("--config", help="an ini file (default conf/almanac.ini)")
    parser.add_argument("--store", help="store URL: sqlite:///file or postgresql://... (default: SQLite in --data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Almanac, a calendar server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the server")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--demo", action="store_true", help="create a demo user with a sample calendar")
    serve.add_argument("--workers", help="server processes sharing the port: a number, or auto for one per CPU")
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # which worker this is (set by the supervisor)

    user = commands.add_parser("user", help="manage users")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--email")
    add.add_argument("--admin", action="store_true", help="make the user an administrator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd = actions.add_parser("passwd", help="set a user's password (signs out their tokens)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    kind = actions.add_parser("set-type", help="make a user an individual, a room or a resource")
    kind.add_argument("name")
    kind.add_argument(
        "type",
        choices=[t.lower() for t in USER_TYPES],
        help="rooms and resources accept invitations when free and decline them when busy",
    )
    invite = actions.add_parser("invite", help="make a sign-up link (where [auth] signup = invitation)")
    invite.add_argument("--email", help="the address it is for (the account's, unless they give another)")
    invite.add_argument("--days", type=int, default=7, help="how long it can be used (default 7)")
    listing = actions.add_parser("list", help="list users")
    delete = actions.add_parser("delete", help="delete a user and all their calendars")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for sub in (add, passwd, kind, invite, listing, delete):
        _common(sub)

    load_file = commands.add_parser("import", help="import a calendar file for a user")
    load_file.add_argument("file", help="an .ics, Outlook .csv or Timeslot .json file")
    load_file.add_argument("--user", required=True, help="whose calendars receive it")
    load_file.add_argument("--calendar", help="name, slug or id of the calendar (default: as the file says)")
    load_file.add_argument("--type", choices=("autodetect", *EXPORT_FORMATS), default="autodetect")
    load_file.add_argument("--dtstart", help="keep only what happens from this date or time (ISO 8601)")
    load_file.add_argument("--dtend", help="... and before this one")
    load_file.add_argument("--field-delimiter", choices=sorted(DELIMITERS), help="CSV delimiter (default: detected)")
    load_file.add_argument(
        "--no-create-calendars", action="store_true", help="do not make the calendars the file names"
    )
    load_file.add_argument(
        "--skip-invalid", action="store_true", help="import the valid entries of a file with bad ones"
    )
    load_file.add_argument("--dry-run", action="store_true", help="only say what the import would do")
    _common(load_file)

    save = commands.add_parser("export", help="write a user's calendars to a file")
    save.add_argument("--user", required=True)
    save.add_argument("--calendar", help="name, slug or id of one calendar (default: all of them)")
    save.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    save.add_argument("--timezone", help="write times in this zone (ics, outlook)")
    save.add_argument("--output", "-o", help="file to write (default: standard output)")
    _common(save)

    move = commands.add_parser("migrate-store", help="copy a whole store into an empty one (SQLite to PostgreSQL)")
    move.add_argument(
        "--from", dest="source", required=True, help="the store to copy: sqlite:///... or postgresql://..."
    )
    move.add_argument("--to", dest="target", required=True, help="an empty store to fill")
    _common(move)
    return parser


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
            for each in await users.all():
                calendars = await services.calendars.of(each)
                events = sum(c.object_count or 0 for c in calendars)
                admin = " admin" if each.is_admin else ""
                kind = f" {each.cutype.lower()}" if each.cutype != "INDIVIDUAL" else ""
                print(
                    f"{each.username}\t{each.email or '-'}\t{len(calendars)} calendars\t{events} objects{admin}{kind}"
                )
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


async def build_timezones_aside() -> None:
    """WCAP clients ask for every VTIMEZONE at login, and building them takes seconds of CPU:
    build them in a helper process (so requests do not wait on the GIL meanwhile)."""
    code = "import sys, protocol.ical.resources as r; sys.stdout.write(r.build_all_timezones())"
    helper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        output, _ = await helper.communicate()
    finally:
        if helper.returncode is None:
            helper.kill()
            await helper.wait()
    if helper.returncode == 0 and output:
        keep_timezones(output.decode())


async def serve(config: Config, with_demo: bool, shared: bool = False) -> None:
    """Run until SIGINT/SIGTERM; say where once the port is bound (and, with the demo, how to use it).
    ``shared``: one of several workers on the port (``SO_REUSEPORT``)."""
    app = create_app(config)
    # keepalive_timeout closes a connection idle before, between or inside a request's headers
    # (aiohttp's default is an hour); bodies have their own idle timeout (server.http); the
    # unread rest of a refused body is drained for 2 s at most (aiohttp's default: 10).
    # SIGTERM and SIGINT drain: the listener closes, requests in flight get up to DRAIN seconds
    # to finish, then the app's cleanup stops the import workers (a running import is queued
    # again) and closes the store. (aiohttp's own signal handling would cancel every task,
    # the requests in flight with them.)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=config.idle_timeout, lingering_time=2)
    await runner.setup()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    if shared:  # a worker stops (draining) when its supervisor is gone, even by kill -9
        orphaned = asyncio.create_task(parent_gone(os.getppid()))
        orphaned.add_done_callback(lambda _: stopping.set())
    helper: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, config.host, config.port, shutdown_timeout=DRAIN, reuse_port=shared or None)
        try:
            await site.start()
        except OSError as error:
            raise CannotListen(config.host, config.port, error) from None
        port = runner.addresses[0][1]  # the port bound (config.port may be 0: any free one)
        print(f"Almanac listening on http://{config.host}:{port}/ (store: {safe_url(config.store_url)})", flush=True)
        if with_demo:
            print(await demo.prepare(app[SERVICES], f"http://{config.host}:{port}"), flush=True)
        helper = asyncio.create_task(build_timezones_aside())
        parsers = app[SERVICES].imports.parsers
        if parsers is not None:
            parsers.start()
        await stopping.wait()
    finally:
        if helper is not None:
            helper.cancel()
        await runner.cleanup()


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {("server", "data"): args.data, ("store", "url"): args.store}
    if args.command == "serve":
        overrides |= {("server", "host"): args.host, ("server", "port"): args.port, ("server", "workers"): args.workers}
    try:
        config = load(args.config, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "serve":
            if args.worker is not None:  # one of several: the supervisor chose the port
                config = replace(config, worker=args.worker)
            elif config.workers > 1:  # the workers get the options given here (the rest is settings)
                given = {"config": args.config, "data": args.data, "store": args.store, "host": args.host}
                worker_args = [f"--{name}={value}" for name, value in given.items() if value is not None]
                return asyncio.run(supervise(config, config.workers, worker_args + ["--demo"] * args.demo))
            with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
                asyncio.run(serve(config, args.demo and config.worker == 0, shared=args.worker is not None))
            return 0
        command = {
            "user": user_command, "import": import_command, "export": export_command,
            "migrate-store": migrate_store_command,
        }[args.command]  # fmt: skip
        return asyncio.run(command(config, args))
    except CannotOpen as error:
        where = "[store] url, ALMANAC_STORE_URL or --store"
        if config.store_url.startswith("sqlite"):
            where = "[server] data or [store] url, --data or --store"
        url = safe_url(config.store_url)
        print(f"error: cannot open the store {url}: {error} (it is set by {where})", file=sys.stderr)
        return 1
    except CannotListen as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ServiceError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # export | head
        return 0
    except OSError as error:  # a file to import or export that cannot be read or written
        print(f"error: {error}", file=sys.stderr)
        return 1
