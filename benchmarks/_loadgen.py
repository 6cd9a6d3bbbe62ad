"""A lean HTTP/1.1 load generator for `strideflow bench api`, run in its own process.

`concurrency` keep-alive connections (asyncio protocols on uvloop where installed), each sending
one GET at a time from a list of request heads built before the clock starts, and reading the
answer by its Content-Length. Per request it costs tens of microseconds of CPU, against 2-4 ms
for an httpx client: on a machine where client and server share the cores, what is measured is
then the server. The latency of a request is from its first byte written to its last byte read.

A response counts as an error unless its status is 200 and its body is a non-empty list page
(`{"items":[{...`); every `PARSE_EVERY`-th body is also parsed as JSON (a cheap sample that the
bodies are whole).

Run as `python -m strideflow.benchmarks._loadgen` with a JSON job on stdin (see `run`); the
answer is JSON on stdout. Only the standard library (and uvloop, if present) is imported, so the
process starts in well under a second.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import sys
import time
from urllib.parse import urlencode

PARSE_EVERY = 50
PAGE_START = b'{"items":[{'
MAX_ERRORS_KEPT = 5


def request_head(host: str, port: int, key: str, path: str, params: dict) -> bytes:
    """The bytes of one GET with a bearer key (no body)."""
    target = f"{path}?{urlencode(params)}" if params else path
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.body_start = -1
        self.body_end = -1
        self.status = 0
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.body_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self._fail(ConnectionError(f"answer without content-length: {head[:200]!r}"))
                return
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : line_end if line_end >= 0 else None])
            self.body_start = end + 4
            self.body_end = self.body_start + length
        if len(self.buffer) >= self.body_end and self.waiter is not None and not self.waiter.done():
            body = bytes(self.buffer[self.body_start : self.body_end])
            del self.buffer[: self.body_end]
            self.body_start = self.body_end = -1
            self.waiter.set_result((self.status, body))

    def connection_lost(self, exc) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def get(self, head: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head)
        return await self.waiter


def _check(status: int, body: bytes, n: int) -> str | None:
    """Why an answer is not a good list page, or None."""
    if status != 200 or not body.startswith(PAGE_START):
        return f"{status} {body[:160].decode(errors='replace')}"
    if n % PARSE_EVERY == 0:
        try:
            if not json.loads(body)["items"]:
                return "empty page"
        except (ValueError, KeyError, TypeError) as exc:
            return f"not a JSON page: {exc}"
    return None


async def _phase(
    host: str,
    port: int,
    heads: list[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    pid,
    database_match: str | None = None,
):
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(_Connection, host, port)
        conns.append(proto)
    latencies: list[float] = []
    errors: list[str] = []
    n_errors = 0
    counter = itertools.count()

    async def worker(conn: _Connection, start: int, t_end: float, record: bool) -> None:
        nonlocal n_errors
        i = start
        clock = time.perf_counter
        while clock() < t_end:
            head = heads[i % len(heads)]
            i += concurrency
            t0 = clock()
            status, body = await conn.get(head)
            t1 = clock()
            if not record:
                continue
            latencies.append(t1 - t0)
            problem = _check(status, body, next(counter))
            if problem is not None:
                n_errors += 1
                if len(errors) < MAX_ERRORS_KEPT:
                    errors.append(f"{head.split(b' ', 2)[1].decode()}: {problem}")

    if warmup_s > 0:
        t_end = time.perf_counter() + warmup_s
        await asyncio.gather(*(worker(c, k, t_end, False) for k, c in enumerate(conns)))
    server0 = _server_cpu_s(pid)
    db_pids = _pids_matching(database_match)
    db0 = _cpu_by_pid(db_pids)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    t_end = t0 + duration_s
    await asyncio.gather(*(worker(c, k, t_end, True) for k, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    server1 = _server_cpu_s(pid)
    db1 = _cpu_by_pid(db_pids)
    database = sum(db1[p] - db0[p] for p in db1 if p in db0) if database_match else None
    for c in conns:
        c.transport.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    server = None if server0 is None else server1 - server0
    return latencies, wall, cpu, server, database, n_errors, errors


def _server_cpu_s(pids: list[int] | None) -> float | None:
    """User + system CPU seconds of the processes `pids` together (Linux /proc), None without."""
    if not pids:
        return None
    import os

    ticks = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _pids_matching(text: str | None) -> list[int]:
    """Processes whose command line holds `text` (e.g. the PostgreSQL backends of one database,
    `postgres: user dbname ...`), found after the warm-up, when the server's pool is open."""
    if not text:
        return []
    import os

    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(name))
            except OSError:
                continue
    return found


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each of `pids` still running."""
    out = {}
    for pid in pids:
        try:
            out[pid] = _server_cpu_s([pid])
        except OSError:
            continue
    return out


def run(job: dict) -> dict:
    """Run the phases of `job` one after another.

    job = {"host", "port", "server_pids" (optional: the server processes, whose CPU time is read
    around each phase; or "server_pid", one), "database_match" (optional: text in the command
    line of the database server's processes of this run, whose CPU time is read likewise),
    "phases": [{"name", "heads": [str (latin-1 request bytes)], "concurrency", "duration_s",
    "warmup_s"}]}. Answer: {"phases": {name: {"latencies_s": [...], "wall_s", "client_cpu_s",
    "server_cpu_s" (None without server pids), "database_cpu_s" (None without database_match),
    "errors", "error_examples"}}}.
    """
    try:
        import uvloop

        new_loop = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        new_loop = asyncio.new_event_loop
    pid = job.get("server_pids") or ([job["server_pid"]] if job.get("server_pid") is not None else None)
    out = {}
    for phase in job["phases"]:
        heads = [h.encode("latin-1") for h in phase["heads"]]
        loop = new_loop()
        try:
            lat, wall, cpu, server, database, n_err, examples = loop.run_until_complete(
                _phase(
                    job["host"],
                    int(job["port"]),
                    heads,
                    int(phase["concurrency"]),
                    float(phase["duration_s"]),
                    float(phase.get("warmup_s", 0.0)),
                    pid,
                    job.get("database_match"),
                )
            )
        finally:
            loop.close()
        out[phase["name"]] = {
            "latencies_s": lat,
            "wall_s": wall,
            "client_cpu_s": cpu,
            "server_cpu_s": server,
            "database_cpu_s": database,
            "errors": n_err,
            "error_examples": examples,
        }
    return {"phases": out}


def main() -> None:
    json.dump(run(json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    main()
