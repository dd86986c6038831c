"""iTIP (RFC 5546) as RFC 6638 uses it on a server: who organizes a scheduling object resource and
who attends it, the messages one change makes (REQUEST, CANCEL, REPLY), an attendee's copy made or
updated from a REQUEST, a REPLY applied to the organizer's copy, and what an attendee may change in
their copy. Everything works on parsed calendars (icalendar); pure: no I/O, no clock but the one
passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from icalendar import Calendar, Component, Event, Todo, vCalAddress

from protocol.ical.instances import override_instance
from protocol.ical.values import OBJECT_COMPONENTS, every, formatted, to_utc

#: a property whose change makes attendees answer again (PARTSTAT reset to NEEDS-ACTION): the
#: times, the recurrence and the status (sabre/vobject's rule; RFC 5546 2.1.4 leaves it open)
SIGNIFICANT = ("DTSTART", "DTEND", "DURATION", "DUE", "RRULE", "RDATE", "EXDATE", "STATUS")
#: parameters only the server writes, never sent in a message (RFC 6638 3.2, 7.1-7.3)
SERVER_PARAMETERS = ("SCHEDULE-AGENT", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND")
#: what an attendee's copy keeps of its own when the organizer's change arrives, and what an
#: attendee may change in it (RFC 6638 3.2.2.1): alarms, transparency, their own X- properties
ATTENDEE_OWNED = ("TRANSP",)
#: properties a client or the server rewrites on every save: no change of substance
STAMPS = ("DTSTAMP", "LAST-MODIFIED", "SEQUENCE", "CREATED")
PARTSTATS = ("NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED")


def address(value: object) -> str:
    """A calendar user address as compared: ``mailto:`` addresses without case, others as written."""
    text = str(value).strip()
    if text[:7].lower() == "mailto:":
        return "mailto:" + text[7:].strip().lower()
    return text


def components(calendar: Calendar) -> list[Component]:
    """The scheduling components (VEVENT, VTODO) of a resource: its master and overrides."""
    return [c for c in calendar.subcomponents if c.name in OBJECT_COMPONENTS and c.name != "VJOURNAL"]


def organizer(calendar: Calendar) -> str | None:
    """The organizer of a scheduling object resource (the same in all its components,
    RFC 6638 3.1), or None when it is not one: no ORGANIZER, or no ATTENDEE."""
    found = [c for c in components(calendar) if "ORGANIZER" in c]
    if not found or not any(every(c, "ATTENDEE") for c in found):
        return None
    return address(found[0]["ORGANIZER"])


def attendees(component: Component) -> dict[str, vCalAddress]:
    """A component's ATTENDEE properties by address."""
    return {address(a): a if isinstance(a, vCalAddress) else vCalAddress(a) for a in every(component, "ATTENDEE")}


