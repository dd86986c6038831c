"""Settings: built-in defaults < an ini file < ALMANAC_* environment variables < flags.

Every setting is ``section.key``; its environment variable is ``ALMANAC_SECTION_KEY``
(``ALMANAC_SERVER_PORT=9000``). ``conf/almanac.ini`` documents them all with their defaults.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from storage import SCHEMES, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = ROOT / "conf" / "almanac.ini"

#: (section, key) -> default, as text; the single source of truth for defaults
DEFAULTS: dict[tuple[str, str], str] = {
    ("server", "host"): "127.0.0.1",
    ("server", "port"): "8080",
    ("server", "data"): "./data",
    ("server", "log_level"): "INFO",
    ("server", "log_format"): "text",
    ("server", "idle_timeout"): "30",
    ("server", "secure_cookies"): "auto",
    ("server", "workers"): "1",
    ("server", "trusted_proxies"): "",
    ("store", "url"): "",
    ("store", "readers"): "2",
    ("store", "pool_size"): "10",
    ("store", "statement_timeout"): "30",
    ("auth", "password_scheme"): "argon2",
    ("auth", "min_password_length"): "8",
    ("auth", "signup"): "open",
    ("auth", "backend"): "local",
    ("auth", "login_failures"): "10",
    ("auth", "login_window"): "300",
    ("limits", "max_upload_bytes"): "104857600",
    ("limits", "max_components"): "200000",
    ("limits", "max_instances"): "10000",
    ("imports", "default_group"): "Imports",
    ("imports", "workers"): "2",
    ("imports", "lease"): "30",
    ("imports", "parse_processes"): "1",
    ("wcap", "session_timeout"): "1800",
    ("web", "session_timeout"): "604800",
    ("scheduling", "free_busy"): "grants",
    ("scheduling", "inbox_days"): "30",
    ("smtp", "host"): "",
    ("smtp", "port"): "25",
    ("smtp", "username"): "",
    ("smtp", "password"): "",
    ("smtp", "starttls"): "auto",
    ("smtp", "sender"): "",
    ("smtp", "receiver"): "",
    ("smtp", "rsvp_url"): "",
    ("metrics", "listen"): "",
    ("ldap", "url"): "",
    ("ldap", "bind_dn"): "",
    ("ldap", "bind_password"): "",
    ("ldap", "base"): "",
    ("ldap", "filter"): "(&(objectClass=inetOrgPerson)(|(uid={login})(mail={login})))",
    ("ldap", "username_attribute"): "uid",
    ("ldap", "email_attribute"): "mail",
    ("ldap", "name_attribute"): "cn",
    ("ldap", "group"): "",
    ("ldap", "group_attribute"): "member",
    ("ldap", "timeout"): "5",
    ("ldap", "pool_size"): "4",
}
#: whose busy times a signed-in user may see: as the grants say, or every user's
FREE_BUSY = ("grants", "everyone")


#: what ``[server] log_level`` may be
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting has a value Almanac cannot use."""


@dataclass(frozen=True, slots=True)
class Config:
    host: str
    port: int
    data_dir: Path
    log_level: str
    idle_timeout: int
    secure_cookies: str
    workers: int  #: server processes sharing the port
    trusted_proxies: frozenset[str]  #: peers whose X-Forwarded-For names the client
    store_url: str  #: sqlite:///... or postgresql://...
    readers: int
    pool_size: int
    statement_timeout: int
    password_scheme: str
    min_password_length: int
    login_failures: int
    login_window: int
    max_upload_bytes: int
    max_components: int
    max_instances: int
    import_group: str
    import_workers: int
    import_lease: int  #: seconds; an import whose runner stops renewing is rolled back after it
    parse_processes: int  #: helper processes reading a big import's plain components (0: none)
    session_timeout: int
    web_session_timeout: int
    #: ``everyone``: every signed-in user sees every user's busy times; ``grants``: as far as
    #: their freebusy grants reach
    free_busy: str = "grants"
    #: who may make an account: ``open`` (anyone, at REST's POST /v1/users and the web's sign-up
    #: page), ``invitation`` (with a code from ``run.py user invite``) or ``closed`` (only an
    #: operator: ``run.py user add``)
    signup: str = "open"
    inbox_days: int = 30  #: days a scheduling message stays in an inbox
    #: the mail server invitations to people outside go through (iMIP); empty: none are mailed
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: str = "auto"  #: auto (when the server offers it), always, never
    #: the address mail is sent from; replies go to it with a token: sender+TOKEN@domain
    smtp_sender: str = ""
    #: host:port where this server takes attendees' answers by mail (SMTP; a mail server forwards
    #: sender+TOKEN@domain here); empty: none are taken
    smtp_receiver: str = ""
    #: the RSVP page's address as attendees reach it, the token appended
    #: (https://calendar.example.org/app/rsvp/): invitations by mail carry a link to answer on
    #: a web page, without a calendar program; empty: none
    smtp_rsvp_url: str = ""
    #: ``text`` (a line a person reads) or ``json`` (one object per line, for a log collector)
    log_format: str = "text"
    #: the account directory (``[auth] backend = ldap``); None: accounts are this server's own
    ldap: Ldap | None = None
    #: host:port where Prometheus scrapes /metrics (a port of its own, never the public one); "": off
    metrics_listen: str = ""
    #: which of ``serve --workers N`` this process is (not a setting: the server numbers them)
    worker: int = 0


