"""The responses of a calendar's objects for one request, written as text straight from the
live properties' values (listings of thousands of members: see ``MemberText``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain

from protocol import dav
from server.caldav.props import LIVE, DavResource, Kind, Value, answer
from server.urls import object_href
from storage.model import CalendarObject, Detail

_OK = f"</D:prop><D:status>{dav.status_line(200)}</D:status></D:propstat>"


class MemberText:
    """The responses of a calendar's objects for one request, written as text straight from the
    live properties' values: what ``answer()`` and lxml make of them (tests/test_fast_paths.py
    compares the two on generated objects), without building elements, for listings of
    thousands of members. Asked properties are planned once; a value that is an element (none
    of an object's are) is written the generic way. A page of members whose asked properties
    are all read from the object alone (``Live.of_object``) is written through one template."""

    def __init__(self, names: Sequence[str], kind: str) -> None:
        self.names, self.kind = names, kind
        self.plan: list[tuple[str, Callable[[DavResource], Value] | None, str, str]] = []  # None: no object has it
        #: how each asked property an object has is read from the object (None: not all are)
        self.readers: list[Callable[[CalendarObject], str | None]] | None = []
        #: how much of each object the asked properties read (allprop: every property's)
        self.detail = Detail.BRIEF if kind == "prop" else Detail.LISTED
        template = ["%s</D:href>"]  # after the calendar's href: the member's name, then its values
        for name in names:
            live, written = LIVE.get(name), dav.prefixed(name)
            if live is None or Kind.OBJECT not in live.on:
                self.plan.append((name, None, "", ""))
                continue
            if not live.brief:
                self.detail = Detail.LISTED
            if written is None:
                self.kind = "generic"
            else:
                self.plan.append((name, live.read, f"<{written}>", f"</{written}>"))
                template.append(f"<{written}>%s</{written}>")
                if self.readers is not None:
                    self.readers = None if live.of_object is None else [*self.readers, live.of_object]
        self.missing: dict[tuple[str, ...], str] = {}
        if len(template) > 1:
            template[1:1] = ["<D:propstat><D:prop>"]
            template.append(_OK)
        absent = tuple(name for name, read, _, _ in self.plan if read is None)
        if absent:
            template.append(self._missing(absent).replace("%", "%%"))
        elif len(template) == 1:
            template.append(f"<D:status>{dav.status_line(200)}</D:status>")
        self.template = "".join(template) + "</D:response>"

    def page(self, base: str, objects: Sequence[CalendarObject], member: DavResource) -> str:
        """The responses of ``objects`` of the calendar at ``base`` (``member``: the resource
        they are read as). Through the template when every value is present and plain text and
        every name is canonical (the usual listing), else member by member."""
        names = [found.href for found in objects]
        columns = (
            None if self.kind != "prop" or self.readers is None else [list(map(of, objects)) for of in self.readers]
        )
        hrefs = "".join(names)
        if (
            columns is not None
            and not any(None in column for column in columns)
            and dav.canonical(hrefs)
            and dav.plain(hrefs + "".join(chain(*columns)))  # type: ignore[arg-type]
        ):
            template = f"<D:response><D:href>{dav.escape(base).replace('%', '%%')}{self.template}"
            return "".join([template % values for values in zip(names, *columns, strict=True)])
        texts = []
        for member.found in objects:
            texts.append(self(object_href(base, member.found.href), member))
        return "".join(texts)

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
