"""run.py as a user runs it: users, settings, and `serve --demo` answering on every route it prints."""

from __future__ import annotations

import configparser
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from server.config import DEFAULT_CONFIG_FILE, DEFAULTS, ConfigError, load
from tests.helpers import POSTGRES, ROOT, free_port, run


def test_user_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    password = "analytical engine\n"
    added = run("user", "add", "ada", "--email", "ada@example.org", "--password-stdin", "--data", data, stdin=password)
    assert added.returncode == 0, added.stderr
    assert run("user", "add", "ada", "--password-stdin", "--data", data, stdin="analytical engine\n").returncode == 1
    short = run("user", "add", "bob", "--password-stdin", "--data", data, stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    listed = run("user", "list", "--data", data)
    header, row = listed.stdout.splitlines()
    assert header == "user\te-mail\tcalendars\tobjects\tflags" and row.startswith("ada\tada@example.org\t1 calendars")
    assert run("user", "admin", "ada", "on", "--data", data).returncode == 0
    assert run("user", "list", "--data", data).stdout.splitlines()[1].endswith("\tadmin")
    assert run("user", "admin", "ada", "off", "--data", data).returncode == 0
    assert run("user", "list", "--data", data).stdout.splitlines()[1].endswith("\t-")
    assert run("user", "passwd", "ada", "--password-stdin", "--data", data, stdin="difference engine\n").returncode == 0
    assert run("user", "passwd", "nobody", "--password-stdin", "--data", data, stdin="whatever1\n").returncode == 1
    assert run("user", "delete", "ada", "--yes", "--data", data).returncode == 0
    assert run("user", "list", "--data", data).stdout == ""
    invited = run("user", "invite", "--email", "bea@example.org", "--days", "2", "--data", data)
    assert invited.returncode == 0 and re.search(r"/app/signup\?invitation=[\w-]{20,}$", invited.stdout.strip())
    assert "--days" in run("user", "invite", "--help").stdout
    with pytest.raises(ConfigError):
        load(None, {("auth", "signup"): "sometimes"}, {})


def test_settings_precedence(tmp_path: Path) -> None:
    ini = tmp_path / "almanac.ini"
    ini.write_text("[server]\nport = 9001\nhost = 0.0.0.0\n[limits]\nmax_components = 5\n")
    env = {"ALMANAC_SERVER_PORT": "9002", "ALMANAC_LIMITS_MAX_UPLOAD_BYTES": "1000"}
    config = load(ini, {("server", "port"): 9003}, env)
    assert (config.port, config.host, config.max_components, config.max_upload_bytes) == (9003, "0.0.0.0", 5, 1000)
    assert load(ini, {}, env).port == 9002
    with pytest.raises(ConfigError):
        load(ini, {("server", "port"): "eighty"}, {})
    ini.write_text("[server]\ncolour = blue\n")
    with pytest.raises(ConfigError):
        load(ini, {}, {})
    bad = run("user", "list", "--config", str(tmp_path / "missing.ini"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_conf_file_documents_every_setting_with_its_default() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(DEFAULT_CONFIG_FILE)
    documented = {(section, key): value for section in parser.sections() for key, value in parser.items(section)}
    assert documented == DEFAULTS


def test_serve_demo_answers_what_it_prints(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "run.py", "serve", "--demo", "--port", str(port), "--data", str(tmp_path / "data")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output = ""
        deadline = time.monotonic() + 30
        while "curl" not in output and time.monotonic() < deadline:
            output += server.stdout.readline()  # type: ignore[union-attr]
        output += "".join(server.stdout.readline() for _ in range(4))  # type: ignore[union-attr]
        token = re.search(r"Token token=([\w-]+)", output).group(1)  # type: ignore[union-attr]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/export/timeslot", method="POST",
            headers={"Authorization": f"Token token={token}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            slots = json.load(response)
        assert {"Stand-up", "Lunch with Ada", "Team offsite", "Send the slides"} <= {s["title"] for s in slots}
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_import_and_export_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert run("user", "add", "ada", "--password-stdin", "--data", data, stdin="analytical engine\n").returncode == 0
    bad = (ROOT / "tests" / "data" / "recurring.ics").read_text().replace("DTSTART:20250210T083000", "DTSTART:x", 1)
    (tmp_path / "bad.ics").write_text(bad)
    preview = run("import", str(tmp_path / "bad.ics"), "--user", "ada", "--calendar", "Calendar", "--dry-run",
                  "--data", data)  # fmt: skip
    assert preview.returncode == 1 and "would create 4, update 0" in preview.stdout
    assert re.search(r"line \d+: .*DTSTART", preview.stdout)
    refused = run("import", str(tmp_path / "bad.ics"), "--user", "ada", "--data", data)
    assert refused.returncode == 1 and "nothing was imported" in refused.stderr and "line " in refused.stdout
    imported = run("import", str(tmp_path / "bad.ics"), "--user", "ada", "--calendar", "calendar",
                   "--skip-invalid", "--dtstart", "2025-01-01", "--data", data)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "complete: 4 created, 0 updated, 0 unchanged, 1 discarded" in imported.stdout
    assert "100%  4 of 4 written" in imported.stderr  # the progress bar
    exported = run("export", "--user", "ada", "--calendar", "Calendar", "--format", "timeslot", "--data", data)
    assert exported.returncode == 0 and len(json.loads(exported.stdout)) == 4
    out = tmp_path / "all.csv"
    assert run("export", "--user", "ada", "--format", "outlook", "-o", str(out), "--data", data).returncode == 0
    assert out.read_text().startswith('"Subject","Start Date"')
    missing = run("import", str(tmp_path / "bad.ics"), "--user", "ada", "--calendar", "Nope", "--data", data)
    assert missing.returncode == 1 and "no calendar called 'Nope'" in missing.stderr


def test_starting_wrong_is_one_clear_line(tmp_path: Path) -> None:
    """Issue 26.7: a store that is not there, does not answer or refuses the user, a folder
    that cannot be written, a schema newer than this server, a bad setting, a port taken: every
    command says so in one line that names the setting and what to do, and exits non-zero."""
    base = urlsplit(POSTGRES)
    elsewhere = f"{base.scheme}://{base.netloc}/almanac_nosuch_{free_port()}"
    newer = tmp_path / "newer" / "almanac.sqlite3"
    assert run("user", "list", "--data", str(newer.parent)).returncode == 0
    with sqlite3.connect(newer) as db:
        db.execute("INSERT INTO schema_migrations VALUES (999, '2030-01-01')")
    bad_ini = tmp_path / "bad.ini"
    bad_ini.write_text("[store]\nreaders = many\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases = [
            (["--store", elsewhere], "does not exist: create it (createdb", "[store] url"),
            (["--store", f"postgresql://127.0.0.1:{free_port()}/test"], "does not answer", "[store] url"),
            (
                ["--store", f"postgresql://almanac_nobody@{base.hostname}:{base.port or 5432}/test"],
                "correct the user",
                "ALMANAC_STORE_URL",
            ),
            (["--store", "sqlite:////proc/almanac/x.sqlite3"], "may write in", "--data"),
            (["--data", str(newer.parent)], "is version 999, newer than this server's", "[server] data"),
            (["--config", str(bad_ini)], "must be a whole number, not 'many'", "ALMANAC_STORE_READERS"),
        ]
        every = (["serve", "--port", "0"], ["serve", "--port", "0", "--workers", "2"], ["user", "list"])
        for number, (options, says, names) in enumerate(cases):
            for command in every if number in (0, len(cases) - 1) else every[:1]:
                done = run(*command, *options)
                lines = done.stderr.strip().splitlines()
                assert done.returncode != 0 and len(lines) == 1, (command, options, done.stderr[-2000:])
                assert lines[0].startswith("error: ") and says in lines[0] and names in lines[0], (command, lines)
        for command in (
            ["serve", "--port", port, "--data", str(tmp_path / "d")],
            ["serve", "--workers", "2", "--port", port, "--data", str(tmp_path / "d")],
        ):
            done = run(*command)
            assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr[-2000:]
            assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    moved = run("migrate-store", "--from", f"sqlite:///{newer}", "--to", elsewhere)
    assert moved.returncode == 1 and moved.stderr.count("\n") == 1 and "(it is set by --from)" in moved.stderr


def test_the_operators_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert re.fullmatch(r"Almanac \S+\n", run("--version").stdout)
    for name in ("ada", "bob"):
        assert run("user", "add", name, "--password-stdin", "--data", data, stdin="analytical engine\n").returncode == 0
    shared = run("calendar", "share", "ada", "Calendar", "--with", "bob", "--level", "read", "--data", data)
    assert shared.returncode == 0, shared.stderr
    listed = run("calendar", "list", "--data", data).stdout.splitlines()
    assert listed[0].startswith("owner\tcalendar") and any(
        row.startswith("ada\tCalendar\tcalendar\t0\tbob (read, invited)") for row in listed
    )
    assert run("calendar", "share", "ada", "Nope", "--with", "bob", "--level", "read", "--data", data).returncode == 1
    taken = run("calendar", "share", "ada", "calendar", "--with", "bob", "--level", "none", "--data", data)
    assert taken.returncode == 0 and "no longer shared" in taken.stdout
    backup = tmp_path / "copy.sqlite3"
    copied = run("backup", str(backup), "--data", data)
    assert copied.returncode == 0 and backup.exists(), copied.stderr
    assert "ada" in run("user", "list", "--store", f"sqlite:///{backup}").stdout  # the copy is a store
    assert run("backup", str(backup), "--data", data).returncode == 1  # never over a file
    told = run("backup", "x.dump", "--store", "postgresql://u:secret@db.example/almanac")
    assert "pg_dump" in told.stdout and "secret" not in told.stdout
    checked = run("check-config", "--data", data)
    assert checked.returncode == 0 and checked.stdout.startswith("ok: settings read"), checked.stdout
    broken = run("check-config", "--store", "postgresql://nobody@127.0.0.1:1/none")
    assert broken.returncode == 1 and "error: the store" in broken.stdout
    helped = run("import", "--help").stdout
    assert "--field-delimiter DELIMITER" in helped and "\t" not in helped
    for command in ("serve", "user", "calendar", "backup", "check-config", "import", "export", "migrate-store"):
        assert run(command, "--help").returncode == 0
