"""Almanac's own upload page for WCAP users: sign in, pick a calendar and a file, import.

The form posts to ``import.wcap`` exactly as the Sun documentation's HTML form does (the session
id in the action URL); a few lines of script show the reply's errno instead of downloading it.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from aiohttp import web

from server.http import SERVICES, client_address, read_post
from server.urls import WCAP

STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#1d2430}
h1{font-size:1.5rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input,select,button{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
button{margin-top:1rem;background:#1f5fbf;color:#fff;border:0;border-radius:4px;cursor:pointer}
.row{display:flex;gap:1rem}.row>div{flex:1}#result{margin-top:1rem;padding:.6rem;border-radius:4px}
.ok{background:#e3f4e6}.error{background:#fbe4e4}.hint{color:#555;font-size:.9rem}
"""

SCRIPT = """
document.getElementById('upload').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target, result = document.getElementById('result');
  const url = new URL(form.action);
  for (const name of ['calid', 'dtstart', 'dtend']) {
    const value = form.elements[name].value;
    url.searchParams.set(name, name === 'calid' ? value : (value ? value.replaceAll('-', '') + 'T000000Z' : '0'));
  }
  result.className = ''; result.textContent = 'Importing…';
  const reply = await (await fetch(url, {method: 'POST', body: new FormData(form)})).text();
  const field = (name) => (reply.match(new RegExp('^' + name + ':(.*)$', 'm')) || [])[1];
  const errno = field('X-NSCP-WCAP-ERRNO');
  if (errno === '0') {
    result.className = 'ok';
    result.textContent = `Imported: ${field('X-ALMANAC-IMPORT-CREATED')} new, ` +
      `${field('X-ALMANAC-IMPORT-UPDATED')} updated, ${field('X-ALMANAC-IMPORT-DISCARDED')} outside the dates.`;
  } else {
    result.className = 'error';
    result.textContent = `Not imported (WCAP errno ${errno}): ${field('X-NSCP-WCAP-ERRSTR') || 'see the log'}`;
  }
});
"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: the page's one style and one script are allowed by their digests; nothing else runs
CSP = (
    f"default-src 'none'; script-src {_digest(SCRIPT)}; style-src {_digest(STYLE)}; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def page(title: str, body: str) -> web.Response:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Almanac</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": CSP}
    return web.Response(text=html, content_type="text/html", headers=headers)


def sign_in_form(message: str = "", user: str = "") -> str:
    note = f'<p id="result" class="error" role="alert">{escape(message)}</p>' if message else ""
    return (
        f'{note}<form method="post" action="{WCAP}/upload">'
        '<label for="user">User</label>'
        f'<input id="user" name="user" value="{escape(user)}" autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
        "<button type=submit>Sign in</button></form>"
    )


async def show(request: web.Request) -> web.Response:
    return page("Import into your calendar", sign_in_form())


async def sign_in(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    form = await read_post(request)
    name, password = str(form.get("user", "")), str(form.get("password", ""))
    user = await services.users.authenticate(name, password, client_address(request))
    if user is None:
        return page("Import into your calendar", sign_in_form("Wrong user or password.", name))
    session = await services.users.open_session(user, "wcap", services.config.session_timeout)
    options = []
    for calendar in await services.calendars.of(user):
        calid = user.username if calendar.is_default else f"{user.username}:{calendar.slug}"
        options.append(f'<option value="{escape(calid)}">{escape(calendar.name)} ({escape(calid)})</option>')
    body = (
        f"<p>Signed in as <strong>{escape(user.username)}</strong>.</p>"
        f'<form id="upload" method="post" enctype="multipart/form-data" '
        f'action="{WCAP}/import.wcap?id={escape(session)}&amp;content-in=text/calendar">'
        '<label for="calid">Calendar</label>'
        f'<select id="calid" name="calid">{"".join(options)}</select>'
        '<label for="file">iCalendar file (.ics)</label>'
        '<input id="file" name="file" type="file" accept=".ics,text/calendar" required>'
        '<div class="row"><div><label for="dtstart">From (optional)</label>'
        '<input id="dtstart" name="dtstart" type="date"></div>'
        '<div><label for="dtend">Until (optional)</label><input id="dtend" name="dtend" type="date"></div></div>'
        '<p class="hint">With dates, only events and todos that overlap them are imported.</p>'
        '<button type="submit">Import now</button></form>'
        f'<p id="result" role="status" aria-live="polite"></p><script>{SCRIPT}</script>'
    )
    return page("Import into your calendar", body)


def add_routes(app: web.Application) -> None:
    for path in (f"{WCAP}/", f"{WCAP}/upload"):
        app.router.add_get(path, show)
    app.router.add_post(f"{WCAP}/upload", sign_in)
