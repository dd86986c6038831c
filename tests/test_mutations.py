"""Issue 13: corpus files mutated the ways real files break (truncated, folded at random points,
control bytes inserted, lines duplicated, value types swapped), fed to the readers and to every
door. The only outcomes are success or the door's own clear refusal; what a reader accepts can
be read back and expanded.

A few hundred examples run in CI; ``HYPOTHESIS_PROFILE=long`` runs thousands by hand.
"""

from __future__ import annotations

import functools
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from base64 import b64encode
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import formats
from protocol.formats import EncodingProblem, ParseResult, UnknownFormat
from protocol.ical.values import parse_resource
from protocol.ical.windows import overlaps
from tests.corpora import CORPORA, corpus_files
from tests.helpers import LIVE_PASSWORD, LIVE_USER

#: CI runs the same examples every time (a red CI names a change, not a lucky draw); by hand,
#: ``long`` draws new ones (what it finds becomes a test in test_real_world.py)
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=5000, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FILES = [path for corpus in sorted(CORPORA) for path in corpus_files(corpus)]
VALUE_TYPES = ("DATE", "DATE-TIME", "PERIOD", "TIME", "TEXT", "DURATION", "")
TIMED = re.compile(rb"^(DTSTART|DTEND|DUE|RECURRENCE-ID|EXDATE|RDATE)([;:])", re.MULTILINE)


@functools.cache
def _read(index: int) -> bytes:
    return FILES[index].read_bytes()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A corpus file with one to four of the mutations real files suffer."""
    data = _read(draw(st.integers(0, len(FILES) - 1)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("truncate", "fold", "control", "duplicate", "retype")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "truncate":
            data = data[:at]
        elif kind == "fold":  # RFC 5545 3.1 allows a fold anywhere; a writer may also fold badly
            data = data[:at] + draw(st.sampled_from((b"\r\n ", b"\r\n\t", b"\n ", b"\r\n"))) + data[at:]
        elif kind == "control":
            data = data[:at] + bytes([draw(st.sampled_from([*range(0, 9), 11, 12, *range(14, 32), 127]))]) + data[at:]
        elif kind == "duplicate":
            lines = data.splitlines(keepends=True)
            if lines:
                line = draw(st.integers(0, len(lines) - 1))
                data = b"".join([*lines[: line + 1], lines[line], *lines[line + 1 :]])
        else:
            found = list(TIMED.finditer(data))
            if found:
                match = found[draw(st.integers(0, len(found) - 1))]
                value = draw(st.sampled_from(VALUE_TYPES)).encode()
                head = match.group(1) + (b";VALUE=" + value if value else b"") + match.group(2)
                data = data[: match.start()] + head + data[match.end() :]
    return data


@given(mutated())
def test_the_readers_accept_or_refuse_with_lines(data: bytes) -> None:
    """A reader refuses with its own error (an encoding problem, an unknown format, errors with
    lines) or yields resources that can be read back and expanded, as the store will."""
    try:
        result: ParseResult = formats.parse(formats.decode(data))
    except (EncodingProblem, UnknownFormat) as refused:
        assert refused.line >= 1 and str(refused)
        return
    for problem in result.errors + result.warnings:
        assert problem.line >= 1 and problem.error
    if result.errors:
        return
    for resource in result.resources:
        parse_resource(resource.text)
        moment = datetime.fromtimestamp(resource.start or 0, UTC)
        overlaps(resource.text, moment - timedelta(days=1), moment + timedelta(days=400))


class Live:
    """Requests to the live server as its user, through the three doors."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.basic = "Basic " + b64encode(f"{LIVE_USER}:{LIVE_PASSWORD}".encode()).decode()
        signin = self.send("POST", "v1/users/signin", json.dumps({"username": LIVE_USER, "password": LIVE_PASSWORD}),
                           {"Content-Type": "application/json"})  # fmt: skip
        self.token = json.loads(signin[1])["authToken"]
        login = self.send("GET", "login.wcap?" + urllib.parse.urlencode({"user": LIVE_USER, "password": LIVE_PASSWORD}))
        self.session = login[1].split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]

    def send(
        self, method: str, path: str, body: bytes | str = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.url + path, data=data or None, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def upload(self, path: str, data: bytes, **fields: str) -> tuple[int, str]:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.ics"\r\n'
            f"Content-Type: text/calendar\r\n\r\n".encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json",
                   "Authorization": f"Token token={self.token}"}  # fmt: skip
        return self.send("POST", path, b"".join(parts), headers)


@functools.cache
def _live(url: str) -> Live:
    return Live(url)


@given(data=mutated())
def test_every_door_answers_a_mutated_file_in_its_own_language(live_server: str, data: bytes) -> None:
    """REST: 200, or 4xx with JSON errors that carry lines; CalDAV PUT: 201/204, or a DAV:error
    naming the precondition; WCAP import.wcap: errno 0 or its import errno. Never a 5xx."""
    live = _live(live_server)
    status, text = live.upload("v1/import/", data)
    assert status in (200, 400, 403, 413, 422), (status, text[:300])  # 403: undecodable bytes (the seed)
    if status != 200:
        errors = json.loads(text).get("errors") or [json.loads(text)]
        assert all(isinstance(e.get("line", 1), int) and (e.get("error") or e.get("message")) for e in errors), text
    name = f"{uuid.uuid4().hex}.ics"
    status, text = live.send("PUT", f"dav/calendars/{LIVE_USER}/calendar/{name}", data,
                             {"Authorization": live.basic, "Content-Type": "text/calendar"})  # fmt: skip
    assert status in (201, 204, 400, 403, 409, 413, 415), (status, text[:300])
    if status in (403, 409):
        assert "<D:error" in text and (
            "valid-calendar" in text or "supported-calendar" in text or "uid-conflict" in text
        ), text
    status, text = live.upload(f"import.wcap?id={live.session}&calid={LIVE_USER}", data)
    errno = re.search(r"X-NSCP-WCAP-ERRNO:(-?\d+)", text)
    assert status == 200 and errno is not None and errno.group(1) in ("0", "77"), (status, text[:300])
