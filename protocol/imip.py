"""iMIP (RFC 6047): an iTIP message as an e-mail to an attendee outside the server. Pure: the
message is built from the iTIP text and who sends it; nothing is sent here."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

#: the subject's first word per method
SUBJECTS = {"REQUEST": "Invitation", "CANCEL": "Cancelled", "REPLY": "Answer"}


def reply_address(sender: str, token: str) -> str:
    """The address an attendee's answer goes to: the sender's, with the token after a ``+``
    (``calendar+TOKEN@example.org``), so that the receiver knows whose answer it is."""
    local, _, domain = sender.rpartition("@")
    return f"{local}+{token}@{domain}"


def message(
    method: str,
    itip_text: str,
    *,
    summary: str,
    organizer_name: str,
    sender: str,
    recipient: str,
    token: str,
    update: bool = False,
    rsvp: str | None = None,
) -> str:
    """The e-mail of one iTIP message (``method`` REQUEST or CANCEL) for ``recipient``: a plain
    text part saying what it is, and the ``text/calendar; method=...`` part calendar programs
    read (RFC 6047 2.4); from the server's ``sender`` in the organizer's name, answers going to
    the token's reply address; ``rsvp``: a web page to answer on, named in the text."""
    mail = EmailMessage()
    word = "Updated invitation" if update and method == "REQUEST" else SUBJECTS.get(method, method.title())
    mail["Subject"] = f"{word}: {summary or '(no title)'}"
    mail["From"] = formataddr((f"{organizer_name} (via Almanac)", sender))
    mail["Reply-To"] = reply_address(sender, token)
    mail["To"] = recipient
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    lines = {
        "REQUEST": f"{organizer_name} invites you to: {summary}. Your calendar program offers to answer it.",
        "CANCEL": f"{organizer_name} cancelled: {summary}.",
    }
    answer = f"\nNo calendar program? Answer here: {rsvp}\n" if rsvp and method == "REQUEST" else ""
    mail.set_content(lines.get(method, summary) + "\n" + answer)
    mail.add_alternative(
        itip_text.encode(), maintype="text", subtype="calendar", params={"method": method, "charset": "utf-8"}
    )
    return mail.as_string()


def calendar_part(body: bytes) -> str | None:
    """The iCalendar an e-mail carries: its ``text/calendar`` part (or an ``.ics`` attachment,
    as some mail programs send it), or None."""
    mail = email.message_from_bytes(body, policy=policy.default)
    for part in mail.walk():
        kind = part.get_content_type()
        named = (part.get_filename() or "").lower().endswith(".ics")
        if kind == "text/calendar" or (named and kind in ("application/ics", "application/octet-stream")):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return None
