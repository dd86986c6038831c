"""The command line: ``python run.py serve | user add/passwd/list/delete``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from protocol.ical import keep_timezones
from server import demo
from server.app import create_app
from server.config import ROOT, Config, ConfigError, load
from server.errors import Invalid
from server.services import SERVICES, opened


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="folder for the database (default ./data)")
    parser.add_argument("--config", help="an ini file (default conf/almanac.ini)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Almanac, a calendar server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the server")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--demo", action="store_true", help="create a demo user with a sample calendar")

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
    listing = actions.add_parser("list", help="list users")
    delete = actions.add_parser("delete", help="delete a user and all their calendars")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for sub in (add, passwd, listing, delete):
        _common(sub)
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
            for user in await users.list():
                calendars = await services.calendars.list(user)
                events = sum(c.object_count or 0 for c in calendars)
                admin = " admin" if user.is_admin else ""
                print(f"{user.username}\t{user.email or '-'}\t{len(calendars)} calendars\t{events} objects{admin}")
            return 0
        if args.action == "add":
            password = read_password(args.password_stdin)
            user = await users.create(args.name, password, args.email, is_admin=args.admin)
            print(f"created user {user.username}")
            return 0
        user = await users.get_by_name(args.name)
        if user is None:
            print(f"error: no user named {args.name}", file=sys.stderr)
            return 1
        if args.action == "passwd":
            await users.set_password(user, read_password(args.password_stdin))
            print(f"password of {user.username} changed; their tokens are signed out")
        elif args.action == "delete":
            if not args.yes and input(f"Delete {user.username} and all their calendars? [y/N] ").lower() != "y":
                print("nothing deleted")
                return 1
            await users.delete(user)
            print(f"deleted user {user.username}")
        return 0


async def build_timezones_aside() -> None:
    """WCAP clients ask for every VTIMEZONE at login, and building them takes seconds of CPU:
    build them in a helper process (so requests do not wait on the GIL meanwhile)."""
    code = "import sys; from protocol.ical import build_all_timezones; sys.stdout.write(build_all_timezones())"
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


async def serve(config: Config, with_demo: bool) -> None:
    """Run until SIGINT/SIGTERM; say where once the port is bound (and, with the demo, how to use it)."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    helper: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"Almanac listening on http://{config.host}:{port}/ (data in {config.data_dir})", flush=True)
        if with_demo:
            print(await demo.prepare(app[SERVICES], f"http://{config.host}:{port}"), flush=True)
        helper = asyncio.create_task(build_timezones_aside())
        await asyncio.Event().wait()
    finally:
        if helper is not None:
            helper.cancel()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {("server", "data"): args.data}
    if args.command == "serve":
        overrides |= {("server", "host"): args.host, ("server", "port"): args.port}
    try:
        config = load(args.config, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "serve":
            with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
                asyncio.run(serve(config, args.demo))
            return 0
        return asyncio.run(user_command(config, args))
    except Invalid as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
