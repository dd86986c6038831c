"""HTTP helpers every door shares."""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
import mmap
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import ijson
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from protocol import multipart
from server.services import Services
from server.services.errors import BadEncoding, Invalid, TooLarge, disk_space

T = TypeVar("T")
SERVICES = web.AppKey("services", Services)
#: who made the request (for the access log) and when it started
REQUEST_USER = web.RequestKey("user", str)
REQUEST_STARTED = web.RequestKey("started", float)
#: the request's id: in its reply's X-Request-Id and its log line
REQUEST_ID = web.RequestKey("request_id", str)


class _RequestIds:
    """Ids unique across processes and nodes: a random prefix per process (a forked worker
    draws its own) and a count (a uuid4 per request was a system call, 6 % of a GET)."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix, self.count = os.urandom(8).hex(), itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count):016x}"


#: a new request id (32 hex digits, as uuid4's were)
new_request_id = _RequestIds()
_TOKEN_HEADER = re.compile(r'^\s*Token\s+token\s*=\s*"?([^",\s]+)"?', re.IGNORECASE)
_BEARER_HEADER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)
#: seconds a client may pause in the middle of a body (the app sets server.idle_timeout)
IDLE_TIMEOUT = web.AppKey("idle_timeout", int)
#: forms without files (sign-in, settings, a WCAP command's parameters) are this large at most
FORM_LIMIT = 1 << 20
#: where a request's form is kept once read
FORM = web.RequestKey("form", MultiDictProxy[str])


async def body_chunks(request: web.Request, limit: int, too_large: str) -> AsyncIterator[bytes]:
    """The request body as it arrives, refusing it (TooLarge: ``too_large``) as soon as it is
    larger than ``limit``, or at once when its Content-Length says so; 408 when the client
    sends nothing for the idle timeout (a slow client holds no connection for ever)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(too_large)
    idle = request.config_dict.get(IDLE_TIMEOUT, 30)
    size = 0
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await request.content.readany()
        except TimeoutError:
            raise web.HTTPRequestTimeout(text=f"nothing of the body arrived for {idle} seconds\n") from None
        if not chunk:
            return
        size += len(chunk)
        if size > limit:
            raise TooLarge(too_large)
        yield chunk


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is larger than ``limit``."""
    too_large = f"the request is larger than the limit of {limit} bytes"
    return b"".join([chunk async for chunk in body_chunks(request, limit, too_large)])


async def read_post(request: web.Request, limit: int = FORM_LIMIT) -> MultiDictProxy[str]:
    """The fields of a urlencoded form (read once per request, then kept), at most ``limit``
    bytes arriving without a pause longer than the idle timeout; TooLarge, 408. A multipart
    form goes through aiohttp's reader, within the same size and in the same time at most."""
    if FORM in request:
        return request[FORM]
    if request.content_type == "multipart/form-data":
        if request.content_length is None or request.content_length > limit:
            raise TooLarge(f"the form is larger than the limit of {limit} bytes")
        try:
            async with asyncio.timeout(request.config_dict.get(IDLE_TIMEOUT, 30)):
                posted = await request.post()
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="the form did not arrive in time\n") from None
        fields = MultiDictProxy(MultiDict((k, v) for k, v in posted.items() if isinstance(v, str)))
    else:
        body = await read_limited(request, limit)
        pairs = _form_pairs(body) if len(body) < SMALL_BODY else await asyncio.to_thread(_form_pairs, body)
        fields = MultiDictProxy(MultiDict(pairs))
    request[FORM] = fields
    return fields


#: bodies larger than this are decoded in a thread (a 1.5 MB form takes 0.2 s to decode)
SMALL_BODY = 64 * 1024


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


#: the multipart field names a file may come in (the Sun docs' first example used "Upload")
FILE_FIELDS = ("file", "Upload", "upload")


