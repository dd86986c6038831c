"""The layers of docs/architecture.md, checked by reading every module's imports (ast), not
remembered: doors do not import each other or reach the store, services speak no door's
language, protocol/ does no I/O, storage/ knows nothing of HTTP."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOORS = ("server.rest", "server.caldav", "server.wcap", "server.web")
#: what a pure module may not import: I/O, the event loop, the server and the store
IMPURE = ("server", "storage", "aiohttp", "aiosqlite", "sqlite3", "asyncio", "socket", "subprocess", "urllib.request")
#: a door's own vocabulary and the HTTP plumbing the doors share
DOOR_WORDS = (*DOORS, "server.http", "server.urls", "server.forms", "server.app", "aiohttp", "protocol.wcap",
              "protocol.caldav", "protocol.dav", "protocol.multipart")  # fmt: skip


@cache
def modules() -> dict[str, ast.Module]:
    """Every module of the three packages by dotted name (a package by its own name)."""
    found = {}
    for path in sorted([*ROOT.glob("server/**/*.py"), *ROOT.glob("protocol/**/*.py"), *ROOT.glob("storage/**/*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree: ast.Module) -> set[str]:
    """The modules a module imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def breaches(packages: tuple[str, ...], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """``module -> import`` for each module in ``packages`` importing something ``forbidden``."""
    return sorted(
        f"{name} -> {target}"
        for name, tree in modules().items()
        if within(name, *packages)
        for target in imports(tree)
        if within(target, *forbidden) and not within(target, *allowed)
    )


@pytest.mark.parametrize("door", DOORS)
def test_no_door_imports_another_door(door: str) -> None:
    assert breaches((door,), tuple(d for d in DOORS if d != door)) == []


def test_doors_reach_the_store_only_through_the_services() -> None:
    """No door imports a store (its data types and its errors are fine) or touches a ``.store``
    attribute."""
    assert breaches(DOORS, ("storage",), allowed=("storage.model", "storage.errors")) == []
    touched = sorted(
        f"{name}:{node.lineno}"
        for name, tree in modules().items()
        if within(name, *DOORS, "server.forms", "server.urls", "server.http")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "store"
    )
    assert touched == []


def test_services_speak_no_doors_language() -> None:
    assert breaches(("server.services",), DOOR_WORDS) == []


def test_protocol_is_pure() -> None:
    assert breaches(("protocol",), IMPURE) == []


def test_storage_knows_nothing_of_http_or_the_server() -> None:
    assert breaches(("storage",), ("server", "aiohttp", "protocol.dav", "protocol.caldav", "protocol.wcap")) == []


def test_the_backends_differ_only_in_sql() -> None:
    """The store's rules are written once (``storage.sql``, which imports no database driver);
    a backend brings its connections and dialect and uses nothing of the store but the
    ``Database`` it implements."""
    drivers = ("aiosqlite", "sqlite3", "asyncpg")
    assert breaches(("storage.sql", "storage.base", "storage.model", "storage.errors"), drivers) == []
    backends = ("storage.sqlite.database", "storage.postgres.database")
    assert breaches(backends, ("storage.sql",), allowed=("storage.sql.database",)) == []


def _writes_objects(node: ast.AST) -> bool:
    """Whether a node is a statement that inserts or replaces objects, or names one."""
    if isinstance(node, ast.Name):
        return node.id in ("_INSERT", "_UPDATE")
    text = node.value.lstrip().upper() if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
    return text.startswith(("INSERT INTO OBJECTS", "UPDATE OBJECTS SET UID"))


def test_one_object_writer() -> None:
    """PUT, MOVE/COPY, imports and undo write objects through one function of the store: the
    statements that insert or replace an object's row are used nowhere else."""
    writers = {
        f"{name}.{node.name}"
        for name, tree in modules().items()
        if within(name, "storage")
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(_writes_objects, ast.walk(node)))
    }
    assert writers == {"storage.sql.objects._write_objects"}


