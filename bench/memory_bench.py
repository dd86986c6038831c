"""Memory of a big queued import and its undo: the peak RSS of each server process (``run.py
serve --workers 2``) while a 100 MiB file is uploaded to ``/v1/imports`` and run, while a second
100 MiB file replaces every one of its events, and while that second import is undone (which
puts every replaced text back).

    .venv/bin/python bench/memory_bench.py [--events 25000] [--notes 3700] [--postgres URL]

Each phase starts by resetting the processes' peak (``/proc/PID/clear_refs``), so a figure is
that phase's own: the peak RSS (VmHWM: it counts the pages of files a process maps, such as an
upload's body read through a memory map, which the kernel may drop at any time) and, sampled
every 20 ms, the peak of the memory the process itself holds (RssAnon). Run by hand (not in
CI); it starts its own server on 127.0.0.1 with a temporary data folder (or a schema of its own
in the PostgreSQL database given, dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import ics  # noqa: E402
from bench.import_bench import free_port, postgres_store  # noqa: E402
from bench.jobs_bench import multipart  # noqa: E402


class Workers:
    """``run.py serve --workers 2`` in a subprocess: the supervisor and its two servers."""

    def __init__(self, data: Path, store: str | None) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "run.py", "serve", "--workers", "2", "--port", self.base.rsplit(":", 1)[1]]
        command += ["--data", str(data), *(["--store", store] if store else [])]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={"ALMANAC_SERVER_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(self.servers()) < 2 or not self._answers():
            if time.monotonic() > deadline:
                raise RuntimeError("the servers did not start")
            time.sleep(0.2)
        time.sleep(3)  # the start-up helpers (time zones) finish

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.base + "/", timeout=1).close()
            return True
        except OSError:
            return False

    @staticmethod
    def _children(pid: int) -> list[int]:
        path = Path(f"/proc/{pid}/task/{pid}/children")
        return [int(child) for child in path.read_text().split()] if path.exists() else []

    def servers(self) -> list[int]:
        return [
            pid for pid in self._children(self.process.pid) if b"--worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]

    @staticmethod
    def _status(pid: int, field: str) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def reset_peaks(self) -> None:
        for pid in [self.process.pid, *self.servers()]:
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def peaks(self) -> list[float]:
        """Peak RSS (MiB) since the last reset: the supervisor, then each server."""
        return [self._status(pid, "VmHWM") for pid in [self.process.pid, *self.servers()]]

    def held(self) -> list[float]:
        """The memory each process holds now (RssAnon, MiB)."""
        return [self._status(pid, "RssAnon") for pid in [self.process.pid, *self.servers()]]

    def sampling(self) -> tuple[threading.Event, list[float]]:
        """Sample each process's RssAnon every 20 ms until the event is set: the peaks (MiB)."""
        done = threading.Event()
        peaks = [0.0] * (1 + len(self.servers()))

        def sample() -> None:
            while not done.wait(0.02):
                peaks[:] = map(max, peaks, self.held())

        threading.Thread(target=sample, daemon=True).start()
        return done, peaks

    def call(self, method: str, path: str, auth: str, body: bytes = b"", kind: str = "") -> dict:
        headers = {"Authorization": f"Token token={auth}", "Accept": "application/json"}
        if kind:
            headers["Content-Type"] = kind
        request = urllib.request.Request(self.base + path, data=body or None, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=900) as response:
            return json.loads(response.read() or b"{}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def signup(server: Workers) -> str:
    body = json.dumps({"username": "bench", "password": "benchmark-password", "email": "bench@example.org"})
    request = urllib.request.Request(
        server.base + "/v1/users", body.encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(json.loads(response.read())["authToken"])


def wait(server: Workers, auth: str, job_id: int, until: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        state = server.call("GET", f"/v1/imports/{job_id}", auth)
        if state["status"] in until:
            return state
        time.sleep(0.5)
    raise RuntimeError(f"import {job_id} did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=25_000)
    parser.add_argument("--notes", type=int, default=3_700, help="characters of COMMENT per event")
    parser.add_argument("--postgres", help="a PostgreSQL server's URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    rows: list[tuple[str, float | None, list[float], list[float]]] = []
    with tempfile.TemporaryDirectory() as folder, postgres_store(args.postgres) as store:
        server = Workers(Path(folder) / "data", store)
        try:
            auth = signup(server)
            rows.append(("idle, after start", None, server.peaks(), server.held()))
            for phase, seed in ((f"import of {args.events:,} new events", 1), ("import replacing every event", 2)):
                body, kind = multipart(ics(args.events, seed=seed, prefix="memory", notes=args.notes))
                server.reset_peaks()
                done, held = server.sampling()
                started = time.perf_counter()
                job = server.call("POST", "/v1/imports", auth, body, kind)
                del body
                state = wait(server, auth, job["id"], ("complete", "failed"))
                assert state["status"] == "complete", state
                done.set()
                rows.append((phase, time.perf_counter() - started, server.peaks(), held))
                size = len(multipart(ics(10, seed=seed, prefix="memory", notes=args.notes))[0])  # per-event size
            server.reset_peaks()
            done, held = server.sampling()
            started = time.perf_counter()
            server.call("DELETE", f"/v1/imports/{job['id']}", auth)
            state = wait(server, auth, job["id"], ("undone",))
            done.set()
            rows.append(("undo of the replacing import", time.perf_counter() - started, server.peaks(), held))
        finally:
            server.stop()
    store_name = "PostgreSQL" if args.postgres else "SQLite"
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.node()}; store: {store_name}")
    print(
        f"files: {args.events:,} events of about {size // 10:,} bytes ({args.events * size / 10 / 2**20:.0f} MiB each)"
    )
    print("peak RSS (VmHWM) / peak memory held (RssAnon, sampled) of each process")
    print("| phase | wall time | supervisor | server 1 | server 2 |")
    print("|---|---|---|---|---|")
    for phase, elapsed, peaks, held in rows:
        wall = f"{elapsed:.1f} s" if elapsed is not None else ""
        figures = [f"{peak:.0f} / {kept:.0f} MiB" for peak, kept in zip(peaks, held, strict=True)]
        print(f"| {phase} | {wall} | " + " | ".join(figures) + " |")


if __name__ == "__main__":
    main()
