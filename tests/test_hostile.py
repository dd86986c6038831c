"""Hostile input through every door: each is refused in the door's own language, changes
nothing in the store, and never keeps another user waiting.

Every case runs against a store holding one event, while a second client sends a probe
request every 20 ms; the probe must answer in under 200 ms during and after the case.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

from server.http import SERVICES
from server.services import Services
from tests.helpers import Account, basic, probe_limit, while_probing

CAL = "/dav/calendars/alice/calendar/"


def ics(*lines: str) -> str:
    """A calendar with one event made of ``lines`` (CRLF added)."""
    body = "".join(f"{line}\r\n" for line in lines)
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def event(*extra: str, uid: str = "hostile") -> str:
    return ics(f"UID:{uid}", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T100000Z", "DTEND:20250110T110000Z", *extra)


NESTED_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:deep\r\nDTSTART:20250110T100000Z\r\n"
    + "BEGIN:X-A\r\n" * 50_000
    + "END:X-A\r\n" * 50_000
    + "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
BIG_TIMEZONE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Huge\r\n"
    + "".join(
        f"BEGIN:STANDARD\r\nDTSTART:{1601 + i % 400:04d}0101T000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\n"
        "END:STANDARD\r\n"
        for i in range(40_000)
    )
    + "END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:tz\r\nDTSTART;TZID=Huge:20250110T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
IMPOSSIBLE_RULE = event("RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30")
BAD_FILES = {
    "not a calendar": "hello, world",
    "binary": "\x89PNG\r\n\x1a\n\x00\x00",
    "no end": "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n",
    "end before start": event().replace("DTEND:20250110T110000Z", "DTEND:20240110T110000Z"),
    "no dtstart": ics("UID:x", "SUMMARY:nothing"),
    "bad date": event().replace("DTSTART:20250110T100000Z", "DTSTART:20251310T100000Z"),
    "bad rule": event("RRULE:FREQ=NEVER"),
    "impossible rule": IMPOSSIBLE_RULE,
    "rdate of a time": event("RDATE;VALUE=TIME:101500"),
    "nested 50,000 deep": NESTED_ICS,
}
NESTED_JSON = "[" * 100_000 + "]" * 100_000
HUGE = "100000000000000000000"
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol2;</D:displayname></D:prop></D:propfind>'
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&x;</D:displayname></D:prop></D:propfind>'
)
UTF16_ENTITY = (
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE p [<!ENTITY e "boom">]>'
    '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:dead>&e;</Z:dead></D:prop></D:set>'
    "</D:propertyupdate>"
).encode("utf-16")


def query(inner: str, root: str = "calendar-query") -> str:
    return f'<C:{root} xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">{inner}</C:{root}>'


def time_range_query(start: str, end: str) -> str:
    return query(
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter>'
    )


@dataclass
class Case:
    """One hostile request and what it must get: an HTTP status class (``4`` for 4xx) or,
    for WCAP (always HTTP 200), the errnos it may answer with."""

    door: str
    name: str
    method: str
    path: str
    body: str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None  #: sent urlencoded
    statuses: tuple[int, ...] = (4,)  #: status classes (4) or exact statuses (207)
    errnos: tuple[int, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.door}: {self.name}"


def rest(name: str, method: str, path: str, body: Any = None, *, raw: str | bytes | None = None, **kw: Any) -> Case:
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    headers = {"Content-Type": "application/json"} if data is not None else {}
    return Case("rest", name, method, path, data, {**headers, **kw.pop("headers", {})}, **kw)


def dav(name: str, method: str, path: str, body: str | bytes | None = None, **kw: Any) -> Case:
    return Case("caldav", name, method, path, body, **kw)


def wcap(name: str, command: str, errnos: tuple[int, ...], **params: str) -> Case:
    form = params.pop("form", None)
    query_string = "&".join(f"{k}={v}" for k, v in params.items())
    return Case("wcap", name, "POST" if form else "GET", f"/{command}.wcap?{query_string}", form=form, errnos=errnos)


def page(name: str, method: str, path: str, **kw: Any) -> Case:
    return Case("web", name, method, path, **kw)


CASES: list[Case] = [
    # ---------------------------------------------------------------- REST (/v1)
    *[
        rest(f"JSON nested 100,000 deep to {path}", method, path, raw=NESTED_JSON)
        for method, path in (
            ("POST", "/v1/users/signin"),
            ("POST", "/v1/users"),
            ("POST", "/v1/groups"),
            ("POST", "/v1/slots"),
            ("PATCH", "/v1/slots/1"),
            ("POST", "/v1/import/"),
            ("POST", "/v1/export/ical"),
        )
    ],
    *[
        rest(f"body {label}", "POST", "/v1/groups", raw=raw)
        for label, raw in (
            ("unfinished", "{"),
            ("an array", "[]"),
            ("null", "null"),
            ("a string", '"name"'),
            ("an infinite number", "1e999999"),
            ("invalid UTF-8", b'{"name": "\xff\xfe"}'),
            ("a lone surrogate", '{"name": "\\ud800"}'),
            ("a name that is a number", '{"name": 1e400}'),
            ("a name of 100,000 characters", json.dumps({"name": "n" * 100_000})),
            ("an empty name", '{"name": ""}'),
            ("a colour that is none", '{"name": "x", "defaultColor": "not a colour"}'),
            ("a zone that is none", '{"name": "x", "timezone": "Mars/Olympus_Mons"}'),
        )
    ],
    *[
        rest(f"slot id {value}", method, f"/v1/slots/{value}")
        for value in (HUGE, "-1", "abc", "1e3")
        for method in ("GET", "DELETE")
    ],
    rest("slot id too large to PATCH", "PATCH", f"/v1/slots/{HUGE}", {"title": "x"}),
    *[
        rest(f"slots {query_string}", "GET", f"/v1/me/slots?{query_string}")
        for query_string in (
            f"after={HUGE}",
            "after=-1e30",
            "limit=abc",
            "earliest=yesterday",
            "earliest=99999-01-01",
            "latest=2025-02-30",
        )
    ],
    *[
        rest(f"slot {label}", "POST", "/v1/slots", {"title": "x", **fields})
        for label, fields in (
            ("start that is no date", {"startDate": "soon", "endDate": "2025-01-01T00:00:00Z"}),
            ("ending before it starts", {"startDate": "2025-01-02T00:00:00Z", "endDate": "2025-01-01T00:00:00Z"}),
            ("in the year 99999", {"startDate": "99999-01-01T00:00:00Z", "endDate": "99999-01-02T00:00:00Z"}),
            ("with an unknown frequency", {"startDate": "2025-01-01T00:00:00Z", "rrule": "FREQ=NEVER"}),
            ("with a COUNT that is no number", {"startDate": "2025-01-01T00:00:00Z", "rrule": "FREQ=DAILY;COUNT=x"}),
            ("in two groups", {"slotGroups": ["a", "b"]}),
            ("in a group that is no uuid", {"slotGroups": ["../etc"]}),
            ("all day, maybe", {"startDate": "2025-01-01", "allday": "maybe"}),
        )
    ],
    rest(
        "slot with a rule matching no date",
        "POST",
        "/v1/slots",
        {"title": "x", "startDate": "2025-01-01T00:00:00Z", "rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"},
    ),
    *[rest(f"import of {label}", "POST", "/v1/import/", {"file": text}) for label, text in BAD_FILES.items()],
    *[
        rest(f"import of a file that is {label}", "POST", "/v1/import/", {"file": value})
        for label, value in (("a number", 5), ("an array of numbers", [1, 2]), ("an object", {"a": 1}))
    ],
    rest(
        "import of a raw binary body",
        "POST",
        "/v1/import/",
        raw=b"\x00\x01\x02" * 100,
        headers={"Content-Type": "text/calendar"},
    ),
    *[
        rest(f"export {label}", "POST", f"/v1/export/{kind}", body)
        for label, kind, body in (
            ("of an unknown kind", "pdf", {}),
            ("of an unknown group", "ical", {"group": "00000000-0000-0000-0000-000000000000"}),
            ("of a group that is no uuid", "ical", {"group": "../../etc/passwd"}),
            ("in an unknown zone", "ical", {"timezone": "Mars/Olympus_Mons"}),
            ("in an unknown CSV flavour", "outlook", {"flavor": "excel"}),
        )
    ],
    *[
        rest(f"imports {query_string}", "GET", f"/v1/imports?{query_string}")
        for query_string in (f"page={HUGE}", "page=abc", "page=0", f"per_page={HUGE}", "per_page=-5", "from=someday")
    ],
    *[
        rest(f"import {HUGE}{suffix}", method, f"/v1/imports/{HUGE}{suffix}")
        for method, suffix in (
            ("GET", ""),
            ("GET", "/status"),
            ("GET", "/details"),
            ("GET", "/entries"),
            ("DELETE", ""),
        )
    ],
    rest("a token of 5,000 characters", "GET", "/v1/me", headers={"Authorization": "Token token=" + "x" * 5000}),
    rest(
        "sign-up with a username of 1,000 characters",
        "POST",
        "/v1/users",
        {"username": "u" * 1000, "password": "correct horse"},
    ),
    rest("sign-up with a username that climbs", "POST", "/v1/users", {"username": "../x", "password": "correct horse"}),
    rest(
        "sign-in with a password of 900 KB", "POST", "/v1/users/signin", {"login": "alice", "password": "p" * 900_000}
    ),
    rest("a body over the size limit", "POST", "/v1/groups", raw=json.dumps({"name": "x" * (2 << 20)})),
    # ---------------------------------------------------------------- CalDAV (/dav/)
    *[
        dav(f"PUT of an object named {name!r}", "PUT", CAL + name, event())
        for name in ("%2e%2e", "%2E", ".", "a%00b.ics", "a%2Fb.ics", "n" * 300 + ".ics", "%2e%2e%2f%2e%2e%2fetc")
    ],
    *[dav(f"PUT of {label}", "PUT", CAL + "bad.ics", text) for label, text in BAD_FILES.items()],
    dav("PUT of an empty body", "PUT", CAL + "empty.ics", ""),
    dav("PUT of two UIDs", "PUT", CAL + "two.ics", event().replace("END:VCALENDAR", event(uid="x")[40:])),
    dav("PUT of a VTIMEZONE of 4 MB", "PUT", CAL + "tz.ics", BIG_TIMEZONE),
    dav("PUT of 11 MB", "PUT", CAL + "big.ics", event(f"DESCRIPTION:{'x' * (11 << 20)}")),
    dav(
        "PUT with an If-Match that matches nothing",
        "PUT",
        CAL + "new.ics",
        event(uid="new"),
        headers={"If-Match": '"nothing"'},
    ),
    *[
        dav(f"MKCALENDAR named {name!r}", "MKCALENDAR", f"/dav/calendars/alice/{name}/")
        for name in ("a%2Fb%00c", "%2e%2e", "%2E", "c" * 300, "calendar")
    ],
    *[
        dav(f"PROPFIND with {label}", "PROPFIND", CAL, body, headers={"Depth": "0"})
        for label, body in (
            ("the billion laughs", BILLION_LAUGHS),
            ("an external entity", XXE),
            ("a UTF-16 entity", UTF16_ENTITY),
            (
                "XML nested 100 deep",
                '<D:propfind xmlns:D="DAV:">' + "<D:prop>" * 100 + "</D:prop>" * 100 + "</D:propfind>",
            ),
            ("XML that never ends", '<D:propfind xmlns:D="DAV:"><D:prop>'),
            ("a body of 2 MB", '<D:propfind xmlns:D="DAV:">' + " " * (2 << 20) + "</D:propfind>"),
            ("the wrong root", '<D:lockinfo xmlns:D="DAV:"/>'),
        )
    ],
    dav("PROPFIND of infinite depth", "PROPFIND", CAL, headers={"Depth": "infinity"}),
    dav("PROPFIND of someone else's calendar", "PROPFIND", "/dav/calendars/bob/calendar/", headers={"Depth": "1"}),
    dav("PROPFIND of someone else's principal", "PROPFIND", "/dav/principals/bob/", headers={"Depth": "0"}),
    dav("PROPPATCH with a UTF-16 entity", "PROPPATCH", CAL, UTF16_ENTITY),
    *[
        dav(
            f"PROPPATCH of {label}",
            "PROPPATCH",
            CAL,
            f'<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
            f'xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>{prop}</D:prop></D:set></D:propertyupdate>',
            statuses=(207,),
        )
        for label, prop in (
            ("a time zone that is none", "<C:calendar-timezone>garbage</C:calendar-timezone>"),
            ("a colour that is none", "<A:calendar-color>no colour</A:calendar-color>"),
            ("a protected property", "<D:getetag>mine</D:getetag>"),
            ("a name of 100,000 characters", f"<D:displayname>{'n' * 100_000}</D:displayname>"),
        )
    ],
    *[
        dav(f"REPORT {label}", "REPORT", CAL, body, headers={"Depth": "1"})
        for label, body in (
            ("that is no XML", "report me"),
            ("of an unknown kind", '<D:foo xmlns:D="DAV:"/>'),
            ("with a time range that is no time", time_range_query("yesterday", "tomorrow")),
            ("with a time range that ends before it starts", time_range_query("20250201T000000Z", "20250101T000000Z")),
            (
                "with a zone that is no calendar",
                query(
                    "<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter "
                    'name="VCALENDAR"/></C:filter><C:timezone>junk</C:timezone>'
                ),
            ),
            (
                "with an unknown collation",
                query(
                    '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
                    '<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY">'
                    '<C:text-match collation="i;klingon">x</C:text-match></C:prop-filter>'
                    "</C:comp-filter></C:comp-filter></C:filter>"
                ),
            ),
            ("with no filter", query("<D:prop><D:getetag/></D:prop>")),
            (
                "with filters nested 40 deep",
                query(
                    "<D:prop><D:getetag/></D:prop><C:filter>"
                    + '<C:comp-filter name="VCALENDAR">' * 40
                    + "</C:comp-filter>" * 40
                    + "</C:filter>"
                ),
            ),
            ("of free/busy without a range", query("", "free-busy-query")),
            (
                "of sync with a token that is none",
                '<D:sync-collection xmlns:D="DAV:"><D:sync-token>junk</D:sync-token>'
                "<D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>",
            ),
            (
                "of sync with a huge token",
                '<D:sync-collection xmlns:D="DAV:"><D:sync-token>'
                f"http://almanac.invalid/sync/{HUGE}</D:sync-token>"
                "<D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>",
            ),
            (
                "of sync with a limit that is no number",
                '<D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
                "<D:sync-level>1</D:sync-level><D:limit><D:nresults>1e20"
                "</D:nresults></D:limit><D:prop/></D:sync-collection>",
            ),
        )
    ],
    dav(  # a calendar holds no collections: an infinite sync is a sync of its members (RFC 6578 3.3)
        "REPORT of sync of infinite depth",
        "REPORT",
        CAL,
        '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>infinite</D:sync-level><D:prop/>'
        "</D:sync-collection>",
        statuses=(207,),
    ),
    *[
        dav(f"{method} to {label}", method, CAL + "seed.ics", headers=headers)
        for method in ("MOVE", "COPY")
        for label, headers in (
            ("no Destination", {}),
            ("a Destination that is no URL", {"Destination": "http://[::1"}),
            ("a Destination of garbage", {"Destination": "%%%"}),
            ("someone else's calendar", {"Destination": "http://localhost/dav/calendars/bob/calendar/x.ics"}),
            ("a Destination that climbs", {"Destination": "/dav/calendars/alice/calendar/../../bob/calendar/x.ics"}),
            ("a Destination named '..'", {"Destination": "/dav/calendars/alice/calendar/%2e%2e"}),
            ("itself", {"Destination": CAL + "seed.ics"}),
        )
    ],
    # issue 26: a write that would change an object's UID, what a PUT may hold, reports where
    # they cannot go, sharing that names the owner or nobody, and paths that cannot exist
    dav("PUT of another UID over an object", "PUT", CAL + "seed.ics", event(uid="not-seed")),
    dav("PUT labelled JSON", "PUT", CAL + "json.ics", event(uid="json"), headers={"Content-Type": "application/json"}),
    dav(
        "PUT of an event and a VFREEBUSY",
        "PUT",
        CAL + "fb.ics",
        event(uid="fb").replace("END:VCALENDAR", "BEGIN:VFREEBUSY\r\nUID:fb2\r\nEND:VFREEBUSY\r\nEND:VCALENDAR"),
    ),
    dav(
        "REPORT of sync on an object",
        "REPORT",
        CAL + "seed.ics",
        '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>',
    ),
    dav(
        "REPORT of free/busy on the home",
        "REPORT",
        "/dav/calendars/alice/",
        query('<C:time-range start="20250101T000000Z" end="20250201T000000Z"/>', "free-busy-query"),
    ),
    *[
        dav(
            f"POST share naming {label}",
            "POST",
            CAL,
            '<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>mailto:bob@example.org'
            f"</D:href><CS:read/></CS:set><CS:set><D:href>{href}</D:href><CS:read/></CS:set></CS:share>",
        )
        for label, href in (
            ("the owner", "/dav/principals/alice/"),
            ("nobody", "mailto:nobody@example.org"),
            ("a path that climbs", "/dav/principals/../calendars/alice/"),
        )
    ],
    dav("POST share that is no XML", "POST", CAL, "share it"),
    *[
        dav(f"{method} below a calendar's member", method, CAL + "seed.ics/")
        for method in ("GET", "PROPFIND", "DELETE")
    ],
    dav("DELETE of a notification that is none", "DELETE", "/dav/notifications/alice/invite-1x.xml"),
    dav("DELETE of someone else's notification", "DELETE", "/dav/notifications/bob/invite-1.xml"),
    dav(
        "REPORT of sync with a notification token that is none",
        "REPORT",
        "/dav/notifications/alice/",
        '<D:sync-collection xmlns:D="DAV:"><D:sync-token>urn:almanac:notifications:alice:x:-1</D:sync-token>'
        "<D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>",
    ),
    dav(
        "MKCALENDAR of iCalendar labelled so",
        "MKCALENDAR",
        "/dav/calendars/alice/ics/",
        event(uid="mk"),
        headers={"Content-Type": "text/calendar"},
    ),
    dav("LOCK", "LOCK", CAL + "seed.ics"),
    dav("an unknown method", "BREW", CAL),
    dav("DELETE of the default calendar", "DELETE", CAL),
    dav("DELETE of someone else's object", "DELETE", "/dav/calendars/bob/calendar/seed.ics"),
    dav("GET of a name that is no UTF-8", "GET", CAL + "%ff%fe.ics"),
    dav("Basic credentials that are no base64", "PROPFIND", CAL, headers={"Authorization": "Basic !!!"}),
    # ---------------------------------------------------------------- WCAP (*.wcap)
    *[
        wcap(f"fetchcomponents_by_range with {param}", "fetchcomponents_by_range", (60, 13), **{param: value})
        for param, value in (
            ("maxResults", "abc"),
            ("maxResults", "1e20"),
            ("maxResults", HUGE),
            ("dtstart", "yesterday"),
            ("dtend", "20251340T000000Z"),
        )
    ],
    *[
        wcap(f"get_freebusy with duration={value}", "get_freebusy", (60, 39), calid="alice", duration=value)
        for value in ("abc", "999999999", "-5")
    ],
    wcap("get_freebusy with dtstart that is no time", "get_freebusy", (60, 39), calid="alice", dtstart="noon"),
    wcap("login with a password of 1 MB", "login", (1, 60), form={"user": "alice", "password": "p" * (1 << 20)}),
    wcap("login with a user of 100 KB", "login", (1,), form={"user": "u" * 100_000, "password": "p"}),
    wcap("a session id of 100 KB", "gettime", (1,), form={"id": "s" * 100_000}),
    wcap("tzid of Mars", "fetchcomponents_by_range", (18,), tzid="Mars/Olympus_Mons", dtstart="0", dtend="0"),
    wcap("tzidout of Mars", "fetchcomponents_by_range", (18,), tzidout="Mars/Olympus_Mons"),
    wcap("a calid that climbs", "fetchcomponents_by_range", (29,), calid="../../etc"),
    wcap("someone else's calid", "fetchcomponents_by_range", (28, 29), calid="bob"),
    wcap("an unknown fmt-out", "gettime", (58,), **{"fmt-out": "application/pdf"}),
    wcap("an unknown command", "format_disk", (52,)),
    *[
        wcap(f"storeevents {label}", "storeevents", (60, 14), uid=f"s{number}", **params)
        for number, (label, params) in enumerate(
            (
                ("with a dtstart that is no time", {"dtstart": "soon", "dtend": "20250101T000000Z"}),
                ("ending before it starts", {"dtstart": "20250102T000000Z", "dtend": "20250101T000000Z"}),
                ("with an unknown frequency", {"dtstart": "20250101T000000Z", "rrules": '"FREQ=NEVER"'}),
                (
                    "with a rule matching no date",
                    {"dtstart": "20250101T000000Z", "rrules": '"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"'},
                ),
            )
        )
    ],
    wcap("fetchevents_by_id of nothing", "fetchevents_by_id", (59,), uid="nothing"),
    wcap("fetchevents_by_id with a rid that is no time", "fetchevents_by_id", (60, 9), uid="seed", rid="soon"),
    wcap("deleteevents_by_id without a uid", "deleteevents_by_id", (60, 6)),
    wcap(
        "deletecomponents_by_range with dtstart no time",
        "deletecomponents_by_range",
        (60, 21),
        dtstart="x",
        dtend="20250101T000000Z",
    ),
    wcap("createcalendar with a calid holding a NUL", "createcalendar", (30, 60), calid="alice:a%2Fb%00c"),
    wcap("createcalendar with a calid of 500 characters", "createcalendar", (30, 60), calid="alice:" + "c" * 500),
    wcap("createcalendar of someone else's", "createcalendar", (28, 30, 60), calid="bob:mine"),
    wcap("an unknown content-out", "export", (58,), **{"content-out": "application/pdf"}),
    wcap("get_userprefs of someone else", "get_userprefs", (44,), userid="bob"),
    wcap("set_userprefs of 1 MB", "set_userprefs", (26, 60), form={"set_attrs": "x=" + "v" * (1 << 20)}),
    wcap("set_calprops with a name of 100,000 characters", "set_calprops", (8, 60), form={"name": "n" * 100_000}),
    *[
        wcap(f"import.wcap of {label}", "import", (77,), form={"calid": "alice", "file": text})
        for label, text in BAD_FILES.items()
    ],
    wcap("import.wcap into an unknown calendar", "import", (29, 77), form={"calid": "nobody:x", "file": event()}),
    wcap("import.wcap with a dtstart that is no time", "import", (77,), form={"dtstart": "x", "file": event()}),
    # ---------------------------------------------------------------- web pages (/app/)
    *[page(f"import {value}", "GET", f"/app/imports/{value}") for value in (HUGE, "abc", "-1")],
    page("history page huge", "GET", f"/app/imports?page={HUGE}", statuses=(2, 4)),
    page("history page that is no number", "GET", "/app/imports?page=abc", statuses=(2, 4)),
    page(
        "export of an unknown calendar", "GET", "/app/export?calendar=00000000-0000-0000-0000-000000000000&format=ics"
    ),
    page("export in an unknown format", "GET", "/app/export?format=pdf"),
    page("an import without its CSRF token", "POST", "/app/import", form={"calendar": "x"}, headers={"X-No-Csrf": "1"}),
    # alice's own import, which an undo from her own site would take back (the world made it)
    page(
        "an undo from another site",
        "POST",
        "/app/imports/{import}/undo",
        headers={"Origin": "http://evil.example"},
        statuses=(403,),
    ),
    page(
        "a sign-in from another site",
        "POST",
        "/app/signin",
        form={"username": "alice", "password": "correct horse"},
        headers={"Origin": "http://evil.example"},
    ),
    page(
        "a sign-in with a password of 1 MB",
        "POST",
        "/app/signin",
        form={"username": "alice", "password": "p" * (1 << 20)},
    ),
    page(
        "a session cookie of 4 KB", "GET", "/app/", headers={"Cookie": "almanac_session=" + "x" * 4000}, statuses=(3,)
    ),
]


# --------------------------------------------------------------------------- the run


async def snapshot(services: Services) -> list[Any]:
    """What a refusal must leave as it was: users, their calendars and every object."""
    state: list[Any] = []
    for user in await services.store.list_users():
        state.append((user.id, user.username, user.email, user.password_hash, user.prefs))
        for calendar in await services.store.list_calendars(user.id):
            state.append(
                (calendar.id, calendar.slug, calendar.name, calendar.description, calendar.color,
                 calendar.timezone, calendar.props, calendar.sync_revision)
            )  # fmt: skip
            state += [(o.href, o.etag) for o in await services.store.list_objects([calendar.id])]
    return state


async def make_world(http: Any, token: str, jar: Any) -> dict[str, Any]:
    """alice (``token``) with one event and her sessions in every door; bob, whose things she
    must not reach. ``http`` is a TestClient or a ClientSession with a base URL."""
    for who in ("alice", "bob"):
        put = await http.put(f"/dav/calendars/{who}/calendar/seed.ics", data=event(uid="seed"), headers=basic(who))
        assert put.status == 201
    login = await (await http.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    session = re.search(r"X-NSCP-WCAP-SESSION-ID:(\S+)", login)
    signin = await http.post(
        "/app/signin", data={"username": "alice", "password": "correct horse"}, allow_redirects=False
    )
    assert signin.status == 303 and session is not None
    page_html = await (await http.get("/app/import")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page_html)
    assert csrf is not None
    auth = {"Authorization": token, "Accept": "application/json"}
    imported = await http.post("/v1/import/", json={"file": event(uid="imported")}, headers=auth)
    assert imported.status == 200, await imported.text()
    [job] = await (await http.get("/v1/imports", headers=auth)).json()
    return {"wcap": session.group(1), "csrf": csrf.group(1), "token": token, "jar": jar, "import": job["id"]}


@pytest.fixture
async def world(client: TestClient, alice: Account, bob: Account) -> dict[str, Any]:
    made = await make_world(client, alice.headers["Authorization"], client.session.cookie_jar)
    return {**made, "alice": alice}


async def send(http: Any, case: Case, world: dict[str, Any]) -> Any:
    """Send one case as alice would through its door (``http``: as for make_world)."""
    headers = dict(case.headers)
    path = case.path.replace("{import}", str(world["import"]))
    data: Any = case.body
    if case.door == "rest":
        headers.setdefault("Authorization", world["token"])
    elif case.door == "caldav":
        headers.setdefault("Authorization", basic("alice")["Authorization"])
    elif case.door == "wcap":
        if "id" not in (case.form or {}) and not path.startswith("/login."):
            path += f"&id={world['wcap']}"
        data = case.form
    else:
        data = case.form
        if "Cookie" in headers:
            world["jar"].clear()  # a stranger's browser
        if case.method == "POST" and "X-No-Csrf" not in headers:
            headers["X-CSRF-Token"] = world["csrf"]
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        # encoded off the loop: urlencode takes 0.13 s for 1 MB, which would stall the probes
        # of this very process and be blamed on the server
        data = await asyncio.to_thread(urlencode, data)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return await http.request(case.method, path, data=data, headers=headers, allow_redirects=False)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_hostile_input_is_refused_and_changes_nothing(
    client: TestClient, world: dict[str, Any], case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    services: Services = client.app[SERVICES]
    before = await snapshot(services)
    limit = await probe_limit(lambda: world["alice"].get("/v1/me"))
    response, slowest = await while_probing(world["alice"], send(client, case, world))
    text = await response.text()
    if case.door == "wcap":
        assert response.status == 200, text[:300]
        errnos = [int(n) for n in re.findall(r"X-NSCP-WCAP-ERRNO[:>](-?\d+)", text)]
        assert errnos and errnos[0] in case.errnos, text[:500]
    else:
        assert response.status in case.statuses or response.status // 100 in case.statuses, (
            response.status,
            text[:500],
        )
    assert await snapshot(services) == before
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]  # one line each
    _, after = await while_probing(world["alice"], world["alice"].get("/v1/me"))
    assert max(slowest, after) < limit, f"a probe waited {max(slowest, after):.3f} s (limit {limit:.3f} s)"


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) >= 150, len(CASES)
    assert {c.door for c in CASES} == {"rest", "caldav", "wcap", "web"}
