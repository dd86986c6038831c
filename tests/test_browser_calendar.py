"""The calendar on the web in a real browser (Debian's Chromium, driven by Playwright), as issue 29
asks: a user imports a file and sees its events in the month, week and agenda views in their
browser's time zone; creates a weekly event on the page, moves one occurrence, deletes the
series, and a CalDAV client (python-caldav) sees each change; search finds an event by its
place; a calendar is created, recoloured and deleted; a read-only sharee sees no edit button
and a crafted POST is refused. Screenshots of each page, desktop and phone (see
``tests.helpers.screenshots``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import caldav
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from tests.helpers import screenshots

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
#: a weekly meeting at 08:00 UTC (09:00 in Paris) from Monday 7 December 2026, and a holiday
FILE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:review@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261207T080000Z\r\n"
    "DTEND:20261207T090000Z\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:Design review\r\n"
    "LOCATION:Lighthouse room\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:holiday@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;VALUE=DATE:20261224\r\n"
    "DTEND;VALUE=DATE:20261227\r\nSUMMARY:Holidays\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def sign_up(server: TestServer, name: str) -> None:
    async with aiohttp.ClientSession() as http:
        await http.post(server.make_url("/v1/users"), json={"username": name, "password": "correct horse"})


async def signed_in(browser: Browser, server: TestServer, name: str, **options: object) -> Page:
    page = await browser.new_page(timezone_id="Europe/Paris", **options)  # type: ignore[arg-type]
    await page.goto(str(server.make_url("/app/signin")))
    await page.fill("#username", name)
    await page.fill("#password", "correct horse")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("heading", name="Your calendars")).to_be_visible()
    return page


def seen_by_caldav(server: TestServer, user: str = "alice") -> dict[str, str]:
    """What python-caldav finds in the user's default calendar: UID -> the object's text."""
    with caldav.DAVClient(url=str(server.make_url("/dav/")), username=user, password="correct horse") as client:
        calendar = next(c for c in client.principal().calendars() if c.url.path.endswith("/calendar/"))
        return {str(e.icalendar_component["UID"]): str(e.data) for e in calendar.events()}


async def caldav_sees(server: TestServer) -> dict[str, str]:
    return await asyncio.to_thread(seen_by_caldav, server)


async def test_the_calendar_in_a_browser(browser: Browser, server: TestServer, tmp_path: Path) -> None:
    shots = screenshots(tmp_path)
    for name in ("alice", "bob"):
        await sign_up(server, name)
    page = await signed_in(browser, server, "alice", viewport=DESKTOP)

    # import a file, then see it in the three views, in the browser's zone (Paris)
    await page.get_by_role("link", name="Import", exact=True).click()
    upload = tmp_path / "team.ics"
    upload.write_text(FILE)
    await page.set_input_files("#file", str(upload))
    await page.select_option("#calendar", label="Calendar")
    await page.click("#import-button")
    await expect(page.locator("#created")).to_have_text("2", timeout=15_000)
    await page.goto(str(server.make_url("/app/calendar?view=month&date=2026-12-01")))
    await expect(page.get_by_text("Times in Europe/Paris")).to_be_visible()
    month = page.locator("table.month")
    await expect(month.locator("li.event", has_text="Design review")).to_have_count(5)
    await expect(month.locator("li.event", has_text="09:00 Design review").first).to_be_visible()
    await expect(month.locator("li.event", has_text="Holidays")).to_have_count(3)
    await page.get_by_role("link", name="Week").click()
    await page.get_by_role("link", name="Next week").click()  # 14-20 December
    await expect(page.locator(".week-grid li.event", has_text="Design review")).to_have_count(1)
    await page.get_by_role("link", name="Agenda").click()
    await expect(page.locator(".agenda li.event", has_text="Design review").first).to_contain_text("09:00")
    await page.goto(str(server.make_url("/app/calendar?view=week&date=2026-12-21")))
    await expect(page.locator(".week-allday li.event", has_text="Holidays")).to_have_count(3)

    # a weekly event made on the page, seen by a CalDAV client
    await page.get_by_role("link", name="New event").click()
    await page.fill("#summary", "Yoga")
    await page.fill("#start_date", "2026-12-22")
    await page.fill("#start_time", "18:00")
    await page.fill("#end_date", "2026-12-22")
    await page.fill("#end_time", "19:00")
    await page.fill("#location", "Gym hall")
    await page.select_option("#repeat", "WEEKLY")
    await page.check("input[name=days][value=TU]")
    await page.select_option("#ends", "count")
    await page.fill("#count", "4")
    await page.get_by_role("button", name="Create").click()
    yoga = page.locator(".week-grid li.event", has_text="Yoga")
    await expect(yoga).to_have_count(1)
    found = await caldav_sees(server)
    (uid,) = [u for u, text in found.items() if "SUMMARY:Yoga" in text]
    assert "RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=TU" in found[uid] and "TZID=Europe/Paris:20261222T180000" in found[uid]

    # one occurrence moved: the next Tuesday's, an hour later
    await page.goto(str(server.make_url("/app/calendar?view=week&date=2026-12-29")))
    await page.locator(".week-grid li.event", has_text="Yoga").get_by_role("link").click()
    await expect(page.locator("#start_date")).to_have_value("2026-12-29")
    await page.fill("#summary", "Yoga (late)")
    await page.fill("#start_time", "19:00")
    await page.fill("#end_time", "20:00")
    await page.check("input[name=scope][value=this]")
    await page.screenshot(path=shots / "event-edit.png", full_page=True)
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".week-grid li.event", has_text="19:00 Yoga (late)")).to_have_count(1)
    text = (await caldav_sees(server))[uid]
    assert "RECURRENCE-ID;TZID=Europe/Paris:20261229T180000" in text and "SUMMARY:Yoga (late)" in text

    # the series deleted
    await page.locator(".week-grid li.event", has_text="Yoga").get_by_role("link").click()
    await page.locator("form.delete input[name=scope][value=all]").check()
    await page.locator("form.delete").get_by_role("button", name="Delete").click()
    await expect(page.locator("li.event", has_text="Yoga")).to_have_count(0)
    assert uid not in await caldav_sees(server)

    # search by place
    await page.get_by_role("link", name="Search", exact=True).click()
    await page.fill("#q", "lighthouse")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator(".results li")).to_have_count(1)
    await expect(page.locator(".results li")).to_contain_text("Design review")

    # a calendar created, recoloured and deleted
    await page.get_by_role("link", name="Calendars", exact=True).click()
    await page.get_by_text("New calendar").click()
    await page.fill("#new-name", "Garden")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("status")).to_contain_text("The calendar is made")
    await page.fill("#color", "#2e8b57")
    await page.screenshot(path=shots / "calendar-settings.png", full_page=True)
    await page.get_by_role("button", name="Save").click()
    card = page.locator(".card", has_text="Garden")
    await expect(card.locator("svg rect")).to_have_attribute("fill", "#2E8B57")
    await card.get_by_role("link", name="Settings…").click()
    await page.check("input[name=confirm]")
    await page.get_by_role("button", name="Delete the calendar").click()
    await expect(page.locator(".card", has_text="Garden")).to_have_count(0)

    # bob may read alice's calendar: no edit button, and a crafted POST is refused
    await page.goto(str(server.make_url("/app/")))
    await page.locator(".card", has_text="Calendar").get_by_role("link", name="Sharing…").click()
    await page.fill("input[name=user]", "bob")
    await page.select_option("select[name=level]", "read")
    await page.click("form.share button[type=submit]")
    bob = await signed_in(browser, server, "bob", viewport=PHONE)
    await bob.get_by_role("button", name="Accept").click()
    await bob.goto(str(server.make_url("/app/calendar?view=agenda&date=2026-12-07")))
    await bob.locator(".agenda li.event", has_text="Design review").first.get_by_role("link").click()
    await expect(bob.get_by_role("heading", name="Design review")).to_be_visible()
    await expect(bob.get_by_text("(read only)")).to_be_visible()
    await expect(bob.get_by_role("button")).to_have_count(1)  # only "Sign out"
    await bob.screenshot(path=shots / "event-read-only-phone.png", full_page=True)
    event_id = re.search(r"/app/events/(\d+)", bob.url).group(1)  # type: ignore[union-attr]
    csrf = await bob.locator("main").get_attribute("data-csrf")
    crafted = await bob.request.post(
        str(server.make_url(f"/app/events/{event_id}/delete")), form={"csrf": csrf or "", "scope": "all"}
    )
    assert crafted.status == 403
    assert "review@test" in await caldav_sees(server)
    await bob.close()

    # every new page, desktop and phone
    pages = {
        "calendar-month": "/app/calendar?view=month&date=2026-12-01",
        "calendar-week": "/app/calendar?view=week&date=2026-12-07",
        "calendar-agenda": "/app/calendar?view=agenda&date=2026-12-07",
        "event-new": "/app/events/new?date=2026-12-08",
        "search": "/app/search?q=review",
        "account": "/app/account",
        "signup": "/app/signup",
    }
    for size, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        await page.set_viewport_size(size)  # type: ignore[arg-type]
        for name, path in pages.items():
            await page.goto(str(server.make_url(path)))
            await expect(page.locator("main h1")).to_be_visible()
            await page.screenshot(path=shots / f"{name}{suffix}.png", full_page=bool(suffix))
    await page.goto(str(server.make_url("/app/")))
    await page.locator(".card", has_text="Calendar").get_by_role("link", name="Settings…").click()
    await page.screenshot(path=shots / "calendar-settings-phone.png", full_page=True)
    await page.close()
