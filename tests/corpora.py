"""Real-world calendars nobody here wrote (issue 13): icalendar's and recurring-ical-events' test
calendars, found through the installed packages (never copied), driven through every door.

For each file: ``POST /v1/import/`` into a calendar of its own and a CalDAV PUT per UID into
another (no 5xx, ever); for an accepted file, the instances of CalDAV ``expand`` and of WCAP
``fetchcomponents_by_range`` with ``recurring=0`` over three windows against
``recurring_ical_events`` on the same file; and every property of every component after a REST
export re-imported, and after a CalDAV GET.

``python -m tests.corpora`` prints the figures (the tests assert them).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import recurring_ical_events
import x_wr_timezone
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from icalendar import Calendar, Component

from protocol.ical.resources import version
from protocol.ical.values import to_utc
from protocol.ical.walk import component_span
from tests.helpers import Account, basic

CORPORA = {
    "icalendar": Path(icalendar.__file__).parent / "tests" / "calendars",
    "recurring-ical-events": Path(recurring_ical_events.__file__).parent / "test" / "calendars",
}
PASSWORD = "correct horse"
#: properties whose values may be rewritten on the way in (X-WR-TIMEZONE applied, repairs):
#: compared as instants, not as text
TIMES = frozenset({"DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "EXDATE", "RDATE"})
#: what a repair may drop (docs/formats.md): DURATION beside DTEND/DUE, an empty RRULE
REPAIRED_AWAY = re.compile(r"V(EVENT|TODO)\.(DURATION:.*|RRULE:)$")

_SEQUENCE = (
    "RFC 5545 3.8.7.4: SEQUENCE orders the revisions of one component, and an override is a component of its own "
    "(3.8.4.4: RECURRENCE-ID is 'used in conjunction with the UID and SEQUENCE properties to identify a particular "
    "instance'): a master with a higher SEQUENCE does not void it. The reference drops the override. (An override "
    "of an occurrence the master's EXDATE deletes is left out, as the reference does: docs/formats.md.)"
)
_OVERLAP = (
    "RFC 4791 9.9: an instance is in a range when it starts before the range's end and ends after its start. The "
    "reference leaves out an RDATE period (of dates) that begins before the range and ends inside it."
)
#: files where recurring-ical-events differs from the RFCs, with the sentence that decides, and
#: the kind of difference (checked: a listed file may differ in that way only)
REFERENCE_ERRORS: dict[str, tuple[str, str]] = {
    "issue_117_until_before_dtstart.ics": (
        "first",
        "RFC 5545 3.8.5.3: 'The \"DTSTART\" property value always counts as the first occurrence', also when the "
        "rule's UNTIL is before it. The reference gives no instance at all.",
    ),
    "issue_253_additional_recurrence_id.ics": ("override", _SEQUENCE),
    "issue_75_range_parameter.ics": (
        "own-id",
        "RFC 5545 3.8.4.4: an instance's RECURRENCE-ID is 'the original value of the DTSTART property of the "
        "recurrence instance'. After a RANGE=THISANDFUTURE override the reference gives every later instance the "
        "override's RECURRENCE-ID.",
    ),
    "issue_1633_rdate_with_dates.ics": ("overlap", _OVERLAP),
    "issue_1633_rdate_with_dates_and_tzid.ics": ("overlap", _OVERLAP),
}


def explained(kind: str, expected: set[Instance], found: set[Instance], overrides: set[tuple[str, object]],
              start: datetime) -> bool:  # fmt: skip
    """Whether ``found`` differs from the reference's ``expected`` only in the listed way."""
    missing, extra = expected - found, found - expected
    if kind == "own-id":  # the same instances, each with its own RECURRENCE-ID
        return {(uid, *times) for uid, _, *times in expected} == {(uid, *times) for uid, _, *times in found}
    if missing or not extra:
        return False
    if kind == "first":  # only unmoved instances (the DTSTART one) more
        return all(rid == begin for _, rid, begin, _ in extra)
    if kind == "override":  # only overrides the file holds more
        return all((uid, rid) in overrides for uid, rid, _, _ in extra)
    return kind == "overlap" and all(to_utc(_as_date_time(begin))[0] < start for _, _, begin, _ in extra)


def _as_date_time(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, datetime.min.time())  # type: ignore[arg-type]


