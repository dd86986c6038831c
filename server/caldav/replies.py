"""The CalDAV door's reply plumbing: 207 Multi-Status bodies (streamed while they are written, or
whole), DAV:error refusals (the services' refusals in CalDAV's words), and the propstat bodies of a
refused MKCALENDAR / PROPPATCH. What goes into a response (the properties) is
``server/caldav/props.py``'s."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from aiohttp import web
from lxml import etree

from protocol import dav
from protocol.dav import CALDAV, DAV, PropstatResponse, tag
from server.services.errors import Forbidden, NameTaken, NotFound
from server.urls import calendar_href, object_href
from storage.model import Calendar, User


class Multistatus:
    """A 207 Multi-Status sent while it is written: the first responses go out at once and
    memory holds one batch of text at a time, however many members a listing has."""

    BATCH = 1 << 16  #: characters written in one go

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.reply = web.StreamResponse(status=207)
        self.reply.content_type, self.reply.charset = "application/xml", "utf-8"
        self.parts: list[str] = [dav.MULTISTATUS_START]
        self.size = 0

    async def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= self.BATCH or not self.reply.prepared:  # the first bytes go at once
            await self.flush()

    async def flush(self) -> None:
        if not self.reply.prepared:
            await self.reply.prepare(self.request)
        await self.reply.write("".join(self.parts).encode())
        self.parts, self.size = [], 0

    async def finish(self, sync_token: str | None = None) -> web.StreamResponse:
        self.parts.append(dav.multistatus_end(sync_token))
        await self.flush()
        await self.reply.write_eof()
        return self.reply


def xml_reply(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml", charset="utf-8")


#: replies with more members, or more text, than this are rendered in a thread, off the event loop
RENDER_INLINE, RENDER_INLINE_CHARS = 50, 1 << 16


def multistatus_reply(texts: Sequence[str], token: str | None = None) -> web.Response:
    """A 207 of responses written as text (``MemberText``, ``dav.responses_text``)."""
    body = "".join([dav.MULTISTATUS_START, *texts, dav.multistatus_end(token)])
    return xml_reply(207, body.encode())


async def multistatus(responses: list[PropstatResponse], token: str | None = None) -> web.Response:
    small = len(responses) <= RENDER_INLINE and (
        sum(len(element.text or "") for response in responses for element in response.found) <= RENDER_INLINE_CHARS
    )
    if small:
        return xml_reply(207, dav.multistatus(responses, token))
    return xml_reply(207, await asyncio.to_thread(dav.multistatus, responses, token))


class DavError(web.HTTPException):
    """A refusal with a DAV:error body naming the precondition (RFC 4918 16, RFC 4791 1.3), and
    the href it concerns where there is one: raised, aiohttp sends it."""

    def __init__(self, status: int, condition: str, href: str | None = None, *more: etree._Element) -> None:
        self.status_code = status
        root = etree.fromstring(dav.error(condition))
        if href:
            root[0].append(dav.href_element(href))
        root[0].extend(more)
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8").decode()
        super().__init__(text=body, content_type="application/xml")


def statuses(updates: list[tuple[bool, etree._Element]], failed: dict[str, int]) -> dict[int, list[str]]:
    """The properties of a refused update by status: their own failure, or 424 for the rest."""
    found: dict[int, list[str]] = {}
    for name in dict.fromkeys(node.tag for _, node in updates):
        found.setdefault(failed.get(name, 424), []).append(name)
    return found


def propstat_body(root_tag: str, updates: list[tuple[bool, etree._Element]], failed: dict[str, int]) -> bytes:
    """A mkcalendar-response / mkcol-response naming why each property was not set."""
    root = etree.Element(root_tag, nsmap=dav.NSMAP)
    for code, names in statuses(updates, failed).items():
        propstat = etree.SubElement(root, tag(DAV, "propstat"))
        prop = etree.SubElement(propstat, tag(DAV, "prop"))
        for name in names:
            etree.SubElement(prop, name)
        etree.SubElement(propstat, tag(DAV, "status")).text = dav.status_line(code)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def need_privileges(href: str, privilege: str) -> DavError:
    """403 naming the privilege a request lacked (RFC 3744 7.1.1)."""
    privilege_element = dav.element(tag(DAV, "privilege"), None, dav.element(privilege))
    resource = dav.element(tag(DAV, "resource"), None, dav.href_element(href), privilege_element)
    return DavError(403, tag(DAV, "need-privileges"), None, resource)


#: the privilege (RFC 3744 3) a method on a calendar or an object needs beyond reading
NEEDS = {"PUT": tag(DAV, "write-content"), "DELETE": tag(DAV, "unbind"), "MOVE": tag(DAV, "unbind"),
         "COPY": tag(DAV, "bind"), "PROPPATCH": tag(DAV, "write-properties"), "POST": tag(DAV, "share")}  # fmt: skip


@contextmanager
def refusals(request: web.Request) -> Iterator[None]:
    """The access rule's refusals in CalDAV's words: 403 with the privilege the method needed,
    or 404 for a calendar the user may no longer see."""
    try:
        yield
    except Forbidden:
        raise need_privileges(request.path, NEEDS.get(request.method, tag(DAV, "read"))) from None
    except NotFound:
        raise web.HTTPNotFound() from None


def uid_conflict(user: User, calendar: Calendar, taken: NameTaken) -> DavError:
    """RFC 4791 5.3.2.1 ``no-uid-conflict`` naming the resource that holds the UID: 409 when
    another resource holds it; 403 when the write would overwrite a resource of another UID."""
    href = object_href(calendar_href(user, calendar), taken.held_by) if taken.held_by else None
    return DavError(403 if taken.replacing else 409, tag(CALDAV, "no-uid-conflict"), href)


#: the precondition (RFC 4791 5.3.2.1) each way a PUT's text is refused
PUT_REFUSALS = {
    "invalid_data": tag(CALDAV, "valid-calendar-data"),
    "unsupported_component": tag(CALDAV, "supported-calendar-component"),
    "one_resource": tag(CALDAV, "valid-calendar-object-resource"),
    "attendee_change": tag(CALDAV, "valid-attendee-change"),  # Apple's name for RFC 6638 3.2.2.1
    "too_many_attendees": tag(CALDAV, "max-attendees-per-instance"),
}
