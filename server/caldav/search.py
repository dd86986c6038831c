"""Principal search (RFC 3744 9.4-9.5): which principals a principal-property-search finds, and
the principal-search-property-set report, read from the live properties' table."""

from __future__ import annotations

from lxml import etree

from protocol import dav
from protocol.dav import CALDAV, DAV, tag
from server.caldav.props import LIVE, DavResource, Kind
from storage.model import User

#: what principal-property-search looks in (RFC 3744 9.5), with a description for clients
SEARCHABLE = {tag(DAV, "displayname"): "Name", tag(CALDAV, "calendar-user-address-set"): "E-mail address"}


def _searchable_text(user: User, name: str) -> list[str]:
    """The text of a principal's property (or of its hrefs) that a search compares."""
    value = LIVE[name].read(DavResource(Kind.PRINCIPAL, user, user))
    return [value] if isinstance(value, str) else [node.text or "" for node in value or ()]


def principal_matches(user: User, search: dav.PrincipalSearch) -> bool:
    """Whether a principal matches a principal-property-search: a property-search matches
    when the text is a caseless substring of one of its properties (RFC 3744 9.4)."""
    results = (
        any(text.casefold() in value.casefold() for name in names for value in _searchable_text(user, name))
        for names, text in search.searches
    )
    return any(results) if search.any_of and search.searches else all(results)


def search_property_set() -> bytes:
    """The principal-search-property-set report's reply (RFC 3744 9.5)."""
    root = etree.Element(tag(DAV, "principal-search-property-set"), nsmap=dav.NSMAP)
    for name, description in SEARCHABLE.items():
        found = dav.element(tag(DAV, "description"), description)
        found.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        prop = dav.element(tag(DAV, "prop"), None, dav.element(name))
        root.append(dav.element(tag(DAV, "principal-search-property"), None, prop, found))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