#: the [ldap] settings that name attributes
ATTRIBUTES = ("username_attribute", "email_attribute", "name_attribute", "group_attribute")


@dataclass(frozen=True, slots=True)
class Ldap:
    """Where accounts come from when ``[auth] backend = ldap`` (see conf/almanac.ini)."""

    url: str
    bind_dn: str
    bind_password: str
    base: str
    filter: str  #: who a sign-in name is: ``{login}`` stands for it (escaped)
    username_attribute: str
    email_attribute: str
    name_attribute: str
    group: str  #: the DN of a group whose members may sign in ("": anyone the filter finds)
    group_attribute: str  #: the group's attribute naming members: member, uniqueMember (DNs) or memberUid
    timeout: int  #: seconds a connection, a bind or a search may take
    pool_size: int  #: connections (and threads) per process


def setting(section: str, key: str) -> str:
    """A setting as a person finds it: in the ini file and in the environment."""
    return f"[{section}] {key} (ALMANAC_{section.upper()}_{key.upper()})"


def _address(values: Mapping[tuple[str, str], str], key: tuple[str, str]) -> str:
    """host:port, or "" (off)."""
    value = values[key].strip()
    host, _, port = value.rpartition(":")
    if value and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise ConfigError(f"{setting(*key)} must be host:port (like 127.0.0.1:9464), not {value!r}")
    return value


def _choice(values: Mapping[tuple[str, str], str], key: tuple[str, str], choices: tuple[str, ...]) -> str:
    value = values[key].strip().lower()
    if value not in choices:
        raise ConfigError(f"{setting(*key)} must be {' or '.join(choices)}, not {value!r}")
    return value


def _integer(values: Mapping[tuple[str, str], str], key: tuple[str, str], minimum: int = 0) -> int:
    raw = values[key]
    try:
        number = int(raw)
    except ValueError:
        raise ConfigError(f"{setting(*key)} must be a whole number, not {raw!r}") from None
    if number < minimum:
        raise ConfigError(f"{setting(*key)} must be at least {minimum}, not {number}")
    return number


def _workers(raw: str) -> int:
    if raw == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{setting('server', 'workers')} must be auto or a whole number of at least 1, not {raw!r}")
    return int(raw)


