"""Mutation testing of the rules where a silent change hurts most (docs/testing.md).

mutmut (configured in setup.cfg) makes a mutant of every small change it can make in the
functions below (a ``<`` for a ``<=``, an ``and`` for an ``or``, a constant, a dropped argument)
and runs, for each, the in-process tests that reach that function; a mutant the tests notice is
killed. This runs the groups' mutants and prints each group's score:

    .venv/bin/python scripts/mutation.py [GROUP ...]      # every group by default
    .venv/bin/python scripts/mutation.py --report          # the last run's scores, no new run

``mutmut results`` then lists the survivors and ``mutmut show NAME`` shows one.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = str(ROOT / ".venv" / "bin" / "mutmut")


def functions(module: str, *names: str) -> list[str]:
    """mutmut's names of the mutants of these functions (``Class.method`` for a method)."""
    globs = []
    for name in names:
        owner, _, method = name.rpartition(".")
        globs.append(f"{module}.xǁ{owner}ǁ{method}__mutmut_*" if owner else f"{module}.x_{name}__mutmut_*")
    return globs


#: each group: what a silent change in it would break, and the functions that hold it
GROUPS: dict[str, list[str]] = {
    "access": [f"server.services.access.{glob}" for glob in ("x*",)],
    "auth": [f"server.services.auth.{glob}" for glob in ("x*",)],
    "free/busy": functions("protocol.recurrence", "busy_periods", "busy_calendar"),
    "recurrence walk and windows": functions(
        "protocol.ical", "_last_start", "timing_bounds", "_local_rule", "skip_to", "_fixed_steps", "_fixed_walk",
        "rule_never_matches", "instance_spans", "timing_instances", "block_spans", "_moved_series",
        "window_calendar", "overlaps", "instances", "in_window_bounds", "clearly_overlaps", "in_window",
    ),
    "time ranges and sync in the store": [
        *functions("storage.sql.objects", "Objects.objects_in_range", "Objects.spans_in_range", "Objects._in_period",
                   "Objects.changes_since", "Objects._bump", "Objects._record_changes"),
        *functions("storage.sqlite.database", "SQLiteDatabase.write_spans", "SQLiteDatabase.spans_overlapping",
                   "SQLiteDatabase.span_hits", "SQLiteDatabase._overlapping"),
    ],
    "ETag preconditions": [
        *functions("server.caldav.props", "etag_condition", "etag_matches"),
        *functions("storage.sql.objects", "Objects._put", "Objects._delete", "Objects.delete_object"),
    ],
    "import and undo writers": functions(
        "storage.sql.imports", "Imports.import_batch", "Imports._import_calendar", "Imports._import_chunk",
        "Imports.undo_import",
    ),
}  # fmt: skip
#: what mutmut calls each outcome, and which of them count as killed (a mutant that makes the
#: tests hang is noticed too)
KILLED = {"killed", "timeout"}


def statuses() -> dict[str, str]:
    """Every mutant of the last run with its status (``mutmut results --all true``)."""
    listed = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True)
    found = {}
    for line in listed.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            found[name] = status
    return found


def report(groups: list[str]) -> bool:
    """Each group's score; whether every group killed at least 90 % of its mutants."""
    every = statuses()
    good = True
    print(f"{'group':36} {'mutants':>8} {'killed':>7} {'score':>6}  survivors, untested")
    for group in groups:
        mine = {n: s for n, s in every.items() if any(fnmatch.fnmatchcase(n, g) for g in GROUPS[group])}
        counts = Counter(mine.values())
        killed = sum(counts[s] for s in KILLED)
        score = killed / len(mine) if mine else 0.0
        good = good and score >= 0.9
        print(f"{group:36} {len(mine):8} {killed:7} {score:6.1%}  {counts['survived']}, {counts['no tests']}")
    return good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help=f"the groups to run (default: all): {', '.join(GROUPS)}")
    parser.add_argument("--report", action="store_true", help="only print the last run's scores")
    args = parser.parse_args()
    groups = args.groups or list(GROUPS)
    if unknown := [group for group in groups if group not in GROUPS]:
        parser.error(f"no group {unknown[0]!r}")
    if not args.report:
        globs = [glob for group in groups for glob in GROUPS[group]]
        subprocess.run([MUTMUT, "run", *globs], cwd=ROOT, check=False)
    return 0 if report(groups) else 1


if __name__ == "__main__":
    sys.exit(main())
