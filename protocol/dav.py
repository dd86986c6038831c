"""WebDAV/CalDAV XML: safe parsing of request bodies and building of replies. Pure.

Request bodies are parsed without DTDs, entities or network access, with a depth limit, so a
hostile body cannot expand, fetch or exhaust anything (the billion laughs, XXE).
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from lxml import etree

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"
NSMAP = {"D": DAV, "C": CALDAV, "CS": CS, "A": APPLE}
#: deeper request bodies are refused (a calendar-query needs about 8 levels)
MAX_DEPTH = 32


def tag(namespace: str, name: str) -> str:
    """Clark notation: ``{DAV:}getetag``."""
    return f"{{{namespace}}}{name}"


class BadRequest(ValueError):
    """A body that is not well-formed XML or not the element the method expects."""


class _Parser(etree.XMLParser):
    def __init__(self) -> None:
        super().__init__(
            resolve_entities=False, no_network=True, dtd_validation=False, load_dtd=False, huge_tree=False,
            remove_comments=True, remove_pis=True,
        )  # fmt: skip


def parse(body: bytes, expected: Iterable[str] = ()) -> etree._Element:
    """The root element of a request body; BadRequest if it is not safe, well-formed XML
    (a DOCTYPE is refused outright) or its root is none of ``expected`` (Clark names)."""
    if b"<!DOCTYPE" in body[:2048].upper() or b"<!ENTITY" in body.upper():
        raise BadRequest("DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = etree.fromstring(body, _Parser())
    except (etree.XMLSyntaxError, ValueError) as error:
        raise BadRequest(f"the body is not well-formed XML: {error}") from None
    # The byte checks above miss other encodings (UTF-16): the parsed document decides.
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or any(True for _ in root.iter(etree.Entity)):
        raise BadRequest("DOCTYPE and ENTITY declarations are not accepted")
    if _depth(root) > MAX_DEPTH:
        raise BadRequest(f"the XML is nested deeper than {MAX_DEPTH} levels")
    wanted = list(expected)
    if wanted and root.tag not in wanted:
        raise BadRequest(f"expected {' or '.join(wanted)}, got {root.tag}")
    return root


def _depth(element: etree._Element) -> int:
    deepest, stack = 1, [(element, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node)
    return deepest


@dataclass(slots=True, frozen=True)
class PropfindRequest:
    """What a PROPFIND asks for: ``prop`` names, all properties, or only their names."""

    kind: str  #: "prop", "allprop" or "propname"
    names: tuple[str, ...] = ()  #: Clark names (for "prop"; for "allprop", the include list)


def parse_propfind(body: bytes) -> PropfindRequest:
    """An empty body is allprop (RFC 4918 9.1)."""
    if not body.strip():
        return PropfindRequest("allprop")
    root = parse(body, [tag(DAV, "propfind")])
    kinds = [c.tag for c in root if c.tag in (tag(DAV, "prop"), tag(DAV, "propname"), tag(DAV, "allprop"))]
    if len(kinds) > 1:
        raise BadRequest("propfind takes one of prop, allprop and propname")
    for child in root:
        if child.tag == tag(DAV, "prop"):
            return PropfindRequest("prop", tuple(p.tag for p in child if isinstance(p.tag, str)))
        if child.tag == tag(DAV, "propname"):
            return PropfindRequest("propname")
        if child.tag == tag(DAV, "allprop"):
            include = root.find(tag(DAV, "include"))
            names = tuple(p.tag for p in include if isinstance(p.tag, str)) if include is not None else ()
            return PropfindRequest("allprop", names)
    raise BadRequest("propfind needs prop, allprop or propname")


@dataclass(slots=True)
class PrincipalSearch:
    """RFC 3744 9.4 ``principal-property-search``: which principals, and what to answer of each."""

    #: (property names, text to find in any of them, caseless substring) per property-search
    searches: list[tuple[tuple[str, ...], str]]
    any_of: bool  #: ``test="anyof"``; all of them must match otherwise (none: every principal)
    names: tuple[str, ...]  #: the properties to return

    @property
    def texts(self) -> list[str]:
        """The texts looked for."""
        return [text for _, text in self.searches]


#: the principal reports (RFC 3744 9.4, 9.5)
PRINCIPAL_SEARCH = tag(DAV, "principal-property-search")
SEARCH_PROPERTY_SET = tag(DAV, "principal-search-property-set")


def parse_principal_report(body: bytes) -> PrincipalSearch | None:
    """A ``principal-property-search`` (or None for ``principal-search-property-set``);
    BadRequest for anything else. Without a property-search it finds every principal
    (python-caldav lists principals so)."""
    root = parse(body, [PRINCIPAL_SEARCH, SEARCH_PROPERTY_SET])
    if root.tag == SEARCH_PROPERTY_SET:
        return None
    searches = []
    for search in root.findall(tag(DAV, "property-search")):
        prop, match = search.find(tag(DAV, "prop")), search.find(tag(DAV, "match"))
        names = tuple(p.tag for p in prop if isinstance(p.tag, str)) if prop is not None else ()
        if not names or match is None:
            raise BadRequest("each property-search needs a prop and a match")
        searches.append((names, match.text or ""))
    test = root.get("test", "allof")
    if test not in ("allof", "anyof"):
        raise BadRequest("test is allof or anyof")
    prop = root.find(tag(DAV, "prop"))
    names = tuple(p.tag for p in prop if isinstance(p.tag, str)) if prop is not None else ()
    if not names:  # python-caldav 2 puts the names beside an empty prop
        skip = (tag(DAV, "property-search"), tag(DAV, "prop"), tag(DAV, "apply-to-principal-collection-set"))
        names = tuple(p.tag for p in root if isinstance(p.tag, str) and p.tag not in skip)
    return PrincipalSearch(searches, test == "anyof", names)


# --------------------------------------------------------------------------- sharing (CalendarServer)

SHARE, INVITE_REPLY = tag(CS, "share"), tag(CS, "invite-reply")


@dataclass(frozen=True, slots=True)
class Sharee:
    """One ``CS:set`` (``read_write`` True or False) or ``CS:remove`` (None) of a share request."""

    href: str  #: ``mailto:bob@example.org`` or a principal's href
    read_write: bool | None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class InviteReply:
    """A sharee's answer (``CS:invite-reply``) to the invitation to the calendar at ``host``."""

    host: str
    accepted: bool
    in_reply_to: str | None


