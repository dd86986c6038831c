"""Walking an .ics file's content lines: unfolding, the repairs that mend the lines themselves
(a colon written as ``=``, folds that lost their space, blank lines among folds, text after
``END:VCALENDAR``, spaces in an RRULE, empty EXDATEs, a missing ``END:VCALENDAR``), and each
top-level component with its calendar and the line it starts on. Both readers
(``protocol.formats.plain`` and icalendar) see the mended lines. Pure."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from protocol.formats import LineError
from protocol.ical.values import OBJECT_COMPONENTS

#: a VTIMEZONE is a few kilobytes (13 KB with every transition since 1883); parsing one is slow
MAX_TIMEZONE_CHARS = 128 * 1024


#: components nest this deep at the most (real files: VCALENDAR > VEVENT > VALARM, 3)
MAX_DEPTH = 16


#: calendar-level properties Almanac reads (the rest are not needed per event)
CALENDAR_PROPERTIES = ("X-WR-TIMEZONE", "X-WR-CALNAME", "X-WR-CALDESC", "NAME", "DESCRIPTION")


@dataclass(slots=True)
class FileCalendar:
    """One VCALENDAR of the file while it is read."""

    index: int  #: its place in the file, from 0
    line: int
    properties: dict[str, str] = field(default_factory=dict)


class Stop(Exception):
    """The file's structure is broken beyond the current line: stop reading."""


_NO_FOLDS: list[str] = []  #: shared by the lines that have none (never appended to)


#: what a content line that is read as it stands may start with: not BEGIN or END (read in
#: full), nor R (RRULE and RDATE are looked at for repairs; EXDATE and EXRULE start with E)
_AS_IT_STANDS = frozenset(string.ascii_letters + string.digits + "-") - frozenset("BbEeRr")


#: the components Almanac reads; the lines of any other are not looked at (it is skipped whole)
_READ = OBJECT_COMPONENTS | {"VTIMEZONE"}


#: a line of no colon that is a parameter or a property with ``=`` for ``:`` (``X-APPLE-RADIUS=49.9``)
_NAME_EQUALS = re.compile(r"^([A-Za-z0-9-]+)=(.*)$")


_STRUCTURED_LOCATION = "X-APPLE-STRUCTURED-LOCATION"


#: a content line that has reached its value: a colon outside quoted parameter values
_VALUE_BEGUN = re.compile(r'^(?:[^":]|"[^"]*")*:')


Report = Callable[[LineError], None]


def _content_lines(source: Iterator[str], warn: Report) -> Iterator[tuple[int, str, list[str]]]:
    """Each content line as (its first line's number, its first physical line, the physical
    lines folded into it): RFC 5545 3.1 lets a fold fall anywhere, a parameter included, so a
    line is read whole before it is judged; its folds are kept as they were written. Blank
    lines are left out, also between a line and its folds (old Mozilla exports), and Apple's
    structured location whose parameters go on in a line without its leading space is joined."""
    number, first, folds = 0, None, list[str]()
    blank = 0  #: the blank line just passed (0: none)
    for index, raw in enumerate(source, 1):
        line = raw.rstrip("\r\n")
        if not line or line.isspace():
            blank = blank or index
            continue
        folded = line[0] in " \t"
        if not folded and first is not None and first[0] in "Xx" and _lost_its_space(first, folds, line):
            warn(LineError(index, f"{_STRUCTURED_LOCATION} goes on in a line without its leading space: joined"))
            line, folded = " " + line, True
        if folded and first is not None:
            if blank:
                warn(LineError(blank, "blank lines inside a folded line (RFC 5545 3.1 allows none): left out"))
                blank = 0
            if folds:
                folds.append(line)
            else:
                folds = [line]
            continue
        blank = 0
        if first is not None:
            yield number, first, folds
        number, first, folds = index, line, _NO_FOLDS
    if first is not None:
        yield number, first, folds


def _lost_its_space(first: str, folds: list[str], line: str) -> bool:
    """Whether ``line`` goes on with an X-APPLE-STRUCTURED-LOCATION that has no value yet: a
    parameter (``X-APPLE-RADIUS=...``) whose fold lost its leading space (Apple's writers)."""
    if first[: len(_STRUCTURED_LOCATION)].upper() != _STRUCTURED_LOCATION or not _NAME_EQUALS.match(line):
        return False
    return not _VALUE_BEGUN.match(first + "".join(fold[1:] for fold in folds))


def ignore(problem: LineError) -> None:
    """What the second reading hears of the structure: the first reported it all."""


