"""The responses of a calendar's objects for one request, written as text straight from the
live properties' values (listings of thousands of members: see ``MemberText``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from protocol import dav
from server.caldav.props import LIVE, DavResource, Kind, Value, answer

_OK = f"</D:prop><D:status>{dav.status_line(200)}</D:status></D:propstat>"


class MemberText:
    """The responses of a calendar's objects for one request, written as text straight from the
    live properties' values: what ``answer()`` and lxml make of them (tests/test_fast_paths.py
    compares the two on generated objects), without building elements, for listings of
    thousands of members. Asked properties are planned once; a value that is an element (none
    of an object's are) is written the generic way."""

    def __init__(self, names: Sequence[str], kind: str) -> None:
        self.names, self.kind = names, kind
        self.plan: list[tuple[str, Callable[[DavResource], Value] | None, str, str]] = []  # None: no object has it
        for name in names:
            live, written = LIVE.get(name), dav.prefixed(name)
            if live is None or Kind.OBJECT not in live.on:
                self.plan.append((name, None, "", ""))
            elif written is None:
                self.kind = "generic"
            else:
                self.plan.append((name, live.read, f"<{written}>", f"</{written}>"))
        self.missing: dict[tuple[str, ...], str] = {}

    def __call__(self, href: str, resource: DavResource) -> str:
        if self.kind != "prop":
            return dav.responses_text([answer(href, resource, self.names, self.kind)])
        found, missing = [], []
        for name, read, start, end in self.plan:
            value = None if read is None else read(resource)
            if value is None:
                missing.append(name)
            elif isinstance(value, str):
                found.append(f"{start}{dav.escape(value)}{end}")
            elif not value:
                found.append(f"{start[:-1]}/>")
            else:
                return dav.responses_text([answer(href, resource, self.names, self.kind)])
        parts = [f"<D:response><D:href>{dav.escape(href)}</D:href>"]
        if found:
            parts += ["<D:propstat><D:prop>", *found, _OK]
        if missing:
            parts.append(self._missing(tuple(missing)))
        elif not found:
            parts.append(f"<D:status>{dav.status_line(200)}</D:status>")
        parts.append("</D:response>")
        return "".join(parts)

    def _missing(self, names: tuple[str, ...]) -> str:
        text = self.missing.get(names)
        if text is None:
            elements = "".join(dav.empty_element(name) for name in names)
            text = f"<D:propstat><D:prop>{elements}</D:prop><D:status>{dav.status_line(404)}</D:status></D:propstat>"
            self.missing[names] = text
        return text
