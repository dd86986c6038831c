"""protocol/dav.py: safe request parsing and multistatus replies (the CalDAV door's groundwork)."""

from __future__ import annotations

import pytest
from lxml import etree

from protocol import dav
from protocol.dav import CALDAV, CS, DAV, BadRequest, PropstatResponse, tag

THUNDERBIRD_PROBE = (
    b"<D:propfind xmlns:D='DAV:' xmlns:A='http://apple.com/ns/ical/' xmlns:C='urn:ietf:params:xml:ns:caldav'>"
    b"<D:prop><D:resourcetype/><D:owner/><D:displayname/><D:current-user-principal/>"
    b"<D:current-user-privilege-set/><A:calendar-color/><C:calendar-home-set/></D:prop></D:propfind>"
)


def test_propfind_bodies() -> None:
    probe = dav.parse_propfind(THUNDERBIRD_PROBE)
    assert probe.kind == "prop" and probe.names[0] == tag(DAV, "resourcetype")
    assert tag(CALDAV, "calendar-home-set") in probe.names
    assert dav.parse_propfind(b"").kind == "allprop"
    assert dav.parse_propfind(b'<propfind xmlns="DAV:"><propname/></propfind>').kind == "propname"
    include = dav.parse_propfind(
        b'<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><allprop/>'
        b"<include><C:calendar-description/></include></propfind>"
    )
    assert include == dav.PropfindRequest("allprop", (tag(CALDAV, "calendar-description"),))
    with pytest.raises(BadRequest):
        dav.parse_propfind(b'<propfind xmlns="DAV:"><nothing/></propfind>')
    with pytest.raises(BadRequest):
        dav.parse_propfind(b"<propfind><prop>")  # not well-formed


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<propfind xmlns="DAV:"><prop><displayname>&b;</displayname></prop></propfind>',
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><propfind xmlns="DAV:">&e;</propfind>',
        b'<propfind xmlns="DAV:">' + b"<a>" * 40 + b"</a>" * 40 + b"</propfind>",
    ],
    ids=["entity expansion", "external entity", "too deep"],
)
def test_hostile_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        dav.parse(body)


def test_multistatus_and_errors() -> None:
    body = dav.multistatus(
        [
            PropstatResponse(
                "/dav/calendars/alice/calendar/",
                found=[
                    dav.element(tag(CS, "getctag"), "7"),
                    dav.element(
                        tag(DAV, "resourcetype"),
                        None,
                        dav.element(tag(DAV, "collection")),
                        dav.element(tag(CALDAV, "calendar")),
                    ),
                ],
                missing=[tag(DAV, "owner")],
            ),
            PropstatResponse("/dav/calendars/alice/calendar/gone.ics", status=404),
        ],
        sync_token="http://almanac/sync/7",
    )
    root = etree.fromstring(body)
    ns = {"D": DAV, "C": CALDAV, "CS": CS}
    first, second = root.findall("D:response", ns)
    statuses = [s.text for s in first.findall("D:propstat/D:status", ns)]
    assert statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"]
    assert first.find("D:propstat/D:prop/CS:getctag", ns).text == "7"
    assert first.find("D:propstat/D:prop/D:resourcetype/C:calendar", ns) is not None
    assert second.find("D:status", ns).text == "HTTP/1.1 404 Not Found"
    assert root.find("D:sync-token", ns).text == "http://almanac/sync/7"
    error = etree.fromstring(dav.error(tag(DAV, "valid-sync-token")))
    assert error.tag == tag(DAV, "error") and error[0].tag == tag(DAV, "valid-sync-token")
