"""The Timeslot-style JSON door: ``/v1`` users, groups (calendars), slots (events), import, export.

Errors are ``{"error": "..."}`` with the statuses of the Timeslot Data API pages; a missing or
wrong token is 401 ``{"error": "auth_token invalid or missing"}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from icalendar import Calendar as ICalendar
from icalendar import Component

from protocol import events
from protocol.formats.timeslot_json import slot, slot_fields
from server.forms import freckle_error
from server.http import (
    FILE_FIELDS,
    REQUEST_USER,
    SERVICES,
    client_address,
    iso_epoch,
    object_id,
    read_form,
    read_json_form,
    read_limited,
    read_post,
    token_from_header,
    whole_number,
)
from server.rest import imports as rest_imports
from server.rest.shapes import (
    ANSWERS,
    CHANGES,
    SLOT_KEYS,
    error_response,
    group_json,
    json_object,
    json_response,
    member_json,
    short_user,
    slot_json,
    snake,
    user_json,
)
from server.services import Services
from server.services.access import State
from server.services.calendars import is_uuid, normalize_color
from server.services.errors import BadEncoding, Forbidden, Invalid, NotFound, PreconditionFailed, ServiceError, TooLarge
from server.services.imports import ImportRequest, Upload
from storage.errors import StoreFull, StoreUnavailable
from storage.model import Calendar, User

log = logging.getLogger("almanac.rest")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Data API export routes: format, file extension, content type (as the seeds show them)
EXPORTS = {
    "ical": ("ics", "ical", "application/octet-stream"),
    "google": ("google", "ical", "application/octet-stream"),
    "outlook": ("outlook", "csv", "text/csv"),
    "timeslot": ("timeslot", "json", "application/json"),
}


class Unauthorized(ServiceError):
    pass


#: what the services call things, in Timeslot's words
NAMES = {"calendar": "group", "object": "slot"}
FIELDS = {"color": "defaultColor"}


@web.middleware
async def rest_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure of the /v1 door as ``{"error": ...}`` JSON with its status; what creating
    an import refuses at once in the Freckle draft's format (docs/rest.md)."""
    try:
        response = await handler(request)
    except Unauthorized:
        return error_response(401, "auth_token invalid or missing")
    except NotFound as error:
        return error_response(404, f"{NAMES[error.kind]} not found" if error.kind in NAMES else error.message)
    except Invalid as error:
        if rest_imports.refuses_as_freckle(request):
            return freckle_error(error)
        line = error.errors[0]["line"] if error.errors else None
        field = FIELDS.get(error.field or "", error.field)
        return error_response(422, error.message, field=field, line=line, errors=error.errors or None)
    except BadEncoding as error:
        return error_response(403, error.message, line=error.line)
    except TooLarge as error:
        if rest_imports.refuses_as_freckle(request):
            return freckle_error(error)
        return error_response(413, error.message)
    except Forbidden as error:
        return error_response(403, error.message)
    except PreconditionFailed as error:
        return error_response(412, error.message)
    except StoreFull as error:
        return error_response(507, f"{error}: nothing was written, try again later")
    except StoreUnavailable as error:
        response = error_response(503, f"the store cannot answer now ({error}); try again")
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = error_response(error.status, error.reason.lower())
        if "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response
    return response


# --------------------------------------------------------------------------- JSON shapes


# --------------------------------------------------------------------------- request helpers


