"""Real CalDAV clients against a server started like the README starts it: python-caldav end to
end, and caldav-server-tester's verdict on every feature it probes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import caldav

from tests.helpers import LIVE_OTHER, LIVE_PASSWORD, LIVE_USER

#: what caldav-server-tester may report as other than "full", and why
#: the tester (1.7) does not probe principal search ("unknown"); python-caldav's search is tested below
UNPROBED = {"principal-search"}
DELIBERATE = {"create-calendar.auto"}  # a calendar appearing because a client read a wrong URL is a bug
UNOBSERVABLE = {
    "well-known",  # the tool does not probe /.well-known on localhost
    "url.encode-at.literal.principal",  # needs a username with "@"; Almanac's usernames are URL-safe
}


def test_python_caldav_end_to_end(live_server: str) -> None:
    with caldav.DAVClient(url=live_server, username=LIVE_USER, password=LIVE_PASSWORD) as client:
        principal = client.principal()
        assert str(principal.url).endswith("/dav/principals/ada/")
        [found] = client.search_principals(name="AD")  # principal-property-search, caseless substring
        assert found.url == principal.url and not client.search_principals(name="nobody")
        assert [c.url.path for c in principal.calendars()] == ["/dav/calendars/ada/calendar/"]
        calendar = principal.make_calendar(name="Demo", cal_id="demo")
        assert calendar.get_display_name() == "Demo"
        standup = calendar.save_event(
            dtstart=datetime(2026, 5, 17, 10, tzinfo=UTC),
            dtend=datetime(2026, 5, 17, 11, tzinfo=UTC),
            summary="Standup",
            rrule={"FREQ": "DAILY", "COUNT": 5},
        )
        calendar.save_event(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:lunch-1\r\n"
            "DTSTAMP:20260501T000000Z\r\nDTSTART:20260519T120000Z\r\nDTEND:20260519T130000Z\r\nSUMMARY:Lunch\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        calendar.save_todo(summary="Write the report", due=datetime(2026, 5, 18, 17, tzinfo=UTC))
        window = {"start": datetime(2026, 5, 18, tzinfo=UTC), "end": datetime(2026, 5, 20, tzinfo=UTC)}
        found = calendar.search(event=True, **window)
        assert sorted(str(e.icalendar_component["SUMMARY"]) for e in found) == ["Lunch", "Standup"]
        expanded = calendar.search(event=True, expand=True, **window)
        starts = sorted(e.icalendar_component["DTSTART"].dt for e in expanded)
        assert starts == [
            datetime(2026, 5, 18, 10, tzinfo=UTC),
            datetime(2026, 5, 19, 10, tzinfo=UTC),
            datetime(2026, 5, 19, 12, tzinfo=UTC),
        ]
        todos = calendar.search(todo=True, **window)
        assert [str(t.icalendar_component["SUMMARY"]) for t in todos] == ["Write the report"]
        synced = calendar.objects_by_sync_token(load_objects=True)
        assert len(list(synced)) == 3
        standup.icalendar_component["SUMMARY"] = "Standup (moved)"
        standup.save()
        updated, deleted = synced.sync()
        assert [str(o.icalendar_component["SUMMARY"]) for o in updated] == ["Standup (moved)"] and not deleted
        todos[0].delete()
        updated, deleted = synced.sync()
        assert not updated and len(deleted) == 1
        calendar.delete()
        assert [c.url.path for c in principal.calendars()] == ["/dav/calendars/ada/calendar/"]


def test_caldav_server_tester_finds_every_feature_full(live_server: str, tmp_path: Path) -> None:
    """Every feature, scheduling's included: run with two users (its config file's sections),
    it invites one from the other, checks delivery to the inbox, auto-scheduling, Schedule-Tag and
    that an attendee's answer keeps it (stable-partstat, which most servers fail)."""
    tester = Path(sys.executable).with_name("caldav-server-tester")
    users = tmp_path / "users.yaml"
    users.write_text("".join(
        f"{name}:\n  caldav_url: {live_server}\n  caldav_username: {name}\n  caldav_password: {LIVE_PASSWORD}\n"
        for name in (LIVE_USER, LIVE_OTHER)
    ))  # fmt: skip
    result = subprocess.run(
        [str(tester), "--config-section", LIVE_USER, "--config-section", LIVE_OTHER, "--format", "hints"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "CALDAV_CONFIG_FILE": str(users)},
    )  # fmt: skip
    features = ast.literal_eval(result.stdout[result.stdout.index("{") :])
    graded = {name: value["support"] for name, value in features.items() if "support" in value}
    assert len(graded) > 80, result.stderr[-2000:]
    allowed = DELIBERATE | UNOBSERVABLE | UNPROBED
    short = {
        name: level
        for name, level in graded.items()
        if level != "full" and not any(name == a or name.startswith(f"{a}.") for a in allowed)
    }
    assert short == {}, result.stderr[-2000:]
    scheduling = [name for name in graded if name.startswith("scheduling")]
    assert {"scheduling.auto-schedule", "scheduling.mailbox.inbox-delivery", "scheduling.schedule-tag",
            "scheduling.schedule-tag.stable-partstat"} <= set(scheduling)  # fmt: skip
