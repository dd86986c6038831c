"""A real browser (Debian's Chromium, driven by Playwright) uploads through the WCAP forms."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from tests.helpers import DATA


async def sign_up_and_log_in(server: TestServer, name: str) -> str:
    credentials = {"username": name, "password": "correct horse"}
    async with aiohttp.ClientSession() as http:
        await http.post(server.make_url("/v1/users"), json=credentials)
        login = await http.get(server.make_url("/login.wcap"), params={"user": name, "password": "correct horse"})
        text = await login.text()
    return re.search(r"SESSION-ID:(\S+)", text).group(1)  # type: ignore[union-attr]


async def summaries(server: TestServer, session: str) -> set[str]:
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            server.make_url("/fetchcomponents_by_range.wcap"), params={"id": session, "recurring": "1"}
        )
        return set(re.findall(r"^SUMMARY:(.*)\r$", await response.text(), re.M))


async def test_the_seed_html_form_as_it_stands(browser: Browser, server: TestServer, tmp_path: Path) -> None:
    session = await sign_up_and_log_in(server, "jdoe")
    form = (DATA / "seed004_form.html").read_text()
    form = form.replace("<calendarserver>", "127.0.0.1").replace("<port>", str(server.port))
    form = form.replace("<session-id>", session)
    page = await browser.new_page()
    await page.set_content(form)
    await page.set_input_files("input[name=file]", str(DATA / "seed004.ics"))
    async with page.expect_response(lambda r: "import.wcap" in r.url):
        await page.click("input[type=submit]")
    for _ in range(50):
        if await summaries(server, session):
            break
        await asyncio.sleep(0.1)
    assert await summaries(server, session) == {"Weekly QA Meeting", "Weekly QA Meeting 2"}


async def test_almanacs_own_upload_page(browser: Browser, server: TestServer) -> None:
    session = await sign_up_and_log_in(server, "ada")
    page = await browser.new_page()
    await page.goto(str(server.make_url("/wcap/")))
    await page.fill("#user", "ada")
    await page.fill("#password", "wrong password")
    await page.click("button[type=submit]")
    assert "Wrong user or password" in await page.inner_text("#result")
    await page.fill("#password", "correct horse")
    await page.click("button[type=submit]")
    await page.select_option("#calid", "ada")
    await page.set_input_files("#file", str(DATA / "recurring.ics"))
    await page.fill("#dtstart", "2025-02-05")
    await page.fill("#dtend", "2025-02-20")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#result.ok")  # a selector: the page's CSP allows no evaluated script
    assert await page.inner_text("#result") == "Imported: 3 new, 0 updated, 2 outside the dates."
    expected = {"Planning", "Planning (moved)", "Floating breakfast", "Every day"}
    assert await summaries(server, session) == expected
