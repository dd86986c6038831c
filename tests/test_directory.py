"""Accounts from an LDAP directory (issue 30), against a real OpenLDAP server (Debian's slapd, see
tests/conftest.py): a directory user signs in at every door on their first day (python-caldav,
WCAP, the web pages, REST), is found by principal search and shared with before that; a password
changed in the directory counts at once; a removed user, or one taken out of the group, is
refused; local users keep working beside them; a directory that does not answer is 503."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import caldav
import ldap3
import pytest
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config import Config, Ldap
from server.http import SERVICES
from server.services.errors import Invalid
from tests.helpers import LDAP_ADMIN, LDAP_SECRET, LDAP_SUFFIX, free_port


class People:
    """A branch of the test directory of its own: users under ou=people, a group of who may sign in."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.branch = f"ou=t{uuid.uuid4().hex[:8]},{LDAP_SUFFIX}"
        self.group = f"cn=calendar-users,{self.branch}"
        self.admin = ldap3.Connection(ldap3.Server(url), LDAP_ADMIN, LDAP_SECRET, auto_bind=True)
        self.admin.add(self.branch, ["organizationalUnit"], {"ou": self.branch.split(",")[0][3:]})
        self.admin.add(f"ou=people,{self.branch}", ["organizationalUnit"], {"ou": "people"})

    def dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{self.branch}"

    def add(self, uid: str, name: str, password: str = "directory horse", *, member: bool = True) -> None:
        surname = name.rsplit(maxsplit=1)[-1]
        attributes = {"cn": name, "sn": surname, "mail": f"{uid}@corp.example", "userPassword": password}
        assert self.admin.add(self.dn(uid), ["inetOrgPerson"], attributes), self.admin.result
        if member and not self.admin.search(self.group, "(objectClass=*)", ldap3.BASE):
            assert self.admin.add(self.group, ["groupOfNames"], {"cn": "calendar-users", "member": self.dn(uid)})
        elif member:
            self.admin.modify(self.group, {"member": [(ldap3.MODIFY_ADD, [self.dn(uid)])]})

    def password(self, uid: str, password: str) -> None:
        assert self.admin.modify(self.dn(uid), {"userPassword": [(ldap3.MODIFY_REPLACE, [password])]})

    def rename(self, uid: str, name: str, mail: str) -> None:
        changes = {"cn": [(ldap3.MODIFY_REPLACE, [name])], "mail": [(ldap3.MODIFY_REPLACE, [mail])]}
        assert self.admin.modify(self.dn(uid), changes)

    def leave_group(self, uid: str) -> None:
        assert self.admin.modify(self.group, {"member": [(ldap3.MODIFY_DELETE, [self.dn(uid)])]})

    def remove(self, uid: str) -> None:
        assert self.admin.delete(self.dn(uid)), self.admin.result

    def settings(self, **changes: Any) -> Ldap:
        return Ldap(**{
            "url": self.url, "bind_dn": LDAP_ADMIN, "bind_password": LDAP_SECRET, "base": self.branch,
            "filter": "(&(objectClass=inetOrgPerson)(|(uid={login})(mail={login})))", "username_attribute": "uid",
            "email_attribute": "mail", "name_attribute": "cn", "group": self.group, "group_attribute": "member",
            "timeout": 3, "pool_size": 2, **changes,
        })  # fmt: skip


@pytest.fixture
def people(slapd: str) -> Iterator[People]:
    made = People(slapd)
    made.add("ada", "Ada Lovelace")
    made.add("grace", "Grace Hopper")
    made.add("eve", "Eve Outsider", member=False)
    yield made
    made.admin.unbind()


@pytest.fixture
async def directory_server(aiohttp_server: Any, config: Config, people: People) -> AsyncIterator[TestServer]:
    yield await aiohttp_server(create_app(replace(config, ldap=people.settings())))


def authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def rest(server: TestServer, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, server.make_url(path), **kwargs) as response:
        return response.status, await response.text()


async def caldav_status(server: TestServer, user: str, password: str) -> int:
    headers = {"Authorization": authorization(user, password), "Depth": "0"}
    status, _ = await rest(server, "PROPFIND", "/dav/", headers=headers)
    return status


def caldav_principal(server: TestServer, user: str, password: str) -> tuple[str, list[str]]:
    """python-caldav as a calendar program uses it: the principal and its calendars."""
    with caldav.DAVClient(url=str(server.make_url("/dav/")), username=user, password=password) as client:
        principal = client.principal()
        return str(principal.url), [c.get_display_name() for c in principal.calendars()]


