"""The web pages in a real browser (Debian's Chromium, driven by Playwright): sign in, import a
file with a bad line (preview, progress, details), undo, export; and the pages' defences.

Screenshots of each page go to ``tmp_path``, or to the folder named by ALMANAC_SCREENSHOTS
(``ALMANAC_SCREENSHOTS=docs/screenshots ./scripts/test.sh -k web`` refreshes the README's).
"""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect

from bench.generate import ics
from tests.helpers import Account, screenshots

PHONE = {"width": 390, "height": 844}
EVENTS = 300


def file_with_a_bad_line(folder: Path) -> tuple[Path, int]:
    """A generated .ics of EVENTS events, one of them with a broken DTSTART; and the line its
    event begins on (where errors are reported)."""
    text = ics(EVENTS, prefix="web").decode()
    text = text.replace("DTSTART:2", "DTSTART:tomorrow-ish 2", 1)
    line = text[: text.rindex("BEGIN:VEVENT", 0, text.index("DTSTART:tomorrow"))].count("\n") + 1
    path = folder / "work-calendar.ics"
    path.write_text(text)
    return path, line


async def sign_up(server: TestServer, name: str) -> None:
    async with aiohttp.ClientSession() as http:
        await http.post(server.make_url("/v1/users"), json={"username": name, "password": "correct horse"})


async def sign_in(page: Page, server: TestServer, name: str) -> None:
    await page.goto(str(server.make_url("/app/")))
    await expect(page).to_have_url(re.compile(r"/app/signin\?next="))
    await page.fill("#username", name)
    await page.fill("#password", "correct horse")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("heading", name="Your calendars")).to_be_visible()


async def test_import_preview_progress_details_undo_export(
    browser: Browser,
    server: TestServer,
    tmp_path: Path,
) -> None:
    shots = screenshots(tmp_path)
    await sign_up(server, "grace")
    page = await browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    await page.goto(str(server.make_url("/app/signin")))
    await page.fill("#username", "grace")
    await page.fill("#password", "wrong password")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    await page.screenshot(path=shots / "signin.png")
    await sign_in(page, server, "grace")
    count = page.locator(".card .count").first
    await expect(count).to_have_text("0")

    # import: preview first (it shows the bad line), then import the good entries
    await page.get_by_role("link", name="Import into…").first.click()
    path, bad_line = file_with_a_bad_line(tmp_path)
    await page.set_input_files("#file", str(path))
    await page.fill("#dtstart", "2024-01-01")
    await page.click("#preview-button")
    summary = page.locator("#preview-summary")
    await expect(summary).to_contain_text(f"{EVENTS - 1} new, 0 updated")
    await expect(summary).to_contain_text("1 line error(s): as it is, the file would import nothing")
    errors = page.locator("#preview-errors tbody tr")
    await expect(errors).to_have_count(1)
    await expect(errors.first.locator("td").first).to_have_text(str(bad_line))
    await page.check("#skip_invalid")
    await page.screenshot(path=shots / "import-preview.png", full_page=True)
    await page.click("#import-button")
    await expect(page.locator("#progress")).to_be_visible()
    await page.screenshot(path=shots / "import-progress.png")

    # the import's page: counts, the bad line and why
    await expect(page).to_have_url(re.compile(r"/app/imports/\d+$"), timeout=30_000)
    await expect(page.locator("#status")).to_have_text("complete")
    await expect(page.locator("#created")).to_have_text(str(EVENTS - 1))
    line_errors = page.locator("#line-errors tbody tr")
    await expect(line_errors).to_have_count(1)
    await expect(page.locator("#line-errors caption")).to_have_text("1 line error")
    await expect(line_errors.first).to_contain_text(str(bad_line))
    await expect(line_errors.first).to_contain_text("DTSTART")
    await page.screenshot(path=shots / "import-details.png", full_page=True)
    await page.get_by_role("link", name="Calendars").click()
    await expect(count).to_have_text(str(EVENTS - 1))

    # export what is there, in each format
    for label, start in ((".ics", "BEGIN:VCALENDAR"), ("Outlook .csv", '"Subject"'), ("Timeslot .json", "[")):
        async with page.expect_download() as waiting:
            await page.get_by_role("link", name=label).first.click()
        download = await waiting.value
        text = Path(await download.path()).read_text()
        assert text.startswith(start) and download.suggested_filename.startswith("Calendar.")
        if label == ".ics":
            assert text.count("BEGIN:VEVENT") == EVENTS - 1
    await page.screenshot(path=shots / "calendars.png")

    # the history, and undo from the import's page
    await page.get_by_role("link", name="History").click()
    await expect(page.locator(".history tbody tr")).to_have_count(1)
    await page.screenshot(path=shots / "history.png")
    await page.get_by_role("link", name="work-calendar.ics").click()
    await page.click("#undo")
    await expect(page.get_by_role("status")).to_contain_text("Undone")
    await expect(page.locator("#status")).to_have_text("undone")
    await page.get_by_role("link", name="Calendars").click()
    await expect(count).to_have_text("0")

    await page.get_by_role("link", name="Connect").click()
    await expect(page.locator("#caldav-url")).to_have_text(str(server.make_url("/dav/")))
    await page.screenshot(path=shots / "connect.png", full_page=True)
    phone = await browser.new_page(viewport=PHONE)
    await sign_in(phone, server, "grace")
    await phone.screenshot(path=shots / "calendars-phone.png")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/app/signin$"))