@dataclass(slots=True)
class SpooledForm:
    """A multipart/form-data body: its text fields, and its file written to disk."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  #: the file (the caller removes it)
    filename: str | None = None


async def read_form(request: web.Request, limit: int, directory: Path) -> SpooledForm:
    """Read a multipart body forgivingly (see protocol.multipart; the seed's hand-made bodies
    need it): the body is written to disk as it arrives and read from there, its file into a
    new file in ``directory``, so memory stays small whatever the file's size. TooLarge over
    ``limit``, Invalid for an unreadable body or a huge field; then nothing is left on disk."""
    content_type = request.headers.get("Content-Type")
    too_large = f"the file is larger than the limit of {limit} bytes"
    return await _spooled(
        request, limit + (1 << 16), too_large, directory, lambda body: _split_form(body, content_type, limit, directory)
    )


async def _spooled(request: web.Request, limit: int, too_large: str, directory: Path, split: Callable[[Path], T]) -> T:
    """``split`` (run in a thread) of the body, which is written to a file in ``directory`` as
    it arrives and removed afterwards; StoreFull when the disk is."""
    chunks = body_chunks(request, limit, too_large)
    with disk_space():
        directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=directory, prefix="body-")
        body = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                async for chunk in chunks:
                    out.write(chunk)
            return await asyncio.to_thread(split, body)
        finally:
            body.unlink()


def _split_form(path: Path, content_type: str | None, limit: int, directory: Path) -> SpooledForm:
    form = SpooledForm()
    with open(path, "rb") as source:
        if not os.fstat(source.fileno()).st_size:
            raise Invalid("the request has no body", field="file")
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as body:
            try:
                parts = multipart.parse(body, content_type)
            except multipart.MultipartError as error:
                raise Invalid(str(error), field="file") from None
            try:
                for part in parts:
                    if part.name in FILE_FIELDS and form.path is None:
                        if part.stop - part.start > limit:
                            raise TooLarge(f"the file is larger than the limit of {limit} bytes")
                        handle, name = tempfile.mkstemp(dir=directory, prefix="upload-")
                        form.path, form.filename = Path(name), part.filename
                        with os.fdopen(handle, "wb") as out:
                            for at in range(part.start, part.stop, 1 << 20):
                                out.write(body[at : min(at + (1 << 20), part.stop)])
                    elif part.name:
                        if part.stop - part.start > 1 << 16:
                            raise Invalid(f"the field {part.name} is too long", field=part.name)
                        value = body[part.start : part.stop].decode("utf-8", "replace").strip()
                        form.fields.setdefault(part.name, value)
            except BaseException:
                if form.path is not None:
                    form.path.unlink(missing_ok=True)
                raise
    return form


#: a JSON escape of half a surrogate pair without its other half (no text can hold one); a
#: literal backslash before ``u`` (``\\\\ud800``) is taken for one too, a price worth paying
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
#: JSON bodies read as a stream nest this deep at most
MAX_JSON_DEPTH = 64


async def read_json_form(request: web.Request, limit: int, directory: Path) -> tuple[dict[str, Any], Path | None]:
    """A JSON object whose ``file`` member is a file, as the seed sends it: a string, or an
    array of lines (joined as sent; lines without their own line ending are joined with CRLF).

    The body is written to disk as it arrives and read back as a stream of JSON events, the
    file written to a file of its own in ``directory`` (removed by the caller), so memory
    stays small whatever the size. Returns the other top-level members that are plain values
    and the file's path (None without a file). Invalid, BadEncoding, TooLarge."""
    too_large = f"the request is larger than the limit of {limit} bytes"
    return await _spooled(request, limit, too_large, directory, lambda body: _split_json(body, directory))


def _split_json(path: Path, directory: Path) -> tuple[dict[str, Any], Path | None]:
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        with mmap.mmap(source.fileno(), size, access=mmap.ACCESS_READ) if size else nullcontext(b"") as view:
            if _LONE_SURROGATE.search(view):
                raise BadEncoding("the request body includes invalid encoded characters (a lone surrogate)")
    # the first reading only asks whether the lines carry their own line endings
    ends = any(value.endswith(("\n", "\r")) for _, value, line in _members(path) if line)
    fields: dict[str, Any] = {}
    handle, name = tempfile.mkstemp(dir=directory, prefix="upload-")
    upload = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            for key, value, line in _members(path):
                if key != "file":
                    fields[key] = value
                else:
                    out.write((value if ends or not line else value + "\r\n").encode("utf-8"))
        if not upload.stat().st_size:
            upload.unlink()
            return fields, None
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    return fields, upload


_FILE_SHAPE = "file must be a string or an array of lines"