def overrides_of(calendars: list[Calendar]) -> set[tuple[str, object]]:
    return {(str(c.get("UID", "")), _rid(c)) for cal in calendars for c in cal.walk("VEVENT") if "RECURRENCE-ID" in c}


Instance = tuple[str, object, object, object]  #: (UID, RECURRENCE-ID, start, end), UTC or dates


def corpus_files(corpus: str) -> list[Path]:
    return sorted(CORPORA[corpus].glob("*.ics"))


@dataclass
class Report:
    """What one corpus did, file by file."""

    corpus: str
    files: int = 0
    refused: dict[str, str] = field(default_factory=dict)  #: file -> the first reason
    server_errors: list[str] = field(default_factory=list)  #: "file: door status"
    instances: int = 0  #: instances compared (each door, each window)
    mismatches: dict[str, list[str]] = field(default_factory=dict)  #: file -> what differed
    explained: Counter[str] = field(default_factory=Counter)  #: file -> differences REFERENCE_ERRORS explains
    lost: dict[str, list[str]] = field(default_factory=dict)  #: file -> properties lost
    put_refused: dict[str, str] = field(default_factory=dict)  #: accepted file, one UID refused by PUT
    reference_failed: list[str] = field(default_factory=list)  #: recurring-ical-events raised

    def summary(self) -> str:
        reasons = Counter(_reason_kind(r) for r in self.refused.values())
        lines = [
            f"{self.corpus}: {self.files} files, {len(self.refused)} refused, {self.instances} instances compared, "
            f"{sum(map(len, self.mismatches.values()))} mismatches in {len(self.mismatches)} files "
            f"(and {self.explained.total()} in {len(self.explained)} files where the reference is wrong), "
            f"{sum(map(len, self.lost.values()))} properties lost, {len(self.server_errors)} 5xx",
            *(f"  refused {count}: {kind}" for kind, count in reasons.most_common()),
            *(f"  mismatch {name}: {items[:3]}" for name, items in self.mismatches.items()),
            *(f"  lost {name}: {items[:5]}" for name, items in self.lost.items()),
            *(f"  PUT refused {name}: {reason}" for name, reason in self.put_refused.items()),
            *(f"  5xx {item}" for item in self.server_errors),
            *(f"  reference failed {item}" for item in self.reference_failed),
        ]
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """A refusal's reason without the file's own details (UIDs, values, lines)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\b\d+\b|UID \S+", "…", reason)[:90]


# --------------------------------------------------------------------------- the reference


def _calendars(data: bytes) -> list[Calendar]:
    return Calendar.from_ical(data, multiple=True)


def _key(component: Component) -> Instance:
    """(UID, RECURRENCE-ID, start, end) of one instance: instants in UTC (floating read as UTC,
    as in a calendar without a zone), dates as dates."""
    start, length = component_span(component)
    end = start + length if start is not None and length is not None else None  # type: ignore[operator]
    uid = str(component.get("UID", ""))
    uid = "" if uid.startswith("almanac-") else uid  # a UID Almanac made for a component without one
    rid = _rid(component)
    return uid, rid if rid is not None else _instant(start), _instant(start), _instant(end)


def _rid(component: Component) -> object:
    """RECURRENCE-ID as an instant, or a date when the instance is all-day (a DATE-TIME there
    means the date it names: the repair of docs/formats.md); None when there is none."""
    rid = component.get("RECURRENCE-ID")
    if rid is None:
        return None
    if isinstance(rid.dt, datetime) and not isinstance(_decoded_start(component), datetime):
        return rid.dt.date()
    return _instant(rid.dt)


def _instant(value: object) -> object:
    if isinstance(value, datetime):
        return to_utc(value)[0]
    return value


def windows(calendars: list[Calendar]) -> list[tuple[str, datetime, datetime]]:
    """The month of the first DTSTART, the year from it, and the daylight-saving change after it."""
    found = (_decoded_start(c) for calendar in calendars for c in calendar.walk("VEVENT"))
    starts = [to_utc(start)[0] for start in found if isinstance(start, date)]
    if not starts:
        return []
    first = min(starts)
    month = first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month + timedelta(days=32)).replace(day=1)
    spring = datetime(first.year, 3, 1, tzinfo=UTC), datetime(first.year, 4, 7, tzinfo=UTC)
    autumn = datetime(first.year, 10, 20, tzinfo=UTC), datetime(first.year, 11, 7, tzinfo=UTC)
    change = next((w for w in (spring, autumn) if w[1] > first), (spring[0].replace(year=first.year + 1),
                                                                   spring[1].replace(year=first.year + 1)))  # fmt: skip
    return [("month", month, next_month), ("year", first, first + timedelta(days=365)), ("dst", *change)]


def _decoded_start(component: Component) -> object:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return component.decoded("DTSTART")
    return None


#: files that icalendar, and so the reference, misreads where Almanac repairs a quirk whose intent
#: is plain (docs/formats.md): the reference reads them as they were meant, spelled out here
AS_MEANT: dict[str, tuple[tuple[bytes, bytes], ...]] = {
    "issue_165_missing_event.ics": ((b"BYDAY=MO, TU, WE, TH, FR", b"BYDAY=MO,TU,WE,TH,FR"),),
    "parsing_error.ics": ((b"EXDATE;VALUE=DATE:\n", b""),),
}


def as_meant(name: str, data: bytes) -> bytes:
    for written, meant in AS_MEANT.get(name, ()):
        assert written in data, name
        data = data.replace(written, meant)
    return data


def reference(calendars: list[Calendar], start: datetime, end: datetime) -> set[Instance]:
    """recurring-ical-events on the file as RFC 5545 reads it (X-WR-TIMEZONE applied first,
    as Almanac and the x-wr-timezone package do for Google's files)."""
    found: set[Instance] = set()
    for calendar in calendars:
        standard = x_wr_timezone.to_standard(calendar)
        found.update(_key(c) for c in recurring_ical_events.of(standard).between(start, end))
    return found


# --------------------------------------------------------------------------- the doors


class Doors:
    """One user's requests to the three doors of a running app."""

    def __init__(self, client: TestClient, account: Account, session: str, prefix: str) -> None:
        self.client, self.account, self.session, self.prefix = client, account, session, prefix
        self.basic = basic(account.data["username"])  # the password of every test account
        self.errors: list[str] = []
        self.made = 0  #: calendars made so far

    def check(self, what: str, status: int) -> None:
        if status >= 500:
            self.errors.append(f"{what} {status}")

    async def group(self) -> tuple[str, str]:
        """A new calendar: its group uuid and its slug."""
        self.made += 1
        name = f"{self.prefix}-{self.made}"
        return str((await self.account.create_group(name))["id"]), name

    async def import_file(self, data: bytes, filename: str, group: str) -> tuple[int, dict[str, Any]]:
        form = FormData()
        form.add_field("file", data, filename=filename, content_type="text/calendar")
        form.add_field("group", group)
        response = await self.account.post("/v1/import/", data=form, headers={"Accept": "application/json"})
        self.check(f"POST /v1/import/ {filename}", response.status)
        try:
            body = await response.json()
        except ValueError:
            body = {"errors": [{"error": await response.text()}]}
        return response.status, body

    async def put(self, path: str, data: bytes) -> tuple[int, str]:
        response = await self.client.put(path, data=data, headers={**self.basic, "Content-Type": "text/calendar"})
        self.check(f"PUT {path}", response.status)
        return response.status, await response.text()

    async def expand(self, slug: str, start: datetime, end: datetime) -> set[Instance] | str:
        window = f'start="{_utc(start)}" end="{_utc(end)}"'
        body = (
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data>'
            f'<C:expand {window}/></C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
            f'<C:comp-filter name="VEVENT"><C:time-range {window}/></C:comp-filter></C:comp-filter></C:filter>'
            "</C:calendar-query>"
        )
        path = f"/dav/calendars/{self.account.data['username']}/{slug}/"
        response = await self.client.request("REPORT", path, data=body, headers={**self.basic, "Depth": "1"})
        self.check(f"REPORT {path}", response.status)
        text = await response.text()
        if response.status != 207:
            return f"CalDAV {response.status}: {text[:200]}"
        found: set[Instance] = set()
        for data in re.findall(r"<C:calendar-data[^>]*>(.*?)</C:calendar-data>", text, re.S):
            found.update(_key(c) for c in Calendar.from_ical(_unescape(data)).walk("VEVENT"))
        return found

    async def fetch(self, slug: str, start: datetime, end: datetime) -> set[Instance] | str:
        calid = f"{self.account.data['username']}:{slug}"
        params = {"id": self.session, "calid": calid, "dtstart": _utc(start), "dtend": _utc(end), "recurring": "0",
                  "component-type": "event", "fmt-out": "text/calendar"}  # fmt: skip
        response = await self.client.get("/fetchcomponents_by_range.wcap", params=params)
        self.check("fetchcomponents_by_range.wcap", response.status)
        text = await response.text()
        errno = re.search(r"X-NSCP-WCAP-ERRNO:(-?\d+)", text)
        if response.status != 200 or (errno and errno.group(1) != "0"):
            return f"WCAP {response.status} errno {errno.group(1) if errno else '?'}: {text[:200]}"
        return {_key(c) for calendar in _calendars(text.encode()) for c in calendar.walk("VEVENT")}

    async def export(self, group: str) -> bytes:
        response = await self.account.post("/v1/export/ical", json={"group": group})
        self.check("POST /v1/export/ical", response.status)
        return await response.read()

    async def stored(self, slug: str) -> list[Calendar]:
        """Every object of a calendar as a CalDAV GET gives it."""
        path = f"/dav/calendars/{self.account.data['username']}/{slug}/"
        listing = await self.client.request("PROPFIND", path, headers={**self.basic, "Depth": "1"})
        self.check(f"PROPFIND {path}", listing.status)
        hrefs = [
            h for h in re.findall(r"<D:href>([^<]+)</D:href>", await listing.text()) if h.startswith(path) and h != path
        ]
        calendars = []
        for href in hrefs:
            response = await self.client.get(href, headers=self.basic)
            self.check(f"GET {href}", response.status)
            calendars += _calendars(await response.read())
        return calendars


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _unescape(text: str) -> str:
    return text.replace("&#13;", "\r").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --------------------------------------------------------------------------- properties


def _components(calendars: list[Calendar]) -> dict[tuple[str, object], Component]:
    """The components of the files by (UID, RECURRENCE-ID); of several versions, the newest, and
    no override of an occurrence its master's EXDATE deletes (docs/formats.md: what Almanac keeps)."""
    found: dict[tuple[str, object], Component] = {}
    for calendar in calendars:
        for component in calendar.walk():
            if component.name not in ("VEVENT", "VTODO", "VJOURNAL") or "UID" not in component:
                continue
            key = (str(component["UID"]), _rid(component))
            if key not in found or version(component) > version(found[key]):
                found[key] = component
    deleted = {
        (uid, _instant(value.dt)) for (uid, rid), master in found.items() if rid is None
        for exdate in (master.get("EXDATE") if isinstance(master.get("EXDATE"), list) else [master.get("EXDATE")])
        if exdate is not None for value in exdate.dts
    }  # fmt: skip
    return {key: component for key, component in found.items() if key not in deleted}


def _properties(component: Component) -> Counter[str]:
    """Each property as NAME:value (times by name only: they are compared as instants),
    the properties of its subcomponents (VALARM) included."""
    counted: Counter[str] = Counter()
    for part in component.walk():
        for name, values in part.property_items(recursive=False, sorted=False):
            if name in ("BEGIN", "END"):
                continue
            text = name if name in TIMES else f"{name}:{_value(values)}"
            counted[f"{part.name}.{text}"] += 1
    return counted


def _value(value: object) -> str:
    try:
        return value.to_ical().decode() if hasattr(value, "to_ical") else str(value)  # type: ignore[union-attr]
    except (ValueError, TypeError, AttributeError):
        return str(value)


def lost_properties(original: list[Calendar], kept: list[Calendar]) -> list[str]:
    """What the original components have and their stored versions do not."""
    before, after = _components(original), _components(kept)
    lost = []
    for key, component in before.items():
        if key not in after:
            lost.append(f"{key[0]}: the whole {component.name}")
            continue
        missing = _properties(component) - _properties(after[key])
        ends = "DTEND" in after[key] or "DUE" in after[key]
        lost += [
            f"{key[0]}: {item}" for item in missing if not (REPAIRED_AWAY.match(item) and (ends or "RRULE" in item))
        ]
    return lost


# --------------------------------------------------------------------------- one corpus


def _split(data: bytes) -> Iterator[bytes] | None:
    """Per UID, a VCALENDAR with the file's VTIMEZONEs (None: icalendar cannot read the file,
    or it holds one UID and nothing else a calendar object may not hold, RFC 4791 4.1: then it
    is sent as it is)."""
    try:
        calendars = _calendars(data)
    except ValueError:
        return None
    zones = [z for c in calendars for z in c.walk("VTIMEZONE")]
    by_uid: dict[str, list[Component]] = {}
    others = False  # a VFREEBUSY, say
    for calendar in calendars:
        for number, component in enumerate(calendar.subcomponents):
            if component.name in ("VEVENT", "VTODO", "VJOURNAL"):  # no UID: each one a resource
                by_uid.setdefault(str(component.get("UID", f"\0{number}")), []).append(component)
            others = others or component.name not in ("VEVENT", "VTODO", "VJOURNAL", "VTIMEZONE")
    if len(by_uid) < 2 and not others:
        return None

    def each() -> Iterator[bytes]:
        for components in by_uid.values():
            calendar = Calendar()
            calendar.add("VERSION", "2.0")
            calendar.add("PRODID", "-//Almanac corpus test//EN")
            for part in [*zones, *components]:
                calendar.add_component(part)
            yield calendar.to_ical()

    return each()


async def check_file(doors: Doors, report: Report, path: Path) -> None:
    data = path.read_bytes()
    name = path.name
    before = len(doors.errors)
    group, imported = await doors.group()
    _, put = await doors.group()
    status, body = await doors.import_file(data, name, group)
    parts = _split(data)
    for number, part in enumerate(parts if parts is not None else [data]):
        put_status, text = await doors.put(f"/dav/calendars/{doors.account.data['username']}/{put}/{number}.ics", part)
        if status == 200 and put_status >= 400:
            report.put_refused[name] = f"{put_status} {re.sub(r'<[^>]+>', ' ', text).split()[:12]}"
    report.server_errors += [f"{name}: {error}" for error in doors.errors[before:]]
    if status != 200:
        errors = body.get("errors") or [{"error": body.get("message", str(body))}]
        report.refused[name] = str(errors[0].get("error"))
        return
    calendars = await asyncio.to_thread(_calendars, as_meant(name, data))
    overrides = overrides_of(calendars)
    for label, start, end in windows(calendars):
        try:
            expected = await asyncio.to_thread(reference, calendars, start, end)
        except Exception as error:  # the reference's own failure is recorded, not ours
            report.reference_failed.append(f"{name} {label}: {type(error).__name__}: {error}")
            continue
        for door, found in (("CalDAV", await doors.expand(imported, start, end)),
                            ("WCAP", await doors.fetch(imported, start, end))):  # fmt: skip
            if isinstance(found, str):
                report.mismatches.setdefault(name, []).append(f"{label} {found}")
                continue
            report.instances += len(found)
            kind = REFERENCE_ERRORS.get(name, ("", ""))[0]
            if found != expected and kind and explained(kind, expected, found, overrides, start):
                report.explained[name] += 1
            elif found != expected:
                missing, extra = sorted(expected - found, key=str)[:2], sorted(found - expected, key=str)[:2]
                report.mismatches.setdefault(name, []).append(f"{label} {door}: missing {missing} extra {extra}")
    reimported, _ = await doors.group()
    exported = await doors.export(group)
    status, body = await doors.import_file(exported, "export.ics", reimported)
    if status != 200:
        report.lost.setdefault(name, []).append(f"the export was refused: {body}")
        return
    lost = lost_properties(calendars, _calendars(await doors.export(reimported)))
    lost += [f"CalDAV GET: {item}" for item in lost_properties(calendars, await doors.stored(put))]
    if lost:
        report.lost[name] = lost


async def check_corpus(client: TestClient, account: Account, corpus: str, files: list[Path] | None = None) -> Report:
    """Every file of a corpus through every door."""
    login = await (
        await client.get("/login.wcap", params={"user": account.data["username"], "password": PASSWORD})
    ).text()
    doors = Doors(client, account, login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0], corpus)
    report = Report(corpus)
    for path in files if files is not None else corpus_files(corpus):
        report.files += 1
        await check_file(doors, report, path)
    return report


async def _main(corpora: list[str]) -> None:
    from server.app import create_app
    from server.config import load

    with tempfile.TemporaryDirectory() as folder:
        config = load(None, {("server", "data"): folder}, environ={})
        async with TestClient(TestServer(create_app(config))) as client:
            response = await client.post("/v1/users", json={"username": "corpus", "password": PASSWORD})
            account = Account(client, await response.json())
            for corpus in corpora:
                print((await check_corpus(client, account, corpus)).summary())


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:] or list(CORPORA)))