async def test_without_script_the_import_still_works(browser: Browser, server: TestServer, tmp_path: Path) -> None:
    await sign_up(server, "hopper")
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await sign_in(page, server, "hopper")
    await page.goto(str(server.make_url("/app/import")))
    path, _ = file_with_a_bad_line(tmp_path)
    path.write_text(ics(20, prefix="plain").decode())
    await page.set_input_files("#file", str(path))
    await page.click("#import-button")
    await expect(page).to_have_url(re.compile(r"/app/imports/\d+$"))
    for _ in range(50):  # no script: the person reloads
        if await page.locator("#status").inner_text() == "complete":
            break
        await page.wait_for_timeout(100)
        await page.reload()
    await expect(page.locator("#created")).to_have_text("20")


async def test_cookie_csrf_and_isolation(client: TestClient, alice: Account, bob: Account) -> None:
    signin = await client.post(
        "/app/signin", data={"username": "alice", "password": "correct horse"}, allow_redirects=False
    )
    cookie = signin.headers["Set-Cookie"]
    assert signin.status == 303 and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = await client.get("/app/")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    token = re.search(r'data-csrf="([0-9a-f]+)"', await page.text()).group(1)  # type: ignore[union-attr]
    # an upload without the token (a form on another site) is refused and records nothing
    form = aiohttp.FormData()
    form.add_field("file", b"BEGIN:VCALENDAR\r\n", filename="x.ics")
    assert (await client.post("/app/import", data=form)).status == 403
    forged = await client.post("/app/signout", data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert forged.status == 403
    assert await (await alice.get("/v1/imports")).json() == []
    # bob's import is not alice's to see or undo
    ics_file = aiohttp.FormData()
    ics_file.add_field("file", ics(3, prefix="bob"), filename="bob.ics")
    job = await (await bob.post("/v1/imports", data=ics_file)).json()
    assert (await client.get(f"/app/imports/{job['id']}")).status == 404
    undo = await client.post(f"/app/imports/{job['id']}/undo", data={"csrf": token})
    assert undo.status == 404
    signout = await client.post("/app/signout", data={"csrf": token}, allow_redirects=False)
    assert signout.status == 303
    assert (await client.get("/app/", allow_redirects=False)).status == 303


async def test_sharing_pages(browser: Browser, server: TestServer, tmp_path: Path) -> None:
    """Alice shares her calendar with Bob from its sharing page; Bob accepts on his; Alice turns
    the public address on (a subscribing client reads it), makes a new one, and revokes Bob."""
    shots = screenshots(tmp_path)
    for name in ("alice", "bob"):
        await sign_up(server, name)
    alice = await browser.new_page(viewport={"width": 1100, "height": 800})
    await sign_in(alice, server, "alice")
    await alice.get_by_role("link", name="Sharing…").first.click()
    await expect(alice.get_by_role("heading", name="Sharing “Calendar”")).to_be_visible()
    await alice.fill("input[name=user]", "nobody")
    await alice.click("form.share button[type=submit]")
    await expect(alice.get_by_role("alert")).to_have_text("There is no user nobody.")
    await alice.fill("input[name=user]", "bob")
    await alice.select_option("select[name=level]", "read-write")
    await alice.click("form.share button[type=submit]")
    row = alice.locator("tr.grant[data-user=bob]")
    await expect(row).to_contain_text("read-write")
    await expect(row).to_contain_text("invited")

    bob = await browser.new_page(viewport={"width": 1100, "height": 800})
    await sign_in(bob, server, "bob")
    shared = bob.locator("li.shared")
    await expect(shared).to_contain_text("from alice · read-write · invitation")
    await bob.screenshot(path=shots / "shared-with-me.png", full_page=True)
    await shared.get_by_role("button", name="Accept").click()
    await expect(shared.get_by_role("button", name="Leave")).to_be_visible()
    async with aiohttp.ClientSession() as http:  # his calendar app sees it at once
        home = await http.request(
            "PROPFIND", server.make_url("/dav/calendars/bob/"), headers={"Depth": "1"},
            auth=aiohttp.BasicAuth("bob", "correct horse"),
        )  # fmt: skip
        assert "/dav/calendars/bob/alice-calendar/" in await home.text()

    await alice.reload()
    await expect(row).to_contain_text("active")
    await alice.get_by_role("button", name="Turn on with busy times only").click()
    address = await alice.locator("#feed-url").inner_text()
    assert address.startswith(str(server.make_url("/feeds/")))
    await expect(alice.locator("#feed-webcal")).to_have_text(re.compile(r"^webcal://"))
    await alice.screenshot(path=shots / "sharing.png", full_page=True)
    async with aiohttp.ClientSession() as http:
        assert (await http.get(address)).status == 200
        await alice.get_by_role("button", name="New address, full details").click()
        await expect(alice.locator("#feed-url")).not_to_have_text(address)
        assert (await http.get(address)).status == 404
    await alice.goto(str(server.make_url("/app/")))
    await alice.get_by_role("link", name="Sharing…").first.click()
    await expect(alice.locator("#feed-state")).to_contain_text("full details")
    new_address = await alice.locator("#feed-url").inner_text()  # its owner sees the address again
    assert new_address != address and new_address.startswith(str(server.make_url("/feeds/")))
    await row.get_by_role("button", name="Revoke").click()
    await expect(row).to_contain_text("kicked")
    await bob.reload()
    await expect(bob.locator("li.shared")).to_have_count(0)


async def test_invitations_page(browser: Browser, server: TestServer) -> None:
    """A user without a calendar program sees how many invitations wait (in the navigation),
    answers one on the Invitations page, and the organizer's calendar has the answer."""
    async with aiohttp.ClientSession() as http:
        for name in ("alice", "bob"):
            await http.post(
                server.make_url("/v1/users"),
                json={"username": name, "password": "correct horse", "email": f"{name}@example.org"},
            )
        meeting = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:web-1\r\n"
            "DTSTAMP:20270101T000000Z\r\nDTSTART:20270405T090000Z\r\nDTEND:20270405T100000Z\r\nSUMMARY:Roadmap\r\n"
            "ORGANIZER:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        alice = aiohttp.BasicAuth("alice", "correct horse")
        async with http.put(
            server.make_url("/dav/calendars/alice/calendar/web-1.ics"), data=meeting, auth=alice,
            headers={"Content-Type": "text/calendar"},
        ) as created:  # fmt: skip
            assert created.status == 201
        page = await browser.new_page()
        await sign_in(page, server, "bob")
        invitations = page.get_by_role("link", name=re.compile("Invitations"))
        await expect(invitations).to_contain_text("1")
        await invitations.click()
        await expect(page.get_by_role("heading", name="Roadmap")).to_be_visible()
        await expect(page.get_by_text("From alice@example.org")).to_be_visible()
        await page.get_by_role("button", name="Accept").click()
        await expect(page.get_by_text("No invitation is waiting for your answer.")).to_be_visible()
        await expect(invitations).not_to_contain_text("1")
        async with http.get(server.make_url("/dav/calendars/alice/calendar/web-1.ics"), auth=alice) as stored:
            assert "PARTSTAT=ACCEPTED" in await stored.text()
        await page.close()
