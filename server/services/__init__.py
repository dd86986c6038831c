"""The services every door shares, built once per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from server.config import Config
from server.metrics import metrics
from server.services.access import AccessService
from server.services.agenda import AgendaService
from server.services.auth import LoginThrottle, Passwords
from server.services.calendars import CalendarService
from server.services.directory import Directory
from server.services.imports import FileReader, ImportService, ParseProcesses
from server.services.mail import MailSender
from server.services.objects import ObjectService
from server.services.scheduling import SchedulingService
from server.services.users import UserService
from storage import store_for
from storage.base import Store


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    users: UserService
    calendars: CalendarService
    objects: ObjectService  #: one object at a time: the only way a door writes one
    imports: ImportService
    access: AccessService  #: who may do what with a calendar; every calendars call asks it
    scheduling: SchedulingService  #: meetings: what a write delivers, inboxes, free/busy (RFC 6638)
    mail: MailSender  #: sends the queued invitations to people outside the server (iMIP)
    agenda: AgendaService  #: what the calendar pages show: occurrences in a window, search

    async def readiness(self) -> str | None:
        """None when the server can serve (its store answers, its schema is current); else why not."""
        return await self.store.readiness()


def build(config: Config, store: Store | None = None) -> Services:
    store = store or store_for(
        config.store_url, readers=config.readers, pool_size=config.pool_size,
        statement_timeout=config.statement_timeout,
    )  # fmt: skip
    store.observe(lambda kind, seconds: metrics().stored(kind, seconds))
    access = AccessService(store)
    calendars = CalendarService(store, access)
    throttle = LoginThrottle(store, config.login_failures, config.login_window)
    passwords = Passwords(config.password_scheme)
    directory = Directory(config.ldap) if config.ldap else None
    users = UserService(
        store, passwords, calendars, config.min_password_length, throttle, signup=config.signup, directory=directory
    )
    if directory is not None:
        calendars.elsewhere = users.lookup
    spool = config.data_dir / "imports" / f"worker-{config.worker}"  #: this process's uploads on their way in
    reader = FileReader(config, spool, ParseProcesses(config.parse_processes) if config.parse_processes else None)
    scheduling = SchedulingService(store, calendars, config)
    objects = ObjectService(store, calendars, scheduling, reader, config)
    imports = ImportService(store, calendars, reader, config)
    mail = MailSender(store, config)
    return Services(
        config, store, users, calendars, objects, imports, access, scheduling, mail, AgendaService(store, calendars)
    )


@asynccontextmanager
async def opened(config: Config) -> AsyncIterator[Services]:
    """Services on an open store, for the command line."""
    services = build(replace(config, worker=-1))  # the command line: not one of the server's workers
    await services.store.open()
    try:
        yield services
    finally:
        await services.store.close()
