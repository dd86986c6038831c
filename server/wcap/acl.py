"""Access control entries (``jdoe^a^rf^g``) as the Sun server wrote them, translated to and from
Almanac's grants (docs/wcap.md, "Sharing"). Pure: the door looks the users up."""

from __future__ import annotations

from protocol.wcap import Ace, Errno, WcapError
from server.services.access import Level

#: what get_calprops says of the owners, as the Sun server's defaults did
OWNER_ACES = ("@@o^a^RSF^g", "@@o^c^WDEIC^g")
#: the rights of each level, as the one ACE on the calendar (``a``) that a grant becomes
HOW = {Level.FREEBUSY: "f", Level.READ: "rf", Level.READ_WRITE: "rfwd", Level.ADMIN: "rfwds"}
#: who stands for every signed-in user; who stand for the owners (they have every right anyway)
EVERYONE, OWNERS = "@", ("@@o", "@@p")


def ace_of(who: str, level: Level) -> str:
    return str(Ace(who, "a", HOW[level], "g"))


def levels(acl: list[Ace]) -> dict[str, Level]:
    """The level each ``who`` of an ACL gets (``@``: every signed-in user); errno 77 for an
    entry that does not map onto a grant: a denial, a domain or non-owner group, a right or
    part Almanac does not know, or an entry that gives nothing."""
    rights: dict[str, set[str]] = {}
    for ace in acl:
        if ace.who in OWNERS:
            if ace.grant != "g":
                raise unmappable(ace, "the owners' rights cannot be taken away")
            continue
        if ace.grant != "g":
            raise unmappable(ace, "entries that deny are not kept: a user has only what is granted")
        if ace.who.startswith("@") and ace.who != EVERYONE:
            raise unmappable(ace, "grants go to a user or to @ (every user), not to a domain or group")
        if set(ace.flags) - set("acp") or set(ace.how) - set("rwdsf"):
            raise unmappable(ace, "the parts are a, c, p and the rights r, w, d, s, f")
        got = rights.setdefault(ace.who, set())
        for part in ace.flags:
            if part == "p":  # changing the calendar's properties is managing it; reading them, no right of its own
                got |= {"s"} if "w" in ace.how else set()
            else:
                got |= set(ace.how)
    found = {}
    for who, got in rights.items():
        level = (Level.ADMIN if "s" in got else Level.READ_WRITE if got & {"w", "d"}
                 else Level.READ if "r" in got else Level.FREEBUSY if "f" in got else None)  # fmt: skip
        if level is None:
            raise WcapError(Errno.BAD_IMPORT_ARGUMENTS, f"the entries for {who} give no right Almanac grants")
        found[who] = level
    return found


def unmappable(ace: Ace, why: str) -> WcapError:
    return WcapError(Errno.BAD_IMPORT_ARGUMENTS, f"{ace}: {why}")