async def test_a_directory_user_signs_in_at_every_door_on_their_first_day(directory_server: TestServer) -> None:
    server = directory_server
    url, calendars = await asyncio.to_thread(caldav_principal, server, "ada", "directory horse")
    assert url.endswith("/dav/principals/ada/") and calendars == ["Calendar"]
    user = await server.app[SERVICES].users.get_by_name("ada")
    assert (user.source, user.email, user.display_name) == ("ldap", "ada@corp.example", "Ada Lovelace")
    status, login = await rest(server, "GET", "/login.wcap", params={"user": "ada", "password": "directory horse"})
    assert "X-NSCP-WCAP-ERRNO:0" in login.replace(" ", "")
    auth = {"Authorization": authorization("ada", "directory horse")}
    status, calprops = await rest(server, "GET", "/get_calprops.wcap", params={"httpauth": "1", "calid": "ada"},
                                  headers=auth)  # fmt: skip
    assert status == 200 and "X-NSCP-WCAP-ERRNO:0" in calprops.replace(" ", ""), calprops
    async with aiohttp.ClientSession() as http:  # the web pages, by e-mail this time
        signed = await http.post(server.make_url("/app/signin"),
                                 data={"username": "ada@corp.example", "password": "directory horse"})  # fmt: skip
        assert signed.status == 200 and str(signed.url).endswith("/app/")
    status, body = await rest(server, "POST", "/v1/users/signin", json={"email": "ada", "password": "directory horse"})
    assert status == 200 and "authToken" in body
    assert len([u for u in await server.app[SERVICES].users.all() if u.username == "ada"]) == 1  # made once
    with pytest.raises(Invalid, match="directory"):  # the account page cannot set a password here
        await server.app[SERVICES].users.change_password(user, "directory horse", "another horse")
    # not in the group, a wrong password, nobody: refused (and nobody is made)
    assert await caldav_status(server, "eve", "directory horse") == 401
    assert await caldav_status(server, "ada", "wrong horse") == 401
    assert await caldav_status(server, "ada", "") == 401
    assert await caldav_status(server, "nobody", "directory horse") == 401
    assert await server.app[SERVICES].users.get_by_name("eve") is None


async def test_found_and_shared_with_before_their_first_sign_in(directory_server: TestServer) -> None:
    server = directory_server
    await asyncio.to_thread(caldav_principal, server, "ada", "directory horse")
    search = (
        '<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:displayname/></D:prop>'
        "<D:match>hopper</D:match></D:property-search><D:prop><D:displayname/></D:prop>"
        "</D:principal-property-search>"
    )
    headers = {"Authorization": authorization("ada", "directory horse"), "Depth": "0"}
    status, found = await rest(server, "REPORT", "/dav/principals/", data=search, headers=headers)
    assert status == 207 and "/dav/principals/grace/" in found and "Grace Hopper" in found
    assert "eve" not in found
    # ada shares with grace, who has never signed in, on the sharing page
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await http.post(server.make_url("/app/signin"), data={"username": "ada", "password": "directory horse"})
        page = await (await http.get(server.make_url("/app/"))).text()
        uuid_ = re.search(r"/app/calendars/([0-9a-f-]{36})/sharing", page).group(1)  # type: ignore[union-attr]
        sharing = await (await http.get(server.make_url(f"/app/calendars/{uuid_}/sharing"))).text()
        csrf = re.search(r'data-csrf="([0-9a-f]+)"', sharing).group(1)  # type: ignore[union-attr]
        shared = await http.post(server.make_url(f"/app/calendars/{uuid_}/share"), allow_redirects=False,
                                 data={"csrf": csrf, "user": "grace", "level": "read"})  # fmt: skip
        assert shared.status == 303, await shared.text()
        refused = await http.post(server.make_url(f"/app/calendars/{uuid_}/share"),
                                  data={"csrf": csrf, "user": "eve", "level": "read"})  # fmt: skip
        assert "There is no user eve." in await refused.text()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await http.post(server.make_url("/app/signin"), data={"username": "grace", "password": "directory horse"})
        assert "from ada" in await (await http.get(server.make_url("/app/"))).text()  # the invitation waits


async def test_the_directory_decides_at_once(directory_server: TestServer, people: People) -> None:
    server = directory_server
    assert await caldav_status(server, "ada", "directory horse") == 207
    people.rename("ada", "Ada King", "ada.king@corp.example")  # kept in step at the next sign-in
    assert await caldav_status(server, "ada", "directory horse") == 207
    user = await server.app[SERVICES].users.get_by_name("ada")
    assert user is not None and (user.email, user.display_name) == ("ada.king@corp.example", "Ada King")
    people.password("ada", "a new directory horse")
    assert await caldav_status(server, "ada", "directory horse") == 401
    assert await caldav_status(server, "ada", "a new directory horse") == 207
    people.leave_group("ada")
    assert await caldav_status(server, "ada", "a new directory horse") == 401
    people.remove("grace")
    assert await caldav_status(server, "grace", "directory horse") == 401
    # an operator's own account keeps working beside the directory
    await server.app[SERVICES].users.create("operator", "local horse!")
    assert await caldav_status(server, "operator", "local horse!") == 207
    # a directory user cannot take over a local account of the same name
    people.add("operator", "Not The Operator", "directory horse")
    assert await caldav_status(server, "operator", "directory horse") == 401


async def test_a_directory_that_does_not_answer_is_503_not_a_lock_out(
    aiohttp_server: Any, config: Config, people: People
) -> None:
    nowhere = people.settings(url=f"ldap://127.0.0.1:{free_port()}", timeout=1)
    silent = await aiohttp_server(create_app(replace(config, ldap=nowhere)))
    for _ in range(12):  # more than the throttle's failures: none of them counts as one
        status, _ = await rest(silent, "PROPFIND", "/dav/", headers={
            "Authorization": authorization("ada", "directory horse"), "Depth": "0"})  # fmt: skip
        assert status == 503
    async with aiohttp.ClientSession() as http:
        reply = await http.post(silent.make_url("/app/signin"), data={"username": "ada", "password": "x"})
        assert reply.status == 503 and reply.headers["Retry-After"]
        login = await (await http.get(silent.make_url("/login.wcap"), params={"user": "ada", "password": "x"})).text()
        assert "X-NSCP-WCAP-ERRNO:0" not in login.replace(" ", "")
    answering = await aiohttp_server(create_app(replace(config, ldap=people.settings())))
    assert await caldav_status(answering, "ada", "directory horse") == 207  # not locked out
