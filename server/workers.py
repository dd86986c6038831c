"""``serve --workers N``: N server processes on one port, and the process that watches them.

Each worker is a whole server (``run.py serve --worker K``) listening on the same port with
``SO_REUSEPORT``, so the kernel spreads connections over them; everything they share lives in
the store (sessions, tokens, sync revisions, the import queue and its leases, sign-in
throttling). The supervisor applies the migrations once, starts the workers, relays what they
print, starts again a worker that dies (ending and reaping what the dead one left: see
server.lineage), and on SIGTERM/SIGINT stops them all gracefully (each finishes its requests in
flight and queues its running import again) before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from server.config import ROOT, Config
from server.lineage import become_subreaper, end_group
from server.metrics import gone, share
from server.services import build
from storage import safe_url

log = logging.getLogger("almanac.workers")

#: how long a server lets its requests in flight finish after SIGTERM
DRAIN = 60.0
#: a worker that dies sooner than this after its start is not started again at once
RESTART_PAUSE = 1.0


class CannotListen(Exception):
    """The server cannot listen where it is told to."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(
            f"cannot listen on {host}:{port} ({error.strerror or error}): choose another "
            "[server] port or host (ALMANAC_SERVER_PORT, --port, --host), or stop what holds it"
        )


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to the port the workers share, with ``SO_REUSEPORT``:
    it fixes the port when 0 (any free one) was asked for, and takes no connections itself."""
    holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((host, port))
    except OSError as error:
        holder.close()
        raise CannotListen(host, port, error) from None
    return holder


async def migrate(config: Config) -> None:
    """Open the store once before the workers do: its migrations run in one process."""
    services = build(config)
    await services.store.open()
    await services.store.close()


async def supervise(config: Config, count: int, worker_args: Sequence[str]) -> int:
    """Run ``count`` workers on the configured port until SIGTERM/SIGINT; then drain them."""
    await migrate(config)
    if config.metrics_listen:  # the workers' figures meet in files there, an earlier run's gone
        share(config.data_dir / "metrics", fresh=True)
    become_subreaper()  # a dead worker's orphaned helpers come here to be reaped
    holder = reserve_port(config.host, config.port)
    port = holder.getsockname()[1]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    ready = [asyncio.Event() for _ in range(count)]
    processes: dict[int, asyncio.subprocess.Process] = {}

    async def relay(index: int, process: asyncio.subprocess.Process, again: bool) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            text = line.decode(errors="replace")
            if text.startswith("Almanac listening on"):
                ready[index].set()
                if again:
                    log.warning("worker %d is serving again (pid %d)", index, process.pid)
                continue
            sys.stdout.write(text)
            sys.stdout.flush()

    cleanups: list[asyncio.Task[None]] = []

    async def bury(process: asyncio.subprocess.Process, relaying: asyncio.Task[None]) -> None:
        """End and reap what a worker that ended left (its helpers), then stop relaying its output."""
        await asyncio.to_thread(end_group, process.pid)
        await asyncio.wait([relaying], timeout=1.0)  # what it printed last, then no more
        relaying.cancel()

    async def keep(index: int) -> None:
        """Run worker ``index``, again at once whenever it dies, until the supervisor stops. The
        worker is watched, not its output: its helpers may hold that open after it died, and
        they are ended with it (each worker leads a process group of its own)."""
        again = False
        while not stopping.is_set():
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "run.py"), "serve", *worker_args,
                "--port", str(port), "--workers", "1", "--worker", str(index),
                stdout=asyncio.subprocess.PIPE, cwd=ROOT, process_group=0,
            )  # fmt: skip
            processes[index] = process
            started = loop.time()
            relaying = asyncio.create_task(relay(index, process, again))
            code = await process.wait()
            gone(process.pid)
            cleanups[:] = [*(c for c in cleanups if not c.done()), asyncio.create_task(bury(process, relaying))]
            if stopping.is_set():
                break
            how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
            log.error("worker %d (pid %d) %s: starting it again", index, process.pid, how)
            again = True
            await asyncio.sleep(max(0.0, RESTART_PAUSE - (loop.time() - started)))

    keepers = [asyncio.create_task(keep(index)) for index in range(count)]
    waiting: asyncio.Task[None] | None = None
    try:

        async def all_ready() -> None:
            for event in ready:
                await event.wait()

        async def stopped() -> None:
            await stopping.wait()

        waiting = asyncio.create_task(all_ready())
        await asyncio.wait([waiting, asyncio.create_task(stopped())], return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            log.info("supervisor (pid %d) started %d workers on %s:%d", os.getpid(), count, config.host, port)
            print(
                f"Almanac listening on http://{config.host}:{port}/ with {count} workers "
                f"(store: {safe_url(config.store_url)})",
                flush=True,
            )
        await stopping.wait()
    finally:
        if waiting is not None:
            waiting.cancel()
        stopping.set()
        for process in processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*keepers, return_exceptions=True), DRAIN + 15)
        except TimeoutError:
            for process in processes.values():
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*keepers, return_exceptions=True)
        await asyncio.gather(*cleanups, return_exceptions=True)
        holder.close()
        log.info("supervisor stopped: its workers are drained")
    return 0
