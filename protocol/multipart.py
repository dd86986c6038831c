"""A forgiving multipart/form-data reader.

Browsers send exact boundaries, but hand-made requests often do not: the import.wcap page's own
example declares ``boundary=---------------------------33111928916708`` and then separates its
parts with lines of 35 and 33 dashes. A delimiter line here is any run of dashes followed by the
boundary without its leading dashes (and ``--`` for the last one); a missing closing delimiter
ends the last part at the end of the body.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass

_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_PARAM = re.compile(r'(\w+)\*?\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


class MultipartError(ValueError):
    """The body is not multipart/form-data that can be read."""


@dataclass(slots=True, frozen=True)
class Part:
    name: str | None
    filename: str | None
    content_type: str | None
    #: where its data lies: ``body[start:stop]`` (positions, so a large file is not copied)
    start: int
    stop: int


def boundary_of(content_type: str | None) -> str:
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise MultipartError("the Content-Type has no multipart boundary")
    return match.group(1) or match.group(2)


def _line_break(text: bytes) -> int:
    """The length of the line break (CRLF or LF) at the start of ``text``, or 0."""
    return 2 if text.startswith(b"\r\n") else 1 if text.startswith(b"\n") else 0


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in re.split(rb"\r?\n", block):
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def parse(body: bytes | mmap.mmap, content_type: str | None) -> list[Part]:
    """The parts of a multipart body (in memory or a file mapped into it); raises
    MultipartError when there are none."""
    core = boundary_of(content_type).lstrip("-")
    if not core:
        raise MultipartError("the multipart boundary is only dashes")
    delimiter = re.compile(rb"(?m)^-*" + re.escape(core.encode()) + rb"(--)?[ \t]*\r?$")
    marks = list(delimiter.finditer(body))
    if not marks:
        raise MultipartError("no part of the body starts with the multipart boundary")
    parts = []
    for index, mark in enumerate(marks):
        if mark.group(1):
            break
        start = mark.end() + _line_break(body[mark.end() : mark.end() + 2])
        stop = marks[index + 1].start() if index + 1 < len(marks) else len(body)
        if stop - start >= 2 and body[stop - 2 : stop] == b"\r\n":
            stop -= 2
        elif stop > start and body[stop - 1 : stop] == b"\n":
            stop -= 1
        split = _HEAD_END.search(body, start, stop)
        headers = _headers(body[start : split.start() if split else stop])
        found = _PARAM.findall(headers.get("content-disposition", ""))
        disposition = {key.lower(): quoted or plain for key, quoted, plain in found}
        parts.append(
            Part(
                name=disposition.get("name"),
                filename=disposition.get("filename"),
                content_type=headers.get("content-type"),
                start=split.end() if split else stop,
                stop=stop,
            )
        )
    if not parts:
        raise MultipartError("the multipart body has no parts")
    return parts