def _members(path: Path) -> Iterator[tuple[str, Any, bool]]:
    """``(key, value, False)`` for each top-level member that is a plain value, and
    ``("file", line, True)`` for each line of an array ``file``; Invalid for a body that is
    no object, nests deeper than MAX_JSON_DEPTH, or holds a file of another shape."""
    depth, key = 0, ""
    with open(path, "rb") as source:
        try:
            for event, value in ijson.basic_parse(source, use_float=True):
                if event in ("start_map", "start_array"):
                    depth += 1
                    if depth == 1 and event != "start_map":
                        raise Invalid("the body must be a JSON object")
                    if key == "file" and (depth > 2 or event == "start_map"):
                        raise Invalid(_FILE_SHAPE, field="file")
                    if depth > MAX_JSON_DEPTH:
                        raise Invalid(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
                elif event in ("end_map", "end_array"):
                    depth -= 1
                elif event == "map_key":
                    key = value if depth == 1 else key
                elif depth <= 2 and key == "file":
                    if event != "string":
                        raise Invalid(_FILE_SHAPE, field="file")
                    yield key, value, depth == 2
                elif depth == 1:
                    yield key, value, False
        except ijson.JSONError as error:
            if "UTF8" in str(error):
                raise BadEncoding("the request body includes invalid encoded characters") from None
            raise Invalid(f"the body is not valid JSON: {error}") from None


#: the largest whole number a store keeps (SQLite's and PostgreSQL's 64-bit integers)
MAX_INT = 2**63 - 1
_WHOLE = re.compile(r"^[+-]?[0-9]{1,19}$")


def whole_number(value: str | None, name: str, default: int, low: int = 0, high: int = MAX_INT) -> int:
    """A whole-number parameter from ``low`` to ``high`` (``default`` when absent or empty);
    ValueError naming the parameter for anything else (``1e20``, ``abc``, 10^20)."""
    if value is None or not value.strip():
        return default
    if not _WHOLE.match(value.strip()) or not low <= (number := int(value)) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return number


def object_id(value: str) -> int | None:
    """A numeric id from a URL (1 to MAX_INT), or None: no such thing."""
    try:
        return whole_number(value, "id", 0, 1)
    except ValueError:
        return None


def load_json(body: bytes) -> Any:
    """A JSON request body: Invalid for malformed text, nesting deeper than the parser goes
    (it raises RecursionError); BadEncoding for bytes that are not UTF-8 and for a lone
    surrogate escape (no text can hold one)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadEncoding("the request body includes invalid encoded characters") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise Invalid(f"the body is not valid JSON: {error}") from None
    if "\\u" in text:  # escapes may hide a lone surrogate, which no text can hold
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise BadEncoding("the request body includes invalid encoded characters (a lone surrogate)") from None
    return data


def iso_epoch(value: str | None, name: str) -> int | None:
    """An ISO 8601 date or date-time parameter (UTC unless it says otherwise) as epoch
    seconds; None when empty; ValueError naming the parameter when malformed."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be an ISO 8601 date or date-time") from None


def boolean(value: str | None, name: str, default: bool) -> bool:
    """A true/false form field (true/false, 1/0, yes/no, on/off); ValueError otherwise."""
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false")


# --------------------------------------------------------------------------- credentials


def token_from_header(value: str | None) -> str | None:
    """The token of ``Authorization: Token token=...`` or ``Authorization: Bearer ...``."""
    if not value:
        return None
    match = _TOKEN_HEADER.match(value) or _BEARER_HEADER.match(value)
    return match.group(1) if match else None


def basic_credentials(value: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header."""
    if not value or value[:6].lower() != "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy
    (``server.trusted_proxies``), the nearest address X-Forwarded-For names that is not one
    of them (what sign-in throttling counts by)."""
    peer = request.remote or ""
    trusted = request.config_dict[SERVICES].config.trusted_proxies
    if peer not in trusted:
        return peer
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    return next((hop for hop in reversed(hops) if hop and hop not in trusted), peer)


# --------------------------------------------------------------------------- conditions and dates


@functools.lru_cache(maxsize=4096)
def http_date(iso: str) -> str:
    """An ISO time stamp of the store (UTC) as HTTP writes dates (remembered: the same few come back)."""
    return format_datetime(datetime.fromisoformat(iso[:19]).replace(tzinfo=UTC), usegmt=True)


def etag_condition(value: str | None) -> str | None:
    """The entity tag of If-Match / If-None-Match, without W/ and quotes."""
    if value is None:
        return None
    value = value.strip()
    return value[2:].strip('"') if value.startswith("W/") else value.strip('"')


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match (``*`` or a list of entity tags) names ``etag`` (the weak
    comparison RFC 9110 13.1.2 asks for)."""
    return header.strip() == "*" or any(etag_condition(tag_) == etag for tag_ in header.split(","))
