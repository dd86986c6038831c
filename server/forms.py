"""The import form that the REST imports resource and the web pages share: its fields read into
an import request, and its errors in the Freckle draft's JSON (which the web page's script reads)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.http import SpooledForm, boolean, iso_epoch, read_form
from server.services import Services
from server.services.calendars import is_uuid
from server.services.errors import Invalid, NotFound, ServiceError, TooLarge
from server.services.imports import DELIMITERS, ImportRequest, Upload
from storage.model import User

TYPES = ("autodetect", "ics", "google", "outlook", "timeslot")


async def import_form(
    request: web.Request, services: Services, user: User, door: str
) -> tuple[ImportRequest, Upload, dict[str, str]]:
    """The import a multipart form asks for (the API's POST and the web page's): the request,
    the file, spooled to disk (the caller discards it), and the other fields. Invalid (with
    the imports resource's codes), TooLarge."""
    if request.content_type != "multipart/form-data":
        raise Invalid("send the file as multipart/form-data", field="file", code="invalid_content_type")
    form = await read_form(request, services.config.max_upload_bytes, services.imports.spool)
    upload = Upload(path=form.path)
    try:
        return await _import_request(services, user, door, form), upload, form.fields
    except BaseException:
        upload.discard()
        raise


async def _import_request(services: Services, user: User, door: str, form: SpooledForm) -> ImportRequest:
    fields = form.fields
    if form.path is None or not form.path.stat().st_size:
        raise Invalid("a file is required", field="file", code="missing_field")
    kind = fields.get("type") or "autodetect"
    if kind not in TYPES:
        raise Invalid(f"type must be one of {', '.join(TYPES)}", field="type")
    delimiter = fields.get("field_delimiter") or fields.get("field_delimeter")  # the draft's spelling too
    if delimiter and delimiter not in DELIMITERS:
        raise Invalid(
            "field_delimiter must be one of , ; | or tab", field="field_delimiter", code="invalid_field_delimiter"
        )
    calendar = None
    if fields.get("calendar"):
        if not is_uuid(fields["calendar"]):
            raise Invalid("calendar must be the id (a uuid) of one of your calendars", field="calendar")
        try:
            calendar = await services.calendars.get(user, fields["calendar"])
        except NotFound:
            raise Invalid("no calendar of yours has this id", field="calendar", code="missing") from None
    try:
        start, end = (iso_epoch(fields.get(name), name) for name in ("dtstart", "dtend"))
        create_calendars = boolean(fields.get("create_calendars"), "create_calendars", True)
        skip_invalid = boolean(fields.get("skip_invalid"), "skip_invalid", False)
    except ValueError as error:
        raise Invalid(str(error), field=str(error).split()[0]) from None
    if start is not None and end is not None and end <= start:
        raise Invalid("dtend must be after dtstart", field="dtend")
    return ImportRequest(
        door=door, calendar=calendar, format=None if kind == "autodetect" else kind, filename=form.filename,
        start=start, end=end, create_calendars=create_calendars, delimiter=DELIMITERS.get(delimiter or ""),
        skip_invalid=skip_invalid,
    )  # fmt: skip


def freckle_error(error: ServiceError) -> web.Response:
    """``{"message", "errors": [{"resource", "field", "code"}]}``, the draft's family's format."""
    field: str | None
    if isinstance(error, TooLarge):
        status, field, code = 413, "file", "too_large"
    elif isinstance(error, Invalid):
        status, field, code = (400 if error.code == "invalid_content_type" else 422), error.field, error.code
    else:
        raise error
    body: dict[str, Any] = {"message": error.message, "errors": [{"resource": "Import", "field": field, "code": code}]}
    if isinstance(error, Invalid) and error.errors:
        body["line_errors"] = error.errors
    return web.json_response(body, status=status)
