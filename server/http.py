"""HTTP helpers every door shares."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, ClientPayloadError, web

from protocol import multipart
from server.errors import Invalid, TooLarge


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is larger than ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the request is larger than the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


#: the multipart field names a file may come in (the Sun docs' first example used "Upload")
FILE_FIELDS = ("file", "Upload", "upload")


@dataclass(slots=True)
class Form:
    """A multipart/form-data body: its text fields and the uploaded file."""

    fields: dict[str, str] = field(default_factory=dict)
    file: bytes | None = None
    filename: str | None = None


async def read_form(request: web.Request, limit: int) -> Form:
    """Read a multipart body (forgivingly, see protocol.multipart), refusing files over
    ``limit`` (TooLarge) and unreadable bodies or huge fields (Invalid)."""
    body = await read_limited(request, limit + (1 << 16))
    form = Form()
    try:
        parts = multipart.parse(body, request.headers.get("Content-Type"))
    except multipart.MultipartError as error:
        raise Invalid(str(error), field="file") from None
    for part in parts:
        if part.name in FILE_FIELDS and form.file is None:
            if len(part.data) > limit:
                raise TooLarge(f"the file is larger than the limit of {limit} bytes")
            form.file, form.filename = part.data, part.filename
        elif part.name:
            if len(part.data) > 1 << 16:
                raise Invalid(f"the field {part.name} is too long", field=part.name)
            form.fields.setdefault(part.name, part.data.decode("utf-8", "replace").strip())
    return form


@dataclass(slots=True)
class SpooledForm:
    """A multipart/form-data body whose file was written to disk as it arrived."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  #: the file (the caller removes it)
    filename: str | None = None


async def spool_form(request: web.Request, limit: int, directory: Path) -> SpooledForm:
    """Read a multipart body as it streams in (exact boundaries, as browsers and curl send
    them), the file into a new file in ``directory``: memory stays small whatever the file's
    size. TooLarge for a file over ``limit``, Invalid for an unreadable body or a huge field;
    then nothing is left on disk."""
    form = SpooledForm()
    try:
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                raise Invalid("nested multipart bodies are not supported", field="file")
            if part.name in FILE_FIELDS and form.path is None:
                directory.mkdir(parents=True, exist_ok=True)
                handle, name = tempfile.mkstemp(dir=directory, prefix="upload-")
                form.path, form.filename = Path(name), part.filename
                await _copy(part, os.fdopen(handle, "wb"), limit)
            elif part.name:
                value = bytearray()
                while chunk := await part.read_chunk(1 << 16):
                    value += chunk
                    if len(value) > 1 << 16:
                        raise Invalid(f"the field {part.name} is too long", field=part.name)
                form.fields.setdefault(part.name, value.decode("utf-8", "replace").strip())
    except BaseException as error:
        if form.path is not None:
            form.path.unlink(missing_ok=True)
        if isinstance(error, ValueError | AssertionError | ClientPayloadError):
            raise Invalid(f"unreadable multipart/form-data body: {error}", field="file") from None
        raise
    return form


async def _copy(part: BodyPartReader, out: BinaryIO, limit: int) -> None:
    with out:
        size = 0
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the file is larger than the limit of {limit} bytes")
            out.write(chunk)


def iso_epoch(value: str | None, name: str) -> int | None:
    """An ISO 8601 date or date-time parameter (UTC unless it says otherwise) as epoch
    seconds; None when empty; ValueError naming the parameter when malformed."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date or date-time") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


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