def invite(component: Component, organizer_address: str, wanted: Iterable[str]) -> None:
    """A component's attendees made ``wanted`` (addresses), as an organizer's form sets them:
    those kept keep their lines (their answers), new ones are asked (NEEDS-ACTION, RSVP), and
    ORGANIZER is set, or goes with the last attendee."""
    kept = attendees(component)
    component.pop("ATTENDEE", None)
    component.pop("ORGANIZER", None)
    chosen = [a for a in dict.fromkeys(address(w) for w in wanted) if a != address(organizer_address)]
    if not chosen:
        return
    component.add("ORGANIZER", vCalAddress(organizer_address))
    for each in chosen:
        line = kept.get(each)
        if line is None:
            line = vCalAddress(each)
            line.params.update({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"})
        component.add("ATTENDEE", line)


def attendee_addresses(calendar: Calendar) -> set[str]:
    """Every attendee of any of a resource's components."""
    return {a for component in components(calendar) for a in attendees(component)}


def agent(attendee: vCalAddress) -> str:
    """Who schedules for an attendee (RFC 6638 7.1): SERVER (the default), CLIENT or NONE."""
    return str(attendee.params.get("SCHEDULE-AGENT", "SERVER")).upper()


def partstat(attendee: vCalAddress) -> str:
    return str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper()


def recurrence_id(component: Component) -> datetime | None:
    """The instance an override replaces (UTC), None for a master."""
    value = component.get("RECURRENCE-ID")
    moment = getattr(value, "dt", None)
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    return to_utc(moment)[0]


def by_instance(calendar: Calendar) -> dict[datetime | None, Component]:
    """A resource's scheduling components by the instance they are (None: the master)."""
    return {recurrence_id(c): c for c in components(calendar)}


def _message(method: str, source: Calendar, parts: Iterable[Component]) -> Calendar:
    """A VCALENDAR with METHOD, the source's VTIMEZONEs and ``parts``."""
    message = Calendar()
    message.add("PRODID", str(source.get("PRODID", "-//Almanac//Almanac Calendar Server//EN")))
    message.add("VERSION", "2.0")
    message.add("METHOD", method)
    for zone in source.subcomponents:
        if zone.name == "VTIMEZONE":
            message.add_component(zone)
    for part in parts:
        message.add_component(part)
    return message


def _own_addresses(component: Component) -> None:
    """Give a component ORGANIZER and ATTENDEE properties of its own (icalendar's copies share
    them), so that changing one changes no other component."""
    for name in ("ORGANIZER", "ATTENDEE"):
        found = every(component, name)
        if found:
            fresh = [vCalAddress(str(prop), params=dict(prop.params)) for prop in found]
            component[name] = fresh if len(fresh) > 1 or isinstance(component[name], list) else fresh[0]


def _clean(component: Component) -> Component:
    """A copy of a component without the parameters only the server writes."""
    copy = component.copy()
    copy.subcomponents = [sub.copy() for sub in component.subcomponents]
    _own_addresses(copy)
    for name in ("ORGANIZER", "ATTENDEE"):
        for prop in every(copy, name):
            for parameter in SERVER_PARAMETERS:
                prop.params.pop(parameter, None)
    return copy


def attendee_index(calendar: Calendar) -> dict[str, list[tuple[datetime | None, vCalAddress]]]:
    """Every ATTENDEE property of a resource by address, with the instance it is in (None: the
    master): the lines themselves, so that setting a parameter on one sets it in the resource."""
    index: dict[str, list[tuple[datetime | None, vCalAddress]]] = {}
    for rid, component in by_instance(calendar).items():
        for line in every(component, "ATTENDEE"):
            index.setdefault(address(line), []).append((rid, line))
    return index


def request(organizer_copy: Calendar, attendee: str) -> Calendar | None:
    """The REQUEST that invites ``attendee`` to what the organizer's copy holds for them: the
    master (with an EXDATE for each override they are not in) and their overrides, or only
    the overrides they are in; None when they are in none."""
    parts = by_instance(organizer_copy)
    master = parts.get(None)
    theirs = {rid: c for rid, c in parts.items() if attendee in attendees(c)}
    if not theirs:
        return None
    sent = []
    if master is not None and None in theirs:
        copy = _clean(master)
        for rid, component in parts.items():
            if rid is not None and rid not in theirs:
                copy.add("EXDATE", _prop(component, "RECURRENCE-ID").dt)
        sent.append(copy)
    sent += [_clean(c) for rid, c in theirs.items() if rid is not None]
    return _message("REQUEST", organizer_copy, sent)


def cancel(organizer_copy: Calendar, attendee: str, instances: Iterable[datetime | None] = (None,)) -> Calendar:
    """The CANCEL that takes ``instances`` (None: the whole event) away from ``attendee``."""
    parts = by_instance(organizer_copy)
    master = parts.get(None) or next(iter(parts.values()))
    sent = []
    for rid in instances:
        source = parts.get(rid, master)
        part = _same_kind(source)
        for name in ("UID", "DTSTAMP", "ORGANIZER", "SEQUENCE"):
            if name in source:
                part[name] = source[name]
        if rid is not None:
            part["RECURRENCE-ID"] = parts[rid]["RECURRENCE-ID"] if rid in parts else _instance_id(master, rid)
        organizer_line = part.get("ORGANIZER")
        if organizer_line is not None:
            for parameter in SERVER_PARAMETERS:
                organizer_line.params.pop(parameter, None)
        part.add("ATTENDEE", vCalAddress(attendees(source).get(attendee, attendee)))
        part.add("STATUS", "CANCELLED")
        sent.append(part)
    return _message("CANCEL", organizer_copy, sent)


def _instance_id(master: Component, rid: datetime) -> object:
    """A RECURRENCE-ID property for the instance of ``master`` at ``rid`` (in its start's zone)."""
    holder = Component()
    start = _prop(master, "DTSTART").dt
    holder.add("RECURRENCE-ID", rid.astimezone(start.tzinfo) if getattr(start, "tzinfo", None) else rid)
    return holder["RECURRENCE-ID"]


def reply(
    attendee_copy: Calendar,
    attendee: str,
    instances: Iterable[datetime | None] | None = None,
    declined: Iterable[datetime] = (),
) -> Calendar:
    """The REPLY that tells the organizer ``attendee``'s participation in ``instances`` of their
    copy (None: every component of it), and that they decline the ``declined`` instances (ones
    they removed from their copy with an EXDATE, RFC 6638 3.2.2.2)."""
    parts = by_instance(attendee_copy)
    chosen = list(parts) if instances is None else [rid for rid in instances if rid in parts]
    sent = []
    master = parts.get(None)
    for rid in declined:
        if master is None:
            break
        part = _same_kind(master)
        for name in ("UID", "DTSTAMP", "ORGANIZER", "SEQUENCE"):
            if name in master:
                part[name] = master[name]
        part["RECURRENCE-ID"] = _instance_id(master, rid)
        part.add("ATTENDEE", vCalAddress(attendee, params={"PARTSTAT": "DECLINED"}))
        sent.append(part)
    for chosen_rid in chosen:
        source = parts[chosen_rid]
        part = _same_kind(source)
        for name in ("UID", "DTSTAMP", "ORGANIZER", "SEQUENCE", "RECURRENCE-ID", "DTSTART"):
            if name in source:
                part[name] = source[name]
        line = attendees(source).get(attendee)
        if line is None:
            continue
        answer = vCalAddress(str(line))
        for key, value in line.params.items():
            if key not in SERVER_PARAMETERS and key != "RSVP":
                answer.params[key] = value
        part.add("ATTENDEE", answer)
        sent.append(part)
    return _message("REPLY", attendee_copy, sent)


@dataclass(frozen=True, slots=True)
class Answer:
    """One attendee's participation in one instance (None: the master), from a REPLY."""

    attendee: str
    instance: datetime | None
    partstat: str


def answers(message: Calendar) -> list[Answer]:
    """What a REPLY says: each attendee's PARTSTAT per instance."""
    found = []
    for component in components(message):
        for who, line in attendees(component).items():
            found.append(Answer(who, recurrence_id(component), partstat(line)))
    return found


def apply_reply(organizer_copy: Calendar, message: Calendar, status: str | None = "2.0") -> list[Answer]:
    """Set the PARTSTAT each answer of a REPLY gives on the organizer's copy (an instance not
    overridden yet is overridden from the master), with SCHEDULE-STATUS (unless None: another
    attendee's copy learning the answer); the answers applied (an attendee the organizer did
    not invite is left out)."""
    applied = []
    for answer in answers(message):
        parts = by_instance(organizer_copy)
        target = parts.get(answer.instance)
        if target is None and answer.instance is not None and None in parts:
            if answer.attendee not in attendees(parts[None]):
                continue
            target = override_instance(organizer_copy, answer.instance)
            _own_addresses(target)
        if target is None or answer.attendee not in attendees(target):
            continue
        line = attendees(target)[answer.attendee]
        line.params["PARTSTAT"] = answer.partstat
        line.params.pop("RSVP", None)
        if status is not None:
            line.params["SCHEDULE-STATUS"] = status
        applied.append(answer)
    return applied


def answered(old: Calendar | None, new: Calendar, attendee: str) -> tuple[list[datetime | None], list[datetime]]:
    """What an attendee's write of their copy answers: the instances (None: the master) whose
    PARTSTAT for them differs from ``old`` (every one they answered, without it), and the
    instances they removed with an EXDATE (declined)."""
    before = by_instance(old) if old is not None else {}
    changed: list[datetime | None] = []
    for rid, component in by_instance(new).items():
        line = attendees(component).get(attendee)
        if line is None:
            continue
        reference = before.get(rid, before.get(None))
        was = attendees(reference).get(attendee) if reference is not None else None
        if (partstat(was) if was is not None else "NEEDS-ACTION") != partstat(line):
            changed.append(rid)
    master, was_master = by_instance(new).get(None), before.get(None)
    removed = set(_exdates(master)) - set(_exdates(was_master)) if master is not None and was_master else set()
    return changed, sorted(removed)


def merge_answers(new: Calendar, stored: Calendar, whose: Iterable[str]) -> None:
    """Take the PARTSTAT (and SCHEDULE-STATUS) of the attendees ``whose`` from the stored
    version, per instance: what scheduling recorded stays, whatever copy a client wrote from."""
    keep = set(whose)
    before = by_instance(stored)
    for rid, component in by_instance(new).items():
        reference = before.get(rid, before.get(None))
        if reference is None:
            continue
        was = attendees(reference)
        for who, line in attendees(component).items():
            if who in keep and who in was:
                for name in ("PARTSTAT", "SCHEDULE-STATUS", "RSVP"):
                    line.params.pop(name, None)
                    if name in was[who].params:
                        line.params[name] = was[who].params[name]


def reset_answers(calendar: Calendar, organizer_address: str) -> None:
    """Ask every attendee scheduled by the server to answer again (a significant change)."""
    for component in components(calendar):
        for who, line in attendees(component).items():
            if who != organizer_address and agent(line) == "SERVER":
                line.params["PARTSTAT"] = "NEEDS-ACTION"
                line.params["RSVP"] = "TRUE"


def set_answer(calendar: Calendar, attendee: str, answer: str | None = None, status: str | None = None) -> None:
    """Set an attendee's PARTSTAT (``answer``) and SCHEDULE-STATUS in every component."""
    for component in components(calendar):
        line = attendees(component).get(attendee)
        if line is not None:
            if answer is not None:
                line.params["PARTSTAT"] = answer
                line.params.pop("RSVP", None)
            if status is not None:
                line.params["SCHEDULE-STATUS"] = status


def scheduled_by_server(calendar: Calendar, attendee: str) -> bool:
    """Whether the server schedules for ``attendee`` (no SCHEDULE-AGENT=CLIENT or NONE)."""
    lines = [attendees(c).get(attendee) for c in components(calendar)]
    return any(line is not None and agent(line) == "SERVER" for line in lines)


def cancelled_instances(old: Calendar, new: Calendar, attendee: str) -> list[datetime]:
    """The instances the organizer's change takes from an attendee who stays invited: ones the
    master now excludes (EXDATE) while it invites them, and overrides that invited them and no
    longer do (without the master inviting them)."""
    before, after = by_instance(old), by_instance(new)
    master = after.get(None)
    in_master = master is not None and attendee in attendees(master)
    gone: set[datetime] = set()
    if master is not None and in_master and None in before:
        gone |= set(_exdates(master)) - set(_exdates(before[None]))
    for rid, component in before.items():
        if rid is None or attendee not in attendees(component):
            continue
        now = after.get(rid)
        if (now is not None and attendee not in attendees(now)) or (now is None and not in_master):
            gone.add(rid)
    return sorted(gone)


def answers_state(calendar: Calendar) -> tuple[tuple[object, ...], ...]:
    """Every ATTENDEE's parameters per instance: what scheduling changes in an organizer's
    write (answers, SCHEDULE-STATUS), compared before and after without serializing."""
    return tuple(
        (rid, str(line), tuple(sorted((k, str(v)) for k, v in line.params.items())))
        for rid, component in by_instance(calendar).items()
        for line in every(component, "ATTENDEE")
    )


def without_answers(calendar: Calendar) -> bytes:
    """A resource's text without what answers change (PARTSTAT, RSVP, SCHEDULE-STATUS): two
    versions equal in it differ only in answers (their Schedule-Tag stays, RFC 6638 3.2.10)."""
    copy = Calendar.from_ical(calendar.to_ical())
    for component in components(copy):
        for line in every(component, "ATTENDEE"):
            for name in ("PARTSTAT", "RSVP", "SCHEDULE-STATUS"):
                line.params.pop(name, None)
    return copy.to_ical()


def significant(old: Calendar, new: Calendar) -> bool:
    """Whether the organizer's change asks attendees to answer again: a component added or
    removed, or one of ``SIGNIFICANT`` changed in any of them."""
    before, after = by_instance(old), by_instance(new)
    if before.keys() != after.keys():
        return True
    return any(_ical(before[rid].get(name)) != _ical(after[rid].get(name)) for rid in before for name in SIGNIFICANT)


def _ical(value: object) -> object:
    """A property's value as text, to compare (a list of them as a tuple)."""
    if isinstance(value, list):
        return tuple(_ical(item) for item in value)
    return value.to_ical() if hasattr(value, "to_ical") else value


def _substance(component: Component, attendee: str) -> tuple[object, ...]:
    """What an attendee may not change in a component: everything but alarms, transparency,
    X- properties, the stamps and their own ATTENDEE's parameters."""
    kept: list[tuple[object, ...]] = []
    items: list[tuple[str, Any]] = component.property_items(recursive=False)
    for name, value in items:
        if name in ("BEGIN", "END") or name.startswith("X-") or name in ATTENDEE_OWNED or name in STAMPS:
            continue
        if name == "ATTENDEE" and address(value) == attendee:
            continue
        if name in ("ATTENDEE", "ORGANIZER"):  # who, not how a client writes them (CN, EMAIL, ...)
            kept.append((name, address(value)))
            continue
        kept.append((name, _ical(value)))
    kept.append(("subcomponents", tuple(c.to_ical() for c in component.subcomponents if c.name != "VALARM")))
    return tuple(sorted(kept, key=repr))


def attendee_change_refused(old: Calendar, new: Calendar, attendee: str) -> str | None:
    """Why an attendee's write of their copy is not theirs to make (RFC 6638 3.2.2.1,
    ``valid-attendee-change``), or None: they may change their PARTSTAT (per instance too,
    adding an override for it), their alarms, transparency and X- properties, and remove an
    instance (an EXDATE: declining it)."""
    before, after = by_instance(old), by_instance(new)
    for rid, component in after.items():
        if rid is None or rid in before:
            reference = before.get(rid)
        else:  # an override the attendee added: compared with the instance it replaces
            if None not in before:
                return "an instance the organizer did not schedule"
            reference = _as_instance(old, rid)
        if reference is None:
            return "a component the organizer did not schedule"
        if attendee not in attendees(component):
            return "the attendee's own ATTENDEE property is gone"
        if _substance(_without_exdates(reference), attendee) != _substance(_without_exdates(component), attendee):
            return f"a change to what the organizer decides ({'the series' if rid is None else 'an instance'})"
        if set(_exdates(reference)) - set(_exdates(component)):
            return "an instance the organizer removed is back"
    missing = [rid for rid in before if rid not in after and rid is None]
    if missing:
        return "the event itself is gone (delete it to decline)"
    return None


def _prop(component: Component, name: str) -> Any:
    """A property of a component, as icalendar gives it (its value types vary by property)."""
    return component[name]


def _same_kind(component: Component) -> Component:
    """A new, empty component of the same kind (VEVENT or VTODO)."""
    return Todo() if component.name == "VTODO" else Event()


def _exdates(component: Component) -> list[datetime]:
    return [to_utc(d.dt)[0] for prop in every(component, "EXDATE") for d in prop.dts]


def _without_exdates(component: Component) -> Component:
    copy = component.copy()
    copy.subcomponents = list(component.subcomponents)
    copy.pop("EXDATE", None)
    return copy


def _as_instance(calendar: Calendar, rid: datetime) -> Component:
    """The instance ``rid`` of a series as its master makes it (an override not stored)."""
    copy = Calendar.from_ical(calendar.to_ical())
    return override_instance(copy, rid)


def attendee_copy(
    message: Calendar, attendee: str, previous: Calendar | None = None, *, reset: bool = True
) -> Calendar:
    """An attendee's copy from a REQUEST: its components as the organizer sent them, without
    METHOD; from ``previous`` (their copy so far) it keeps their alarms, transparency, X-
    properties and, unless ``reset`` (a significant change), their PARTSTAT per instance."""
    copy = Calendar()
    for name, value in message.property_items(recursive=False):
        if name not in ("BEGIN", "END", "METHOD"):
            copy.add(name, value)
    old = by_instance(previous) if previous is not None else {}
    for sent in message.subcomponents:
        part = sent.copy() if sent.name == "VTIMEZONE" else _clean(sent)
        if part.name in OBJECT_COMPONENTS:
            mine = old.get(recurrence_id(part))
            if mine is None and recurrence_id(part) is not None:
                mine = old.get(None)
            if mine is not None:
                _keep_own(part, mine, attendee, keep_partstat=not reset)
        copy.add_component(part)
    return copy


def _keep_own(part: Component, mine: Component, attendee: str, *, keep_partstat: bool) -> None:
    for name in ATTENDEE_OWNED:
        part.pop(name, None)
        if name in mine:
            part[name] = mine[name]
    for name, value in mine.property_items(recursive=False):
        if name.startswith("X-") and name not in part:
            part[name] = value
    part.subcomponents = [c for c in part.subcomponents if c.name != "VALARM"] + [
        c for c in mine.subcomponents if c.name == "VALARM"
    ]
    line, was = attendees(part).get(attendee), attendees(mine).get(attendee)
    if keep_partstat and line is not None and was is not None:
        line.params["PARTSTAT"] = partstat(was)
        if partstat(was) != "NEEDS-ACTION":
            line.params.pop("RSVP", None)


@dataclass(frozen=True, slots=True)
class FreeBusyRequest:
    """A VFREEBUSY REQUEST (RFC 5546 3.3, RFC 6638 5): who asks, about whom, for which range (UTC)."""

    organizer: str
    attendees: list[str]
    start: datetime
    end: datetime
    uid: str | None = None


def free_busy_request(calendar: Calendar) -> FreeBusyRequest:
    """What a free/busy request asks; ValueError (saying what is missing) when it is not one."""
    if str(calendar.get("METHOD", "")).upper() != "REQUEST":
        raise ValueError("a free/busy request is METHOD:REQUEST")
    found = [c for c in calendar.subcomponents if c.name == "VFREEBUSY"]
    if len(found) != 1 or any(c.name in OBJECT_COMPONENTS for c in calendar.subcomponents):
        raise ValueError("a free/busy request holds one VFREEBUSY and nothing else")
    query = found[0]
    for name in ("ORGANIZER", "ATTENDEE", "DTSTART", "DTEND"):
        if name not in query:
            raise ValueError(f"a free/busy request needs {name}")
    start, end = (_prop(query, name).dt for name in ("DTSTART", "DTEND"))
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise ValueError("a free/busy request's DTSTART and DTEND are date-times")
    return FreeBusyRequest(
        organizer=address(query["ORGANIZER"]),
        attendees=[str(a).strip() for a in every(query, "ATTENDEE")],
        start=to_utc(start)[0],
        end=to_utc(end)[0],
        uid=str(query["UID"]) if "UID" in query else None,
    )


def free_busy_reply(
    asked: FreeBusyRequest, attendee: str, periods: Iterable[tuple[datetime, datetime, str]], stamp: datetime
) -> str:
    """The VFREEBUSY REPLY telling ``attendee``'s busy periods (start, end, FBTYPE) in the range asked."""

    def utc(moment: datetime) -> str:
        return formatted(moment, "%Y%m%dT%H%M%SZ")

    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Almanac//Almanac Calendar Server//EN", "METHOD:REPLY",
        "BEGIN:VFREEBUSY", *([f"UID:{asked.uid}"] if asked.uid else []),
        f"DTSTAMP:{utc(stamp)}", f"DTSTART:{utc(asked.start)}", f"DTEND:{utc(asked.end)}",
        f"ORGANIZER:{asked.organizer}", f"ATTENDEE:{attendee}",
        *(f"FREEBUSY;FBTYPE={kind}:{utc(start)}/{utc(end)}" for start, end, kind in periods),
        "END:VFREEBUSY", "END:VCALENDAR",
    ]  # fmt: skip
    return "\r\n".join(lines) + "\r\n"