def parse_share(body: bytes) -> list[Sharee]:
    """A ``CS:share`` request (caldav-sharing 5.3.2); BadRequest for anything else."""
    root = parse(body, [SHARE])
    found = []
    for item in root:
        if item.tag not in (tag(CS, "set"), tag(CS, "remove")):
            continue
        href = (item.findtext(tag(DAV, "href")) or "").strip()
        if not href:
            raise BadRequest("each set and remove of a share names a sharee in DAV:href")
        if item.tag == tag(CS, "remove"):
            found.append(Sharee(href, None))
        else:
            found.append(Sharee(href, item.find(tag(CS, "read-write")) is not None, item.findtext(tag(CS, "summary"))))
    return found


def parse_invite_reply(body: bytes) -> InviteReply:
    """A ``CS:invite-reply`` (caldav-sharing 5.3.3); BadRequest for anything else."""
    root = parse(body, [INVITE_REPLY])
    host = (root.findtext(f"{tag(CS, 'hosturl')}/{tag(DAV, 'href')}") or "").strip()
    accepted, declined = root.find(tag(CS, "invite-accepted")), root.find(tag(CS, "invite-declined"))
    if not host or (accepted is None) == (declined is None):
        raise BadRequest("an invite-reply names the calendar (hosturl) and accepts or declines")
    return InviteReply(host, accepted is not None, root.findtext(tag(CS, "in-reply-to")))


@dataclass(slots=True)
class PropstatResponse:
    """One ``<D:response>``: an href with properties grouped by status, or a bare status."""

    href: str
    found: list[etree._Element] = field(default_factory=list)  #: 200 properties
    missing: list[str] = field(default_factory=list)  #: 404 property names
    failed: dict[int, list[str]] = field(default_factory=dict)  #: other statuses
    status: int | None = None  #: a response without properties (404 in multiget, 507 in sync)


REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 424: "Failed Dependency",
           507: "Insufficient Storage"}  # fmt: skip


def status_line(code: int) -> str:
    return f"HTTP/1.1 {code} {REASONS.get(code, '')}".rstrip()


def _propstat(parent: etree._Element, code: int, props: Iterable[etree._Element]) -> None:
    propstat = etree.SubElement(parent, tag(DAV, "propstat"))
    prop = etree.SubElement(propstat, tag(DAV, "prop"))
    for element in props:
        prop.append(element)
    etree.SubElement(propstat, tag(DAV, "status")).text = status_line(code)


def multistatus(responses: Iterable[PropstatResponse], sync_token: str | None = None) -> bytes:
    """A ``207 Multi-Status`` body."""
    root = etree.Element(tag(DAV, "multistatus"), nsmap=NSMAP)
    for item in responses:
        response = etree.SubElement(root, tag(DAV, "response"))
        etree.SubElement(response, tag(DAV, "href")).text = item.href
        if item.status is not None or not (item.found or item.missing or item.failed):
            # a response holds a status or propstats (RFC 4918 14.24): asked for no property, 200
            etree.SubElement(response, tag(DAV, "status")).text = status_line(item.status or 200)
            continue
        if item.found:
            _propstat(response, 200, item.found)
        if item.missing:
            _propstat(response, 404, (etree.Element(name) for name in item.missing))
        for code, names in item.failed.items():
            _propstat(response, code, (etree.Element(name) for name in names))
    if sync_token is not None:
        etree.SubElement(root, tag(DAV, "sync-token")).text = sync_token
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


#: how a multistatus body starts and ends when it is written as text, a response at a time
#: (what lxml writes for multistatus(): every namespace declared once, on the root)
_DECLARED = " ".join(f'xmlns:{prefix}="{namespace}"' for prefix, namespace in NSMAP.items())
MULTISTATUS_START = f"<?xml version='1.0' encoding='utf-8'?>\n<D:multistatus {_DECLARED}>"
MULTISTATUS_END = "</D:multistatus>"


def multistatus_end(sync_token: str | None = None) -> str:
    return (f"<D:sync-token>{escape(sync_token)}</D:sync-token>" if sync_token is not None else "") + MULTISTATUS_END


def responses_text(responses: Iterable[PropstatResponse]) -> str:
    """``<D:response>`` elements as they stand inside a multistatus (the generic way, through
    lxml: for responses whose properties are elements)."""
    body = multistatus(responses).decode()
    start = body.index(">", body.index("<D:multistatus")) + 1
    return "" if body.endswith("/>") else body[start : -len(MULTISTATUS_END)]


_PREFIXES = {namespace: prefix for prefix, namespace in NSMAP.items()}


