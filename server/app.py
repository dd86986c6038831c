"""create_app(config): the aiohttp application with every door on one store."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from server import imip, urls, wcap
from server.caldav import door as caldav
from server.config import Config
from server.http import (
    IDLE_TIMEOUT,
    REQUEST_ID,
    REQUEST_STARTED,
    REQUEST_USER,
    SERVICES,
    client_address,
    new_request_id,
)
from server.metrics import door, metrics
from server.rest import door as rest
from server.services import Services, build
from server.services.errors import TooLarge
from server.wcap import page as wcap_page
from server.web import pages as web_pages
from storage.errors import StoreFull, StoreUnavailable

log = logging.getLogger("almanac.access")
#: seconds a client is told to wait when the server is not ready
RETRY_AFTER = 5


class OneLineForBadRequests(logging.Filter):
    """aiohttp logs every malformed request (a header too long, a broken request line) at
    ERROR with a traceback: anyone could flood the log. It becomes one line at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args = "%s: %s", (record.getMessage(), error.message or type(error).__name__)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


#: paths whose last part is a credential, which the log never shows
SECRET_PATHS = re.compile(r"^(/feeds/|/app/rsvp/)[^/]+?(?=\.ics$|$)")


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path, status, milliseconds, user."""
    request[REQUEST_STARTED] = time.perf_counter()
    request[REQUEST_ID] = new_request_id()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    except StoreFull as error:  # the doors that have no word of their own for it (the web pages)
        status = 507
        return web.Response(status=507, text=f"{error}: nothing was written, try again later\n")
    except StoreUnavailable as error:
        status = 503
        return web.Response(
            status=503, text=f"the store cannot answer now ({error}); try again\n",
            headers={"Retry-After": str(error.retry_after)},
        )  # fmt: skip
    except TooLarge as error:
        status = 413
        return web.Response(status=413, text=f"{error.message}\n")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal server error"}, status=500)
    finally:
        elapsed = (time.perf_counter() - request[REQUEST_STARTED]) * 1000
        metrics().answered(door(request.path), request.method, status, elapsed / 1000)
        if log.isEnabledFor(logging.INFO):  # nothing to gather for a line that is not written
            # a feed's or RSVP link's token is its credential; a query (WCAP's session ids) is never logged
            fields = {
                "method": request.method, "path": SECRET_PATHS.sub(r"\1<secret>", request.path), "status": status,
                "ms": round(elapsed, 1), "user": request.get(REQUEST_USER, "-"), "client": client_address(request),
                "request_id": request[REQUEST_ID], "agent": request.headers.get("User-Agent", "-")[:200],
            }  # fmt: skip
            log.info("%(method)s %(path)s %(status)d %(ms).1fms user=%(user)s client=%(client)s "
                     "id=%(request_id)s agent=%(agent)r", fields, extra={"fields": fields})  # fmt: skip


async def common_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every reply carries, streamed ones included."""
    response.headers.update(SECURITY_HEADERS)
    response.headers["Server"] = "Almanac"  # not aiohttp's name and version
    response.headers["X-Request-Id"] = request.get(REQUEST_ID) or new_request_id()
    if REQUEST_STARTED in request:
        response.headers["X-Runtime"] = f"{time.perf_counter() - request[REQUEST_STARTED]:.6f}"
    response.headers.setdefault("Cache-Control", "no-cache")


async def index(request: web.Request) -> web.Response:
    if "text/html" in request.headers.get("Accept", ""):
        raise web.HTTPFound(f"{urls.WEB}/")  # a browser: the web pages
    doors = {"rest": f"{urls.REST}/", "wcap": f"{urls.WCAP}/", "caldav": urls.ROOT, "web": f"{urls.WEB}/"}
    return web.json_response({"name": "Almanac", "doors": doors})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers (what a load balancer or orchestrator restarts on)."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers and its schema is this server's; 503 with why, otherwise."""
    problem = await request.app[SERVICES].readiness()
    if problem:
        return web.Response(status=503, text=f"{problem}\n", headers={"Retry-After": str(RETRY_AFTER)})
    return web.Response(text="ready\n")


def create_app(config: Config, services: Services | None = None) -> web.Application:
    services = services or build(config)
    app = web.Application(middlewares=[request_log])
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineForBadRequests) for f in server_log.filters):
        server_log.addFilter(OneLineForBadRequests())
    app[SERVICES] = services
    app[IDLE_TIMEOUT] = config.idle_timeout

    receivers: list[asyncio.AbstractServer] = []

    async def open_store(_: web.Application) -> None:
        # Parsing and rendering run in threads: let the event loop take the GIL back every
        # millisecond (not every 5), so that other requests keep answering meanwhile.
        sys.setswitchinterval(0.001)
        await services.store.open()
        await services.imports.start()
        await services.mail.start()
        started = await imip.start(services)  # the iMIP receiver (worker 0, with [smtp] receiver)
        if started is not None:
            receivers.append(started)
        # What is alive once started (modules, caches) lives as long as the process: keep it out
        # of the collector's full passes, which otherwise pause every thread for the whole heap.
        gc.freeze()

    async def close_store(_: web.Application) -> None:
        await services.imports.stop()
        await services.mail.stop()
        for receiver in receivers:
            receiver.close()
            await receiver.wait_closed()
        await services.store.close()
        services.users.passwords.close()
        if services.users.directory is not None:
            services.users.directory.close()

    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)
    app.on_response_prepare.append(common_headers)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.add_subapp(urls.REST, rest.create(services))
    app.add_subapp(urls.SEED_REST, rest.create_seed(services))
    wcap_page.add_routes(app)
    wcap.add_routes(app, services)
    caldav.add_routes(app, services)
    web_pages.add_routes(app, services)
    return app