#: the store's writes of one object, and what turns a changed calendar into one
ONE_OBJECT_WRITES = ("put_object", "move_object", "delete_object")
BUILDS_A_WRITE = ("resource_from_calendar", "component_problems")


def _calls(tree: ast.Module, names: tuple[str, ...]) -> set[str]:
    return {
        node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr in names)
            or (isinstance(node.func, ast.Name) and node.func.id in names)
        )
    }


def test_one_object_is_written_through_the_objects_service() -> None:
    """The store's writes of one object are asked by ``server/services/objects.py`` alone, and
    no door checks a component or builds a resource to write back: a CalDAV PUT, a WCAP
    storeevents or instance removal and a REST slot update all take its one path (read,
    change, check, write with the ETag read)."""
    writers = sorted(
        name for name, tree in modules().items() if within(name, "server") and _calls(tree, ONE_OBJECT_WRITES)
    )
    assert writers == ["server.services.objects"]
    builders = sorted(name for name, tree in modules().items() if within(name, *DOORS) and _calls(tree, BUILDS_A_WRITE))
    assert builders == []


def test_no_room_over_600_lines() -> None:
    """A file that needs 600 lines does more than one job (../shared/DESIGN.md, "Rooms")."""
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("server", "protocol", "storage")
        for path in (ROOT / folder).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 600
    }
    assert long == {}


def _caught(tree: ast.Module) -> set[str]:
    """The names of the exceptions a module's ``except`` clauses catch."""
    return {
        name.id
        for node in ast.walk(tree)
        if isinstance(node, ast.ExceptHandler) and node.type is not None
        for name in ast.walk(node.type)
        if isinstance(name, ast.Name)
    }


def test_a_missing_row_is_the_stores_own_error() -> None:
    """The store says "gone" with ``storage.errors.Gone``: neither the store nor the services
    (the only code that calls it) catch the built-in ``LookupError`` (or ``KeyError`` or
    ``IndexError``, which a mistyped column raises), so such a bug is a 500 with its traceback,
    never a quiet 404 or a skipped restore."""
    catching = sorted(
        name
        for name, tree in modules().items()
        if within(name, "server.services", "storage") and _caught(tree) & {"LookupError", "KeyError", "IndexError"}
    )
    assert catching == []


def test_no_private_aiohttp_api() -> None:
    """No ``app._handle`` and the like: what aiohttp does not document may change in any release."""
    private = sorted(
        f"{name}:{node.lineno}"
        for name, tree in modules().items()
        if within(name, "server")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and isinstance(node.value, ast.Attribute | ast.Name)
        and (node.value.attr if isinstance(node.value, ast.Attribute) else node.value.id) in ("app", "request", "web")
    )
    assert private == []


def test_the_checks_see_what_they_look_for() -> None:
    """The reader finds both import forms (a check that sees nothing would always pass)."""
    tree = ast.parse("import server.rest.door\nfrom server.caldav import props\nfrom . import near\n")
    assert imports(tree) == {"server.rest.door", "server.caldav", "server.caldav.props"}
    assert {"server.services", "server.caldav.door", "protocol.ical", "storage.sqlite", "storage.postgres"} <= set(
        modules()
    )
    store_calls = ast.parse("self.store.put_object(1)\nput_object(2)\nresource_from_calendar(x)\n")
    assert _calls(store_calls, ONE_OBJECT_WRITES) == {"put_object"}
    assert _calls(store_calls, BUILDS_A_WRITE) == {"resource_from_calendar"}
    assert _caught(ast.parse("try:\n    pass\nexcept (KeyError, ValueError):\n    pass\n")) == {
        "KeyError",
        "ValueError",
    }


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in tests/helpers.py, fixtures in conftest.py."""
    found = sorted(
        f"{path.name} -> {target}"
        for path in (ROOT / "tests").glob("*.py")
        for target in imports(ast.parse(path.read_text()))
        if within(target, "tests") and target.split(".")[1].startswith(("test_", "conftest"))
    )
    assert found == []
