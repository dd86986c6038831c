"""The command line: ``python run.py serve | user add/passwd/list/delete | import | export``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web

from protocol.ical.resources import keep_timezones
from server import demo
from server import metrics as server_metrics
from server.app import create_app
from server.commands import (
    VERSION,
    backup_command,
    calendar_command,
    check_config_command,
    export_command,
    import_command,
    migrate_store_command,
    user_command,
)
from server.config import ROOT, Config, ConfigError, load
from server.http import SERVICES
from server.lineage import parent_gone
from server.services.errors import ServiceError
from server.services.imports import DELIMITERS
from server.services.users import USER_TYPES
from server.workers import DRAIN, CannotListen, supervise
from storage import safe_url
from storage.errors import CannotOpen

#: ``--format`` names of the exports (the REST door's names too)
EXPORT_FORMATS = ("ics", "google", "outlook", "timeslot")


TEXT_LOG = "%(asctime)s %(levelname)s %(name)s %(message)s"
log = logging.getLogger("almanac.server")


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and a request's own fields
    (method, path, status, ms, user, client, request_id, agent)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }  # fmt: skip
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="folder for the database (default ./data)")
    parser.add_argument("--config", help="an ini file (default conf/almanac.ini)")
    parser.add_argument("--store", help="store URL: sqlite:///file or postgresql://... (default: SQLite in --data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Almanac, a calendar server.")
    parser.add_argument("--version", action="version", version=f"Almanac {VERSION}")
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
    admin = actions.add_parser("admin", help="make a user an administrator of this server, or no longer")
    admin.add_argument("name")
    admin.add_argument("state", choices=("on", "off"))
    listing = actions.add_parser("list", help="list users (with a header line)")
    delete = actions.add_parser("delete", help="delete a user and all their calendars")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for sub in (add, passwd, kind, invite, admin, listing, delete):
        _common(sub)

    load_file = commands.add_parser("import", help="import a calendar file for a user")
    load_file.add_argument("file", help="an .ics, Outlook .csv or Timeslot .json file")
    load_file.add_argument("--user", required=True, help="whose calendars receive it")
    load_file.add_argument("--calendar", help="name, slug or id of the calendar (default: as the file says)")
    load_file.add_argument("--type", choices=("autodetect", *EXPORT_FORMATS), default="autodetect")
    load_file.add_argument("--dtstart", help="keep only what happens from this date or time (ISO 8601)")
    load_file.add_argument("--dtend", help="... and before this one")
    load_file.add_argument("--field-delimiter", choices=sorted(DELIMITERS), metavar="DELIMITER",
                           help="a CSV file's delimiter: , ; | or tab (default: detected)")  # fmt: skip
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

    calendar = commands.add_parser("calendar", help="list calendars, share one")
    doing = calendar.add_subparsers(dest="action", required=True)
    listed = doing.add_parser("list", help="every calendar (or one user's) with its owner, events and shares")
    listed.add_argument("--user", help="only this user's")
    shared = doing.add_parser("share", help="share a user's calendar with another user, as its owner would")
    shared.add_argument("owner", help="whose calendar")
    shared.add_argument("calendar", help="its name, slug or id")
    shared.add_argument("--with", dest="grantee", required=True, help="the user (or e-mail) it is shared with")
    shared.add_argument("--level", required=True, choices=("freebusy", "read", "read-write", "admin", "none"),
                        help="what they may do (none: take the share back)")  # fmt: skip
    for sub in (listed, shared):
        _common(sub)

    backup = commands.add_parser("backup", help="copy the store to a file while it serves (SQLite)")
    backup.add_argument("file", help="where the copy goes (a new SQLite file)")
    _common(backup)

    check = commands.add_parser("check-config", help="read the settings, reach the store and the directory")
    _common(check)

    move = commands.add_parser("migrate-store", help="copy a whole store into an empty one (SQLite to PostgreSQL)")
    move.add_argument(
        "--from", dest="source", required=True, help="the store to copy: sqlite:///... or postgresql://..."
    )
    move.add_argument("--to", dest="target", required=True, help="an empty store to fill")
    _common(move)
    return parser


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


async def serve_metrics(address: str, shared: bool) -> web.AppRunner:
    """GET /metrics for Prometheus on a port of its own (shared by the workers)."""

    async def scrape(request: web.Request) -> web.Response:
        text = await asyncio.to_thread(server_metrics.metrics().scrape)  # reads the workers' files
        return web.Response(body=text, headers={"Content-Type": server_metrics.CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = address.rpartition(":")
    try:
        await web.TCPSite(runner, host, int(port), reuse_port=shared or None).start()
    except OSError as error:
        await runner.cleanup()
        raise CannotListen(host, int(port), error) from None
    return runner


async def serve(config: Config, with_demo: bool, shared: bool = False) -> None:
    """Run until SIGINT/SIGTERM; say where once the port is bound (and, with the demo, how to use it).
    ``shared``: one of several workers on the port (``SO_REUSEPORT``)."""
    if config.metrics_listen:  # before any metric is made: the workers' figures are shared
        server_metrics.share(config.data_dir / "metrics", fresh=not shared)
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
    scraped: web.AppRunner | None = None
    try:
        if config.metrics_listen:
            scraped = await serve_metrics(config.metrics_listen, shared)
        site = web.TCPSite(runner, config.host, config.port, shutdown_timeout=DRAIN, reuse_port=shared or None)
        try:
            await site.start()
        except OSError as error:
            raise CannotListen(config.host, config.port, error) from None
        port = runner.addresses[0][1]  # the port bound (config.port may be 0: any free one)
        log.info("Almanac %s started on %s:%d (worker %d, pid %d, store %s)", VERSION, config.host, port,
                 config.worker, os.getpid(), safe_url(config.store_url))  # fmt: skip
        print(f"Almanac listening on http://{config.host}:{port}/ (store: {safe_url(config.store_url)})", flush=True)
        if with_demo:
            print(await demo.prepare(app[SERVICES], f"http://{config.host}:{port}"), flush=True)
        helper = asyncio.create_task(build_timezones_aside())
        parsers = app[SERVICES].imports.parsers
        if parsers is not None:
            parsers.start()
        server_metrics.metrics().workers.set(1)
        await stopping.wait()
    finally:
        if helper is not None:
            helper.cancel()
        await runner.cleanup()
        if scraped is not None:
            await scraped.cleanup()
        log.info("Almanac stopped (worker %d, pid %d)", config.worker, os.getpid())


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
    handler = logging.StreamHandler(sys.stdout)  # the log; what stops a command is one line on stderr
    handler.setFormatter(JsonLines() if config.log_format == "json" else logging.Formatter(TEXT_LOG))
    level = logging.getLevelName(config.log_level)  # a command says what it did itself: its log is for problems
    logging.basicConfig(level=level if args.command == "serve" else max(level, logging.WARNING), handlers=[handler])
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
            "migrate-store": migrate_store_command, "calendar": calendar_command, "backup": backup_command,
            "check-config": check_config_command,
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
