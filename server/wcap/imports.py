"""WCAP ``import.wcap``: a multipart upload (or the seed's HTML form) into a calid, filtered by
``dtstart``/``dtend``."""

from __future__ import annotations

from protocol.wcap import Block, Errno, WcapError
from server.services.errors import BadEncoding, Invalid, TooLarge
from server.services.imports import ImportRequest
from server.wcap.door import Call, WcapDoor, command, epoch, range_of


@command("import")
async def import_file(door: WcapDoor, call: Call) -> list[Block]:
    bad = Errno.BAD_IMPORT_ARGUMENTS
    if call.request.method != "POST":
        raise WcapError(bad, "import.wcap takes the file in a multipart/form-data POST")
    if (call.get("content-in") or "text/calendar") != "text/calendar":
        raise WcapError(bad, "content-in must be text/calendar")
    start, end = range_of(call, bad)
    if call.upload is None or not call.upload.size:
        raise WcapError(bad, "no file: send it in the multipart field 'file'")
    calendar = await door.calendar(call)
    try:
        job, result = await door.services.imports.run(
            call.me,
            ImportRequest(
                door="wcap", calendar=calendar, format="ics", filename=call.filename, start=epoch(start), end=epoch(end)
            ),
            call.upload,
        )
    except (Invalid, BadEncoding, TooLarge) as error:
        raise WcapError(bad, error.message) from None
    block = Block(await door.props(call, calendar))
    block.properties += [
        ("X-ALMANAC-IMPORT-ID", str(job.id)),
        ("X-ALMANAC-IMPORT-CREATED", str(job.created)),
        ("X-ALMANAC-IMPORT-UPDATED", str(job.updated)),
        ("X-ALMANAC-IMPORT-UNCHANGED", str(job.unchanged)),
        ("X-ALMANAC-IMPORT-DISCARDED", str(result.discarded)),
    ]
    return [block]