def escape(text: str) -> str:
    """``text`` as XML character data, written as lxml writes it: markup escaped, CR as &#13;
    (XML parsers would read it as LF), without the characters XML cannot carry."""
    if plain(text):
        return text
    text = xml_text(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def plain(text: str) -> bool:
    """Whether ``text`` is written as it is in XML character data (the usual case: isprintable
    is false for CR, LF, TAB and the rest)."""
    return text.isprintable() and "&" not in text and "<" not in text and ">" not in text


def empty_element(name: str) -> str:
    """An empty element, prefixed where its namespace has a prefix on the root, else declaring
    its namespace itself."""
    namespace, _, local = name[1:].partition("}")
    prefix = _PREFIXES.get(namespace)
    if prefix is not None:
        return f"<{prefix}:{local}/>"
    if not namespace:
        return f"<{local}/>"
    quoted = escape(namespace).replace('"', "&quot;")
    return f'<X:{local} xmlns:X="{quoted}"/>'


def prefixed(name: str) -> str | None:
    """``D:getetag`` for ``{DAV:}getetag``; None when the namespace has no prefix on the root."""
    namespace, _, local = name[1:].partition("}")
    prefix = _PREFIXES.get(namespace)
    return f"{prefix}:{local}" if prefix is not None else None


def error(*conditions: str) -> bytes:
    """A ``<D:error>`` body naming the failed preconditions (Clark names)."""
    root = etree.Element(tag(DAV, "error"), nsmap=NSMAP)
    for condition in conditions:
        etree.SubElement(root, condition)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


#: characters XML 1.0 cannot carry at all (control characters but TAB, CR and LF; U+FFFE/F)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML cannot carry, so that a stored value that has them
    (written before they were refused, or by another program) never breaks a reply."""
    return _NOT_XML.sub("", text) if _NOT_XML.search(text) else text


def element(name: str, text: str | None = None, *children: etree._Element) -> etree._Element:
    """A property element with text or child elements (prefixes come from the reply's root)."""
    node = etree.Element(name)
    node.text = None if text is None else xml_text(text)
    for child in children:
        node.append(child)
    return node


def href_element(href: str) -> etree._Element:
    return element(tag(DAV, "href"), href)


def parse_proppatch(body: bytes) -> list[tuple[bool, etree._Element]]:
    """The properties a PROPPATCH sets (True) and removes (False), in document order."""
    root = parse(body, [tag(DAV, "propertyupdate")])
    found = []
    for action in root:
        if action.tag not in (tag(DAV, "set"), tag(DAV, "remove")):
            continue
        for prop in action.iter(tag(DAV, "prop")):
            found += [(action.tag == tag(DAV, "set"), p) for p in prop if isinstance(p.tag, str)]
    if not found:
        raise BadRequest("propertyupdate names no property")
    return found


def parse_mkcol(body: bytes, root_tag: str) -> list[etree._Element]:
    """The properties an extended MKCOL or a MKCALENDAR body sets (an empty body sets none)."""
    if not body.strip():
        return []
    root = parse(body, [root_tag])
    return [p for action in root.findall(tag(DAV, "set")) for prop in action.findall(tag(DAV, "prop")) for p in prop
            if isinstance(p.tag, str)]  # fmt: skip


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_SEGMENT_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@")
_CANONICAL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]*")
_HEX = frozenset(string.hexdigits)


def canonical(segments: str) -> bool:
    """Whether ``segments`` (one or several path segments, joined) are kept as they are by
    ``canonical_segment``: no escapes, nothing to escape."""
    return _CANONICAL.fullmatch(segments) is not None


def canonical_segment(raw: str) -> str:
    """One spelling of a URL path segment per resource (RFC 3986 6.2.2): escapes of unreserved
    characters decoded, other escapes upper-cased, anything a segment cannot hold escaped as
    UTF-8. Reserved characters keep their spelling, so ``a@b`` and ``a%40b`` are two names."""
    if _CANONICAL.fullmatch(raw):
        return raw
    out, index = [], 0
    while index < len(raw):
        char = raw[index]
        if char == "%" and index + 2 < len(raw) and set(raw[index + 1 : index + 3]) <= _HEX:
            decoded = chr(int(raw[index + 1 : index + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else raw[index : index + 3].upper())
            index += 3
            continue
        out.append(char if char in _SEGMENT_SAFE else quote(char, safe=""))
        index += 1
    return "".join(out)


_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f/]")


def valid_name(segment: str) -> bool:
    """Whether a canonical path segment may name a calendar or an object: not ``.`` or ``..``,
    1 to 255 bytes of UTF-8 once decoded, with no slash and no control character."""
    if segment in ("", ".", "..") or len(segment) > 3 * 255:
        return False
    try:
        name = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return False
    return len(name.encode()) <= 255 and not _NOT_IN_NAMES.search(name)


@functools.lru_cache(maxsize=256)
def path_segments(path: str) -> tuple[str, ...]:
    """The canonical segments of a raw (still percent-encoded) URL path (remembered: a request
    asks for its path's segments several times)."""
    return tuple(canonical_segment(part) for part in path.split("/"))
