"""Mutation testing of the rules where a silent change hurts most (docs/testing.md).

mutmut (configured in setup.cfg) makes a mutant of every small change it can make in the
functions below (a ``<`` for a ``<=``, an ``and`` for an ``or``, a constant, a dropped argument)
and runs, for each, the in-process tests that reach that function; a mutant the tests notice is
killed. This runs the groups' mutants and prints each group's score:

    .venv/bin/python scripts/mutation.py [GROUP ...]      # every group by default
    .venv/bin/python scripts/mutation.py --report          # the last run's scores, no new run
    .venv/bin/python scripts/mutation.py --again           # the survivors again, after new tests
    .venv/bin/python scripts/mutation.py --report --survivors   # each unexplained survivor's diff

mutmut runs the tests on SQLite. The survivors in ``storage/`` then run the same tests on
PostgreSQL (``ALMANAC_TEST_POSTGRES``), which kill some (asyncpg's rows know their columns by
their exact names, sqlite3's whatever the case). A survivor that changes nothing anyone could see
is explained by a class of EQUIVALENT and counted out of the score.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import functools
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
#: mutmut and mypy (its type check) from the project's environment
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


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
    "free/busy": functions("protocol.ical.busy", "busy_periods", "_placed", "merged", "busy_calendar"),
    "recurrence walk and windows": [
        *functions("protocol.ical.walk", "_last_start", "timing_bounds", "local_rule", "skip_to", "_fixed_steps",
                   "_fixed_walk", "rule_never_matches", "instance_spans", "timing_instances"),
        *functions("protocol.ical.resources", "block_spans"),
        *functions("protocol.ical.windows", "_moved_series", "window_calendar", "overlaps", "instances",
                   "in_window_bounds", "clearly_overlaps", "in_window"),
    ],
    "time ranges and sync in the store": [
        *functions("storage.sql.objects", "Objects.objects_in_range", "Objects.spans_in_range", "Objects._in_period",
                   "Objects.changes_since", "Objects._bump", "Objects._record_changes"),
        *functions("storage.sqlite.database", "SQLiteDatabase.write_spans", "SQLiteDatabase.spans_overlapping",
                   "SQLiteDatabase.span_hits", "SQLiteDatabase._overlapping"),
    ],
    "ETag preconditions": [
        *functions("server.http", "etag_condition", "etag_matches"),
        *functions("storage.sql.objects", "Objects._put", "Objects._delete", "Objects.delete_object"),
    ],
    "import and undo writers": functions(
        "storage.sql.imports", "Imports.import_batch", "Imports._import_calendar", "Imports._import_chunk",
        "Imports.undo_import",
    ),
}  # fmt: skip
#: survivors that change nothing anyone could see (docs/testing.md says why, class by class): a
#: survivor is explained when its name matches the glob and the pattern matches what it changed
#: (a line the mutant has, and none of the lines it replaced); a pattern after CASE: when the
#: mutant changed only the case of lines the pattern matches
CASE = "case:"
EQUIVALENT: list[tuple[str, str, str]] = [
    ("*", CASE + r'\.(add|get|walk|pop)\("|every\(component, "|recur\["|for name in \("|" (not )?in component',
     "icalendar reads and writes property and component names in upper case, whatever case it is given"),
    ("storage.*", CASE + r'"[^"]*[ ,(.][^"]*"',
     "SQL keywords and unquoted names mean the same in any case, in SQLite and in PostgreSQL"),
    ("storage.*", r'(raise|except) (Gone|Conflict)\((None|f?"XX.*XX"|"[A-Z]+")\)',
     "the message of an error the services catch and replace with their own (only REPLACES_UID is read)"),
    ("protocol.*", r'raise ValueError\((None|"XX.*XX"|"[A-Z ]+")\)',
     "the message of an error caught at once (a rule that cannot be walked falls back)"),
    ("protocol.*", r"\(zone\) or True else", "replace(tzinfo=None) on a naive time (no zone): the same time"),
    ("protocol.*", r"walked > MAX_WALK", "one step more of a walk bounded at 100,000 steps"),
    ("protocol.*", r'recur\.pop\("COUNT", \)', "icalendar's CaselessDict.pop has None as its default anyway"),
    ("protocol.*", r"suppress\(OverflowError, \)", "moving an aware instant to a zone raises no ValueError"),
    ("*.x_skip_to__mutmut_*", r"// step - 2|skipped < 0|skipped <= 1|after < first",
     "fewer whole periods skipped: the walk starts earlier and finds the same instances (only slower)"),
    ("*.x_skip_to__mutmut_*", r'"XXXX"|r"count=|rule, \)',
     "icalendar writes a rule's parts in upper case, and a rule without FREQ has no period either way"),
    ("*.x__fixed_steps__mutmut_*", r'get\("FREQ", "XXXX"\)', "a rule without FREQ has no period either way"),
    ("*.x__fixed_walk__mutmut_*", r"skipped\[1\] != times.rules\[0\]",
     "the steps read again from a rule that did not change are the same steps"),
    ("*.x__last_start__mutmut_*", r"raw\[:9\]", "a date UNTIL is eight characters: [:9] takes the same"),
    ("protocol.*", r"\(begin.tzinfo is not None\) or True", "replace(tzinfo=None) on a naive time: the same time"),
    ("protocol.*", r"skip_to\(local_rule\(rule, None\)",
     "skip_to reads FREQ, INTERVAL and COUNT only: how UNTIL is written does not change the skip"),
    ("*.x_skip_to__mutmut_*", r"left < 0|left <= 1",
     "COUNT=0 has no instance either; with a period of margin, a last instance left alone lies before the window"),
    ("*.x_rule_never_matches__mutmut_*",
     r'\(10000 - cycle|\(cycles > 0\) (and False|or True)|cycles >= 0|cycles > 1|lstrip\("XX;XX"\)|name not in parts',
     "the calendar repeats every 400 years: any probe start with a whole cycle before 9999 gives the same answer"),
    ("*.x_rule_never_matches__mutmut_*",
     r"rule, \)\.lstrip|\(count\|until\)|\(isinstance\(start, datetime\)\) and False",
     "rules arrive as icalendar writes them (upper case), and a probe needs only the first date, not its time"),
    ("*.x_overlaps__mutmut_*", r"subcomponents\) \+ 2", "one instance more of each windowed series: the same answer"),
    ("*.x_timing_instances__mutmut_*",
     r"occurrence >= limit|begin \+ own >= low|after - FIRST_INSTANT (>=|> duration -)",
     "an instance at the horizon goes to the inexact tail, one ending where the window starts is filtered after, "
     "and the margin to the year 1 moves by a day: the same instances are found"),
    ("*ǁPasswordsǁ__init____mutmut_*", r'"ARGON2"|"BCRYPT"|token_hex\((None|9)\)|self._dummy = None',
     "passlib reads scheme names in any case; the dummy hash only makes an unknown user take as long as a "
     "known one, a time the benchmarks measure, not the tests"),
    ("server.services.auth.*", r'max_workers=None|ThreadPoolExecutor\(thread_name|"XXpasswordsXX"|"PASSWORDS"|'
     r"max_workers=threads, \)|run_in_executor\(None|shutdown\(wait=True\)",
     "which threads hash, and their names: the same answers (their own pool keeps a flood of sign-ins from "
     "starving the rest, which load shows, not a test)"),
    ("*ǁ_import_chunk__mutmut_*", r"placed, None, job\.user_id",
     "objects.import_id notes which import last wrote an object; nothing reads it (undo reads import_items)"),
    ("*ǁchanges_since__mutmut_*", r"values\[8\] is not None",
     "the object's id and its calendar (columns 7 and 8) are both there or, after a deletion, both NULL"),
    ("*.x_busy_periods__mutmut_*", r'\.get\("[A-Z-]+", *(None|"XXXX")?\)',
     "the default of a property read as text and compared with a word (TRANSPARENT, CANCELLED) is no such word"),
    ("*.x__placed__mutmut_*", r"astimezone\(None\)", "the local zone instead of UTC: the same instant"),
    ("*.x_busy_calendar__mutmut_*", r'"XX/tentativeXX"|"/TENTATIVE"|kind != TENTATIVE|else "XXXX"|hexdigest\(\)\[:33\]',
     "a busy period's UID stays stable and distinct for each period and kind, whatever its text"),
    ("*.x_merged__mutmut_*", r"key=lambda p: \(p\[2\], p\[0\], p\[2\]\)",
     "periods of one kind and start merge to the same end in any order"),
    ("*ǁ_slug__mutmut_*", r'strip\("XX-XX"\)', "a slug made of a-z, 0-9 and '-' holds no X to strip"),
]  # fmt: skip
#: what mutmut calls each outcome, and which of them count as killed (a mutant that makes the
#: tests hang is noticed too, and one mypy refuses cannot land); "killed on PostgreSQL" is ours
KILLED = {"killed", "timeout", "caught by type check", "killed on PostgreSQL"}
#: where the PostgreSQL runs of a survivor's tests are written down
ON_POSTGRES = ROOT / "mutants" / "killed-on-postgres.json"


def statuses(postgres: bool = True) -> dict[str, str]:
    """Every mutant of the last run with its status (``mutmut results --all true``), and those
    the PostgreSQL run killed (unless ``postgres`` is False)."""
    listed = subprocess.run(
        ["mutmut", "results", "--all", "true"], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True
    )
    found = {}
    for line in listed.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            found[name] = status
    killed = json.loads(ON_POSTGRES.read_text()) if ON_POSTGRES.exists() and postgres else []
    return found | {name: "killed on PostgreSQL" for name in killed if found.get(name) == "survived"}


def pytest(tests: list[str], mutant: str) -> int:
    """Run tests in mutmut's copy of the code with one mutant (none: "") switched on."""
    command = [str(BIN / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--rootdir=.", *tests]
    env = {**ENV, "MUTANT_UNDER_TEST": mutant}
    return subprocess.run(command, cwd=ROOT / "mutants", env=env, capture_output=True, check=False).returncode


def run_on_postgres(groups: list[str]) -> None:
    """Run the PostgreSQL variants of the tests that reach each survivor in ``storage/`` that no
    class of EQUIVALENT explains."""
    stats = json.loads((ROOT / "mutants" / "mutmut-stats.json").read_text())["tests_by_mangled_function_name"]
    every = statuses(postgres=False)
    survivors = [
        name
        for name, status in every.items()
        if status == "survived" and name.startswith("storage.") and mine(name, groups) and not why_harmless(name)
    ]
    tests = {name: on_postgres(stats[name.partition("__mutmut_")[0]]) for name in survivors}
    earlier = json.loads(ON_POSTGRES.read_text()) if ON_POSTGRES.exists() else []
    killed = [name for name in earlier if not mine(name, groups)]  # other groups' (--keep)
    if any(tests.values()):
        if pytest(sorted({t for ts in tests.values() for t in ts}), "") != 0:
            sys.exit("the PostgreSQL tests fail without a mutant: is ALMANAC_TEST_POSTGRES a database?")
        killed += [name for name, ts in tests.items() if ts and pytest(ts, name) != 0]
    ON_POSTGRES.write_text(json.dumps(killed))


def on_postgres(tests: list[str]) -> list[str]:
    """The PostgreSQL variants of the tests that run on both stores."""
    return sorted({test.replace("[sqlite", "[postgres", 1) for test in tests if "[sqlite" in test})


def mine(name: str, groups: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for group in groups for glob in GROUPS[group])


@functools.cache
def bodies(module: str) -> dict[str, list[str]]:
    """The body lines of every function in mutmut's copy of a module (mutants and originals)."""
    source = (ROOT / "mutants" / f"{module.replace('.', '/')}.py").read_text()
    lines = source.splitlines()
    return {
        node.name: lines[node.lineno : node.end_lineno]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def changed_lines(name: str) -> list[str]:
    """The lines a mutant changed, "- " the original's and "+ " the mutant's (mutmut's copy)."""
    module, _, function = name.rpartition(".")
    found = bodies(module)
    diff = difflib.ndiff(found[f"{function.partition('__mutmut_')[0]}__mutmut_orig"], found[function])
    return [f"{line[0]} {line[2:].strip()}" for line in diff if line.startswith(("+ ", "- "))]


def why_harmless(name: str) -> str | None:
    """The EQUIVALENT class a survivor belongs to, if any."""
    lines = [text.partition(" ")[::2] for text in changed_lines(name)]
    removed, added = [line for sign, line in lines if sign == "-"], [line for sign, line in lines if sign == "+"]
    case_only = len(removed) == len(added) and all(r.lower() == a.lower() for r, a in zip(removed, added, strict=True))
    for glob, pattern, why in EQUIVALENT:
        if not fnmatch.fnmatchcase(name, glob):
            continue
        if pattern.startswith(CASE):
            if case_only and all(re.search(pattern[len(CASE) :], line) for line in added):
                return why
        elif {sign for sign, line in lines if re.search(pattern, line)} == {"+"}:
            return why
    return None


def report(groups: list[str], show: bool = False) -> bool:
    """Each group's score (killed among the mutants not explained as harmless); whether every
    group killed at least 90 %. ``show``: each unexplained survivor's change."""
    every = statuses()
    good = True
    print(f"{'group':34} {'mutants':>8} {'killed':>7} {'harmless':>8} {'score':>6} {'raw':>6}  survivors, untested")
    for group in groups:
        names = [name for name in every if mine(name, [group]) and every[name] != "not checked"]
        found = Counter(every[name] for name in names)
        harmless = {name: why_harmless(name) for name in names if every[name] == "survived"}
        explained = sum(why is not None for why in harmless.values())
        total, killed = len(names), sum(found[status] for status in KILLED)
        score = killed / (total - explained) if total > explained else 0.0
        good = good and score >= 0.9
        raw = killed / total if total else 0.0
        left = found["survived"] - explained
        print(f"{group:34} {total:8} {killed:7} {explained:8} {score:6.1%} {raw:6.1%}  {left}, {found['no tests']}")
        for name, why in sorted(harmless.items()) if show else ():
            if why is None:
                print(f"    {name}:", *changed_lines(name), sep="\n        ")
    return good


def sample(names: list[str], groups: list[str], size: int) -> list[str]:
    """``size`` mutants of each group, picked at random (the same ones for the same mutants)."""
    picked: list[str] = []
    for group in groups:
        found = [name for name in names if mine(name, [group])]
        picked += random.Random(32).sample(found, min(size, len(found)))
    return picked


def again(groups: list[str]) -> list[str]:
    """The groups' mutants not yet run, and their survivors no class of EQUIVALENT explains."""
    every = statuses()
    return [
        name
        for name, status in every.items()
        if mine(name, groups) and (status == "not checked" or (status == "survived" and why_harmless(name) is None))
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help=f"the groups to run (default: all): {', '.join(GROUPS)}")
    parser.add_argument("--report", action="store_true", help="only print the last run's scores")
    parser.add_argument("--keep", action="store_true", help="keep the last run's results beside this run's")
    parser.add_argument("--survivors", action="store_true", help="print each unexplained survivor's change")
    parser.add_argument("--sample", type=int, metavar="N", help="run N mutants of each group, picked at random")
    parser.add_argument(
        "--again", action="store_true", help="run what is not decided yet: mutants not run, unexplained survivors"
    )
    args = parser.parse_args()
    groups = args.groups or list(GROUPS)
    if unknown := [group for group in groups if group not in GROUPS]:
        parser.error(f"no group {unknown[0]!r}")
    if not args.report:
        if not (args.keep or args.again):  # mutmut's cache may keep results the code and tests have outgrown
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        globs = [glob for group in groups for glob in GROUPS[group]]
        if args.sample:  # mutmut makes every mutant, then runs those named
            subprocess.run(["mutmut", "run", "no.such.mutant"], cwd=ROOT, env=ENV, check=False)
            globs = sample(sorted(statuses()), groups, args.sample)
        elif args.again:
            globs = again(groups)
        if globs:
            subprocess.run(["mutmut", "run", *globs], cwd=ROOT, env=ENV, check=False)
        run_on_postgres(groups)
    return 0 if report(groups, args.survivors) else 1


if __name__ == "__main__":
    sys.exit(main())