class RestDoor:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.limit = services.config.max_upload_bytes

    async def user(self, request: web.Request) -> User:
        token = token_from_header(request.headers.get("Authorization"))
        user = await self.services.users.user_for_token(token)
        if user is None:
            raise Unauthorized("auth_token invalid or missing")
        request[REQUEST_USER] = user.username
        return user

    async def params(self, request: web.Request) -> dict[str, Any]:
        """Query, then JSON or form body parameters, keys snake_cased."""
        params: dict[str, Any] = {snake(k): v for k, v in request.query.items()}
        if request.content_type == "application/json":
            params.update(json_object(await read_limited(request, 1 << 20)))
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await read_post(request)
            params.update({snake(k): v for k, v in form.items() if isinstance(v, str)})
        return params

    # users -------------------------------------------------------------------------------

    async def signup(self, request: web.Request) -> web.Response:
        params = await self.params(request)
        user = await self.services.users.sign_up(*map(params.get, ("username", "password", "email", "invitation")))
        token = await self.services.users.issue_token(user)
        request[REQUEST_USER] = user.username
        return json_response(user_json(user, await self.services.calendars.of(user), token), 201)

    async def signin(self, request: web.Request) -> web.Response:
        params = await self.params(request)
        login = params.get("email") or params.get("username") or params.get("login")
        password = params.get("password")
        if not isinstance(login, str) or not login or not isinstance(password, str) or not password:
            raise Invalid("param is missing or the value is empty: email and password", field="email")
        user = await self.services.users.authenticate(login, password, client_address(request))
        if user is None:
            return error_response(401, "email and password didn't match")
        token = await self.services.users.issue_token(user)
        request[REQUEST_USER] = user.username
        return json_response(user_json(user, await self.services.calendars.of(user), token))

    async def me(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        return json_response(user_json(user, await self.services.calendars.of(user)))

    async def signout(self, request: web.Request) -> web.Response:
        await self.services.users.sign_out(await self.user(request))
        return web.Response(status=200, content_type="application/json")

    # groups ------------------------------------------------------------------------------

    async def my_calendars(self, request: web.Request) -> web.Response:
        """The user's groups, then those shared with them (accepted or to answer), each with
        the user's membershipState."""
        user = await self.user(request)
        result = [{**group_json(c, user), "showInSchedule": True} for c in await self.services.calendars.of(user)]
        for grant, calendar, owner in await self.services.access.shared_with(user):
            shown = {**group_json(calendar, owner, state=grant.state), "color": grant.props.get("color")}
            result.append({**shown, "showInSchedule": grant.state == State.ACTIVE})
        return json_response({"result": result})

    @staticmethod
    def group_changes(params: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for key, field in (("name", "name"), ("description", "description"), ("default_color", "color"),
                           ("color", "color"), ("timezone", "timezone"), ("public", "public"),
                           ("members_can_post", "members_can_post"),
                           ("members_can_invite", "members_can_invite")):  # fmt: skip
            if key in params:
                changes[field] = params[key]
        for key in ("public", "members_can_post", "members_can_invite"):
            if key in changes and not isinstance(changes[key], bool):
                changes[key] = str(changes[key]).lower() in ("1", "true", "yes")
        for key in ("name", "description"):
            if key in changes and changes[key] is not None and not isinstance(changes[key], str):
                raise Invalid(f"{key} must be a string", field=key)
        return changes

    async def _group(self, user: User, uuid: str) -> Calendar:
        calendar = await self.services.calendars.get(user, uuid)
        counted = await self.services.calendars.of(await self._owner(calendar))
        return next((c for c in counted if c.id == calendar.id), calendar)

    async def _owner(self, calendar: Calendar) -> User:
        owner = await self.services.users.get(calendar.owner_id)
        if owner is None:
            raise NotFound("group not found", kind="calendar")
        return owner

    async def _group_json(self, user: User, calendar: Calendar) -> dict[str, Any]:
        owner = await self._owner(calendar)
        members = await self.services.access.members(user, calendar)
        mine = next((g for g, u in members if u.id == user.id), None)
        state = "active" if owner.id == user.id else mine.state if mine else "undefined"
        return group_json(calendar, owner, members, state)

    async def create_group(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        params = await self.params(request)
        changes = self.group_changes(params)
        name = changes.pop("name", None)
        if not isinstance(name, str) or not name.strip():
            raise Invalid("param is missing or the value is empty: name", field="name")
        invitees = await self._invitees(params.get("invitees"))
        calendar = await self.services.calendars.create(user, name, **changes)
        await self.services.access.invite(user, calendar, invitees)
        return json_response(await self._group_json(user, await self._group(user, calendar.uuid)), 201)

    async def show_group(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        return json_response(await self._group_json(user, await self._group(user, request.match_info["uuid"])))

    async def update_group(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        changes = self.group_changes(await self.params(request))
        calendar = await self.services.calendars.update(user, request.match_info["uuid"], **changes)
        return json_response(await self._group_json(user, await self._group(user, calendar.uuid)))

    # members -----------------------------------------------------------------------------

    async def _invitees(self, ids: object) -> list[User]:
        """The users ``invitees`` names by id (Timeslot) or by username or e-mail address."""
        if ids is None:
            return []
        if not isinstance(ids, list):
            ids = [ids]
        found = []
        for key in ids:
            user = None
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                user = await self.services.users.get(int(key))
            elif isinstance(key, str):
                user = await self.services.calendars.owner_of(key, by_email="@" in key)
            if user is None:
                raise Invalid(f"no user {key}", field="invitees")
            found.append(user)
        return found

    async def members(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        calendar = await self.services.calendars.get(user, request.match_info["uuid"])
        members = await self.services.access.members(user, calendar)
        owner = await self._owner(calendar)
        shown = [{**short_user(owner), "membershipState": "active", "access": "owner", "color": None}]
        shown += [member_json(g, u) for g, u in members]
        return json_response({"id": calendar.uuid, "membersCounter": len(shown), "members": shown})

    async def invite(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        calendar = await self.services.calendars.get(user, request.match_info["uuid"])
        params = await self.params(request)
        invitees = await self._invitees(params.get("invitees", params.get("user_ids", params.get("user_id"))))
        if not invitees:
            raise Invalid("param is missing or the value is empty: invitees", field="invitees")
        grants = await self.services.access.invite(user, calendar, invitees)
        related = [{"id": g.grantee_id, "state": g.state, "deletedAt": None} for g in grants]
        return json_response({"id": calendar.uuid, "size": len(related), "related": related}, 201)

    async def answer(self, request: web.Request) -> web.Response:
        """POST .../accept or .../refuse: the user's answer to an invitation."""
        user = await self.user(request)
        grant, calendar = await self.services.access.invitation(user, request.match_info["uuid"])
        answered = await self.services.access.answer(user, grant, request.path.endswith("/accept"))
        return json_response(await self._group_json(user, calendar) | {"membershipState": answered.state})

    async def member_settings(self, request: web.Request) -> web.Response:
        """PATCH .../members: the user's own settings of a group shared with them (colour)."""
        user = await self.user(request)
        calendar = await self.services.calendars.get(user, request.match_info["uuid"])
        settings = (await self.params(request)).get("settings") or {}
        if not isinstance(settings, dict):
            raise Invalid("settings must be an object", field="settings")
        color = normalize_color(settings.get("color")) if settings.get("color") else None
        if calendar.owner_id == user.id:
            await self.services.calendars.update(user, calendar.uuid, color=color)
        else:
            grant = await self.services.access.grant_to(user, calendar)
            if grant is None:
                raise NotFound("membership not found")
            await self.services.access.set_props(user, grant, {"color": color})
        return json_response(await self._group_json(user, calendar))

    async def leave(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        calendar = await self.services.calendars.get(user, request.match_info["uuid"])
        if calendar.owner_id == user.id:
            raise Invalid("the owner cannot leave their own group; delete it instead", field="group")
        await self.services.access.leave_calendar(user, calendar)
        return json_response(await self._group_json(user, calendar) | {"membershipState": State.LEFT.value})

    async def kick(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        calendar = await self.services.calendars.get(user, request.match_info["uuid"])
        member_id = object_id(request.match_info["user_id"])
        member = await self.services.users.get(member_id) if member_id else None
        grant = await self.services.access.grant_to(member, calendar) if member else None
        if grant is None:
            raise NotFound("member not found")
        await self.services.access.revoke(user, calendar, grant)
        return json_response(await self._group_json(user, calendar))

    async def delete_group(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        calendar = await self._group(user, request.match_info["uuid"])
        await self.services.calendars.delete(user, calendar.uuid)
        return json_response(group_json(calendar, user))

    # slots -------------------------------------------------------------------------------

    async def _slots(self, request: web.Request, user: User, calendars: list[Calendar]) -> web.Response:
        """A plain array of slots, or a page of them when paging parameters are given."""
        query = request.query
        paging = any(k in query for k in ("limit", "after", "earliest", "latest"))
        try:
            limit = min(whole_number(query.get("limit"), "limit", 40, 1), 1000) if paging else None
            after = whole_number(query.get("after"), "after", 0)
            earliest = iso_epoch(query.get("earliest"), "earliest")
            latest = iso_epoch(query.get("latest"), "latest")
        except ValueError as error:
            raise Invalid(str(error)) from None
        found = await self.services.calendars.list_objects(
            user, calendars, start=earliest, end=latest, after_id=after, limit=limit
        )
        by_id = {c.id: c for c in calendars}
        data = await asyncio.to_thread(lambda: [slot_json(o, by_id[o.calendar_id], user.email) for o in found])
        if not paging:
            return json_response(data)
        next_after = found[-1].id if limit is not None and len(found) == limit else None
        return json_response({"paging": {"limit": limit, "after": next_after}, "data": data})

    async def my_slots(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        return await self._slots(request, user, await self.services.calendars.of(user))

    async def group_slots(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        calendar = await self.services.calendars.get(user, request.match_info["uuid"])
        return await self._slots(request, user, [calendar])

    @staticmethod
    def slot_item(params: dict[str, Any]) -> dict[str, Any]:
        return {SLOT_KEYS[k]: v for k, v in params.items() if k in SLOT_KEYS}

    async def create_slot(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        params = await self.params(request)
        groups = params.get("slot_groups") or ([params["group"]] if params.get("group") else [])
        if not isinstance(groups, list) or len(groups) > 1:
            raise Invalid("slotGroups must name one group: a slot lives in one group", field="slotGroups")
        calendars = self.services.calendars
        calendar = await calendars.get(user, str(groups[0])) if groups else await calendars.default(user)
        try:
            fields = slot_fields(self.slot_item(params))
            fields.uid = str(params.get("uid") or uuid.uuid4())
            resource = await asyncio.to_thread(
                events.resource, fields, max_instances=self.services.config.max_instances
            )
        except ValueError as error:
            raise Invalid(str(error)) from None
        found, created, _ = await self.services.objects.put(user, calendar, resource, create_only=True)
        return json_response(await asyncio.to_thread(slot_json, found, calendar, user.email), 201 if created else 200)

    async def show_slot(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        found, calendar = await self.services.objects.get(user, _slot_id(request))
        return json_response(await asyncio.to_thread(slot_json, found, calendar, user.email))

    async def update_slot(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        found, calendar = await self.services.objects.get(user, _slot_id(request))
        changes = self.slot_item(await self.params(request))
        changed = set().union(*(CHANGES[k] for k in changes if k in CHANGES))

        def change(data: ICalendar) -> Component:
            current = events.view_of(data)
            item = {**slot(current), **changes}
            fields = slot_fields({k: v for k, v in item.items() if k in SLOT_KEYS.values()})
            fields.uid = current.uid
            return events.update(data, fields, changed)

        if_match = request.headers.get("If-Match", "").strip('"') or None
        updated = await self.services.objects.edit(user, calendar, found, change, if_etag=if_match)
        return json_response(await asyncio.to_thread(slot_json, updated, calendar, user.email))

    async def delete_slot(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        found, calendar = await self.services.objects.get(user, _slot_id(request))
        await self.services.objects.delete(user, calendar, found.href)
        return json_response(await asyncio.to_thread(slot_json, found, calendar, user.email))

    async def answer_slot(self, request: web.Request) -> web.Response:
        """The asking user answers an invitation: ``status`` accepted, tentative or declined
        (their copy changes, and the organizer learns it, as from any calendar program)."""
        user = await self.user(request)
        found, calendar = await self.services.objects.get(user, _slot_id(request))
        params = await self.params(request)
        status = str(params.get("status", "")).lower()
        answered = await self.services.objects.answer(user, calendar, found, ANSWERS.get(status, status))
        return json_response(await asyncio.to_thread(slot_json, answered, calendar, user.email))

    async def invitations(self, request: web.Request) -> web.Response:
        """The invitations the asking user has not answered yet, as slots."""
        user = await self.user(request)
        pending = await self.services.scheduling.pending(user)
        return json_response(await asyncio.to_thread(lambda: [slot_json(o, c, user.email) for o, c in pending]))

    # data API ----------------------------------------------------------------------------

    async def import_payload(self, request: web.Request) -> tuple[Upload | None, dict[str, Any], str | None]:
        """The file (multipart upload, spooled to disk; JSON string or array of lines, form
        field or raw body), the other parameters, and the file name when one was given."""
        params: dict[str, Any] = {snake(k): v for k, v in request.query.items()}
        if request.content_length is not None and request.content_length > 2 * self.limit + (1 << 16):
            raise TooLarge(f"the file is larger than the limit of {self.limit} bytes")
        kind = request.content_type
        if kind == "multipart/form-data":
            form = await read_form(request, self.limit, self.services.imports.spool)
            params.update({snake(k): v for k, v in form.fields.items()})
            return (Upload(path=form.path) if form.path else None), params, form.filename
        if kind == "application/json":
            members, path = await read_json_form(request, 2 * self.limit + (1 << 16), self.services.imports.spool)
            params.update({snake(k): v for k, v in members.items()})
            return (Upload(path=path) if path else None), params, None
        data: bytes | str | None
        if kind == "application/x-www-form-urlencoded":
            form_data = await read_post(request, 2 * self.limit + (1 << 16))
            params.update({snake(k): v for k, v in form_data.items()})
            data = next((str(form_data[n]) for n in FILE_FIELDS if n in form_data), None)
        else:
            data = await read_limited(request, self.limit)
        return (Upload.of(data) if data else None), params, None

    async def import_file(self, request: web.Request) -> web.Response:
        user = await self.user(request)
        upload, params, filename = await self.import_payload(request)
        try:
            return await self._import(request, user, upload, params, filename)
        finally:
            if upload is not None:
                upload.discard()

    async def _import(
        self, request: web.Request, user: User, upload: Upload | None, params: dict[str, Any], filename: str | None
    ) -> web.Response:
        calendar = None
        group = params.get("group")
        if group not in (None, ""):
            if not isinstance(group, str) or not is_uuid(group):
                raise Invalid("group must be the uuid of a group", field="group")
            calendar = await self.services.calendars.get(user, group)
        if upload is None or not upload.size:
            raise Invalid("param is missing or the value is empty: file", field="file")
        fmt = params.get("type")
        job, result = await self.services.imports.run(
            user,
            ImportRequest(door="rest", calendar=calendar, filename=filename,
                          format=None if fmt in (None, "", "autodetect") else fmt),
            upload,
        )  # fmt: skip
        if "application/json" not in request.headers.get("Accept", ""):
            return web.Response(status=200, content_type="application/json")  # the seed: an empty 200
        target = await self.services.imports.target_of(job)
        return json_response(
            {
                "import": job.id,
                "group": target.uuid if target else None,
                "format": result.format,
                "created": job.created,
                "updated": job.updated,
                "unchanged": job.unchanged,
                "discarded": result.discarded,
                "warnings": [w.as_dict() for w in result.warnings],
            }
        )

    async def export_file(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if kind not in EXPORTS:
            raise NotFound(f"unknown export format {kind!r}: use ical, google, outlook or timeslot")
        user = await self.user(request)
        params = await self.params(request)
        group = params.get("group")
        calendars = self.services.calendars
        if group not in (None, ""):
            chosen = [await calendars.get(user, str(group))]
        else:
            chosen = await calendars.of(user)
        fmt, extension, content_type = EXPORTS[kind]
        zone = str(params["timezone"]) if params.get("timezone") else None
        chunks = calendars.export(user, chosen, fmt, timezone=zone, flavor=str(params.get("flavor") or "outlook"))
        first = await anext(chunks)  # bad options fail here, before the reply starts
        tag = hashlib.md5(
            json.dumps([kind, sorted(params.items()), [(c.id, c.sync_revision) for c in chosen]]).encode(),
            usedforsecurity=False,
        ).hexdigest()
        response = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Content-Disposition": f'attachment; filename="Timeslot-Export.{extension}"',
                "Content-Transfer-Encoding": "binary",
                "Cache-Control": "private",
                "ETag": f'W/"{tag}"',
            }
        )
        response.enable_compression()
        await response.prepare(request)
        await response.write(first.encode())
        async for chunk in chunks:
            await response.write(chunk.encode())
        await response.write_eof()
        return response


def _slot_id(request: web.Request) -> int:
    found = object_id(request.match_info["id"])
    if found is None:
        raise NotFound("slot not found")
    return found


def create(services: Services) -> web.Application:
    """The /v1 sub-application."""
    door = RestDoor(services)
    app = web.Application(middlewares=[rest_errors], client_max_size=2 * services.config.max_upload_bytes + (1 << 16))
    app[SERVICES] = services
    add = app.router.add_route
    add("POST", "/users", door.signup)
    add("POST", "/users/signin", door.signin)
    add("GET", "/me", door.me)
    add("GET", "/me/signout", door.signout)
    add("GET", "/me/calendars", door.my_calendars)
    add("GET", "/me/slots", door.my_slots)
    add("POST", "/groups", door.create_group)
    add("GET", "/groups/{uuid}", door.show_group)
    add("PATCH", "/groups/{uuid}", door.update_group)
    add("DELETE", "/groups/{uuid}", door.delete_group)
    add("GET", "/groups/{uuid}/slots", door.group_slots)
    add("GET", "/groups/{uuid}/members", door.members)
    add("POST", "/groups/{uuid}/members", door.invite)
    add("PATCH", "/groups/{uuid}/members", door.member_settings)
    add("DELETE", "/groups/{uuid}/members", door.leave)
    add("DELETE", "/groups/{uuid}/members/{user_id}", door.kick)
    add("POST", "/groups/{uuid}/accept", door.answer)
    add("POST", "/groups/{uuid}/refuse", door.answer)
    add("POST", "/slots", door.create_slot)
    add("GET", "/slots/{id}", door.show_slot)
    add("PATCH", "/slots/{id}", door.update_slot)
    add("DELETE", "/slots/{id}", door.delete_slot)
    add("POST", "/slots/{id}/answer", door.answer_slot)
    add("GET", "/me/invitations", door.invitations)
    add("POST", "/import", door.import_file)
    add("POST", "/import/", door.import_file)
    add("POST", "/export/{kind}", door.export_file)
    add("GET", "/export/{kind}", door.export_file)
    rest_imports.add_routes(app, services, door.user)
    return app


def create_seed(services: Services) -> web.Application:
    """The seed's own ``//v1/import/`` (its curl doubles the slash): the import, as at /v1."""
    door = RestDoor(services)
    app = web.Application(middlewares=[rest_errors], client_max_size=2 * services.config.max_upload_bytes + (1 << 16))
    app[SERVICES] = services
    app.router.add_route("POST", "/import/", door.import_file)
    return app