def walk(
    source: Iterator[str], report: Report, warn: Report = ignore
) -> Iterator[tuple[FileCalendar, str, int, list[str]]]:
    """Yield each top-level component (its calendar, name, first line and lines) and, at the
    end of each VCALENDAR, ``(calendar, "VCALENDAR", line, [])``. Structure errors go to
    ``report``; those that leave the rest unreadable raise Stop. What is mended (docs/formats.md)
    goes to ``warn``."""
    stack: list[tuple[str, int]] = []
    calendar = FileCalendar(-1, 0)  # replaced at each BEGIN:VCALENDAR (nothing is read outside one)
    calendars = 0
    after = 0  #: the first line of text after an END:VCALENDAR (0: none yet)
    block: list[str] = []

    def fail(line: int, message: str) -> None:
        report(LineError(line, message))
        raise Stop

    for number, first, folds in _content_lines(source, warn):
        if first[:1] in _AS_IT_STANDS and ":" in first and len(stack) >= 2:
            block.append(first)  # most lines: a property of a component (the rest below, in full)
            block.extend(folds)
            continue
        if len(stack) >= 2 and stack[1][0] not in _READ and not _is_begin_or_end(first):
            block += [first, *folds]  # a line of a component skipped whole: not looked at
            continue
        if not stack and calendars and first[:6].upper() != "BEGIN:":
            after = after or number  # Podio's cache comment, say: part of no calendar
            continue
        if first[:1] in (" ", "\t"):  # a continuation with no line to continue
            if len(stack) >= 2:
                block += [first, *folds]
            elif not stack:
                fail(number, "text outside BEGIN:VCALENDAR ... END:VCALENDAR")
            continue
        line = first + "".join(fold[1:] for fold in folds) if folds else first
        head, colon, value = line.partition(":")
        written = [first, *folds]
        if not colon and len(stack) >= 2 and (equals := _NAME_EQUALS.match(line)):
            warn(LineError(number, f"{equals.group(1)}= where a colon belongs: read as {equals.group(1)}:"))
            head, colon, value = equals.group(1), ":", equals.group(2)
            written = [f"{head}:{value}"]
        name = head.split(";", 1)[0].strip().upper()
        if not colon:
            fail(number, f"invalid content line (no colon): {line[:60]!r}")
        if name == "BEGIN":
            component = value.strip().upper()
            if len(stack) >= MAX_DEPTH:
                fail(number, f"components are nested deeper than {MAX_DEPTH} levels")
            if not stack:
                if component != "VCALENDAR":
                    fail(number, f"expected BEGIN:VCALENDAR, found BEGIN:{component}")
                calendar = FileCalendar(calendars, number)
                calendars += 1
            elif len(stack) == 1:
                block = written
            else:
                block += written
            stack.append((component, number))
        elif name == "END":
            component = value.strip().upper()
            if not stack:
                fail(number, f"END:{component} without a matching BEGIN")
            if stack[-1][0] != component:
                open_name, open_line = stack[-1]
                fail(number, f"END:{component} does not close BEGIN:{open_name} (line {open_line})")
            begun = stack.pop()[1]
            if len(stack) == 1:
                block += written
                yield calendar, component, begun, block
                block = []
            elif not stack:
                yield calendar, "VCALENDAR", begun, []
            else:
                block += written
        elif len(stack) >= 2:
            block += _mended(name, number, value, line, written, warn)
        elif len(stack) == 1:
            if name in CALENDAR_PROPERTIES:
                calendar.properties[name] = value
        else:
            fail(number, "text outside BEGIN:VCALENDAR ... END:VCALENDAR")
    if after:
        warn(LineError(after, "text after END:VCALENDAR (RFC 5545 3.4 ends the file there): left out"))
    if len(stack) == 1:  # only the VCALENDAR is open
        warn(LineError(stack[0][1], "the file ends without END:VCALENDAR, every component in it complete: closed"))
        yield calendar, "VCALENDAR", stack[0][1], []
    elif stack:
        open_name, open_line = stack[-1]
        report(LineError(open_line, f"the file ends inside {open_name} (begun on line {open_line}): is it truncated?"))


def _is_begin_or_end(line: str) -> bool:
    return line[:6].upper() == "BEGIN:" or line[:4].upper() == "END:"


def _mended(name: str, number: int, value: str, line: str, written: list[str], warn: Report) -> list[str]:
    """The physical lines of a property of a component, mended where a writer's intent is
    plain: an RRULE's lists with spaces (``BYDAY=MO, TU``) read without them; an EXDATE or RDATE
    with no value left out."""
    if name in ("RRULE", "EXRULE") and any(c.isspace() for c in value):
        warn(LineError(number, f"{name} with spaces in its value (BYDAY=MO, TU, say): read without them"))
        return [line[: len(line) - len(value)] + "".join(value.split())]
    if name in ("EXDATE", "RDATE") and not value.strip():
        warn(LineError(number, f"{name} with no value: left out"))
        return []
    return written