def load(
    config_file: str | Path | None = None,
    overrides: Mapping[tuple[str, str], str | int | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Settings from the defaults, the ini file (``conf/almanac.ini`` when not given), the
    environment and explicit overrides (command-line flags; None values are ignored)."""
    environ = os.environ if environ is None else environ
    values = dict(DEFAULTS)
    path = Path(config_file or environ.get("ALMANAC_CONFIG") or DEFAULT_CONFIG_FILE)
    if config_file or environ.get("ALMANAC_CONFIG") or path.exists():
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path, encoding="utf-8")
        for section in parser.sections():
            for key, value in parser.items(section):
                if (section, key) not in DEFAULTS:
                    raise ConfigError(f"{path}: unknown setting {section}.{key}")
                values[(section, key)] = value
    for section, key in DEFAULTS:
        name = f"ALMANAC_{section}_{key}".upper()
        if name in environ:
            values[(section, key)] = environ[name]
    for given_for, given in (overrides or {}).items():
        if given is not None:
            values[given_for] = str(given)
    data_dir = Path(values[("server", "data")]).expanduser()
    store_url = values[("store", "url")] or sqlite_url(data_dir / "almanac.sqlite3")
    if urlsplit(store_url).scheme not in SCHEMES:
        raise ConfigError(f"{setting('store', 'url')} must start with sqlite:/// or postgresql://, not {store_url!r}")
    scheme = values[("auth", "password_scheme")]
    secure_cookies = values[("server", "secure_cookies")].lower()
    if secure_cookies not in ("auto", "always"):
        raise ConfigError(f"{setting('server', 'secure_cookies')} must be auto or always, not {secure_cookies!r}")
    log_level = values[("server", "log_level")].upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"{setting('server', 'log_level')} must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    free_busy = values[("scheduling", "free_busy")].lower()
    if free_busy not in FREE_BUSY:
        raise ConfigError(f"{setting('scheduling', 'free_busy')} must be grants or everyone, not {free_busy!r}")
    starttls = values[("smtp", "starttls")].lower()
    if starttls not in ("auto", "always", "never"):
        raise ConfigError(f"{setting('smtp', 'starttls')} must be auto, always or never, not {starttls!r}")
    sender = values[("smtp", "sender")].strip()
    if values[("smtp", "host")].strip() and "@" not in sender:
        needed = f"{setting('smtp', 'sender')} must be an e-mail address"
        raise ConfigError(f"{needed} when {setting('smtp', 'host')} is set")
    receiver = values[("smtp", "receiver")].strip()
    if receiver and (":" not in receiver or not receiver.rpartition(":")[2].isdigit() or "@" not in sender):
        raise ConfigError(f"{setting('smtp', 'receiver')} must be host:port, with {setting('smtp', 'sender')} set")
    if scheme not in ("argon2", "bcrypt"):
        raise ConfigError(f"{setting('auth', 'password_scheme')} must be argon2 or bcrypt, not {scheme!r}")
    ldap = None
    if _choice(values, ("auth", "backend"), ("local", "ldap")) == "ldap":
        ldap = Ldap(
            **{key: values[("ldap", key)].strip() for key in ("url", "bind_dn", "base", "filter", "group")},
            bind_password=values[("ldap", "bind_password")],
            **{key: values[("ldap", key)].strip() for key in ATTRIBUTES},
            timeout=_integer(values, ("ldap", "timeout"), 1),
            pool_size=_integer(values, ("ldap", "pool_size"), 1),
        )  # fmt: skip
        if urlsplit(ldap.url).scheme not in ("ldap", "ldaps") or not ldap.base or "{login}" not in ldap.filter:
            needed = f"{setting('ldap', 'url')} (ldap:// or ldaps://), {setting('ldap', 'base')} and "
            raise ConfigError(
                f"{setting('auth', 'backend')} = ldap needs {needed}{setting('ldap', 'filter')} with {{login}}"
            )
    return Config(
        host=values[("server", "host")],
        port=_integer(values, ("server", "port"), 0),
        data_dir=data_dir,
        log_level=log_level,
        idle_timeout=_integer(values, ("server", "idle_timeout"), 1),
        secure_cookies=secure_cookies,
        workers=_workers(values[("server", "workers")]),
        trusted_proxies=frozenset(a.strip() for a in values[("server", "trusted_proxies")].split(",") if a.strip()),
        store_url=store_url,
        readers=_integer(values, ("store", "readers"), 1),
        pool_size=_integer(values, ("store", "pool_size"), 1),
        statement_timeout=_integer(values, ("store", "statement_timeout"), 1),
        password_scheme=scheme,
        min_password_length=_integer(values, ("auth", "min_password_length"), 1),
        login_failures=_integer(values, ("auth", "login_failures"), 1),
        login_window=_integer(values, ("auth", "login_window"), 1),
        max_upload_bytes=_integer(values, ("limits", "max_upload_bytes"), 1),
        max_components=_integer(values, ("limits", "max_components"), 1),
        max_instances=_integer(values, ("limits", "max_instances"), 1),
        import_group=values[("imports", "default_group")],
        import_workers=_integer(values, ("imports", "workers"), 1),
        import_lease=_integer(values, ("imports", "lease"), 2),
        parse_processes=_integer(values, ("imports", "parse_processes")),
        session_timeout=_integer(values, ("wcap", "session_timeout"), 1),
        web_session_timeout=_integer(values, ("web", "session_timeout"), 60),
        free_busy=free_busy,
        signup=_choice(values, ("auth", "signup"), ("open", "closed", "invitation")),
        inbox_days=_integer(values, ("scheduling", "inbox_days"), 1),
        smtp_host=values[("smtp", "host")].strip(),
        smtp_port=_integer(values, ("smtp", "port"), 1),
        smtp_username=values[("smtp", "username")],
        smtp_password=values[("smtp", "password")],
        smtp_starttls=starttls,
        smtp_sender=sender,
        smtp_receiver=receiver,
        smtp_rsvp_url=values[("smtp", "rsvp_url")].strip(),
        ldap=ldap,
        metrics_listen=_address(values, ("metrics", "listen")),
        log_format=_choice(values, ("server", "log_format"), ("text", "json")),
    )
