"""Live analysis of stored packets, batched across streams, and its failures.

Streams whose packets were stored while an analysis ran wait for the next tick; a tick takes every
waiting stream's packets and analyses them on the analysis thread (so fsyncs in the default pool
never wait behind it) in rounds: round r pushes the r-th packet of each stream
(`LiveStrideAnalyzer.begin_push`), then runs the metric queries of all the strides and stance rows
those packets completed as one Polars query (`analytics.live_analyzer.resolve_together`): on the
few rows of one stride the query's fixed cost was most of the analysis, so with many streams due
at once it is paid once per round instead of once per row. The rows are those each stream's own
analysis gives (each query row depends on that row only). Packets of one stream are analysed in
the order they were stored. An analyzer without `begin_push` (a test's) is pushed as it is.

The first exception the analysis raises on a stream is logged with its traceback and sent to the
client once as `{"analysis_error": message, "seq": n}`; the packets stay stored, later failures
are counted (`LiveStream.analysis_failures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from strideflow.analytics.live_analyzer import LiveOutput, resolve_together
from strideflow.ingest.stream_receiver import packet_block
from strideflow.service.live.registry import LiveStream, Send
from strideflow.service.live.workers import RemoteAnalyzer

log = logging.getLogger("strideflow.service")

# (stream, rows, received_at, closing sequence number, closed_by, kind "stance" or "stride")
Emit = Callable[[LiveStream, pl.DataFrame, float, int | None, str, str], None]


@dataclass
class _Job:
    """One stream's stored packets ((packet, received_at), ...) waiting for a tick."""

    stream: LiveStream
    packets: list
    send: Send | None
    done: asyncio.Future
    outputs: list[tuple[int, LiveOutput]] = field(default_factory=list)  # (packet number, output)
    errors: list[tuple[int, Exception]] = field(default_factory=list)


class LiveAnalysis:
    """Runs the streams' analyzers on the packets they stored, in ticks, and hands the rows to `emit`.

    One tick runs at a time, on one thread: the analysis is Python and NumPy under one interpreter
    lock, and a single tick batches the most streams.
    """

    def __init__(self, emit: Emit):
        self.emit = emit
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-analysis")
        self._waiting: list[_Job] = []
        self._runner: asyncio.Future | None = None
        self.ticks_ = 0  # ticks run (a tick with n streams saves n - 1 queries per round)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False)

    async def analyse(self, stream: LiveStream, packets: list, send: Send | None = None) -> None:
        """Push stored packets ((packet, received_at), ...) through the stream's analyzer at the
        next tick (or in its worker process); returns once their rows are emitted."""
        async with stream.analysis_lock:  # FIFO: packets are analysed in the order they were stored
            if isinstance(stream.analyzer, RemoteAnalyzer):
                await self._remote(stream, list(packets), send)
                return
            job = _Job(stream, list(packets), send, asyncio.get_running_loop().create_future())
            self._waiting.append(job)
            if self._runner is None or self._runner.done():
                self._runner = asyncio.ensure_future(self._run())
            await asyncio.shield(job.done)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            # one job per stream and tick (a stream's analyzer takes one packet per round)
            jobs, later, seen = [], [], set()
            for job in self._waiting:
                (later if id(job.stream) in seen else jobs).append(job)
                seen.add(id(job.stream))
            self._waiting = later
            try:
                await loop.run_in_executor(self._pool, _tick, jobs)
            except BaseException as exc:  # the tick itself broke: nothing may wait forever
                for job in [*jobs, *self._waiting]:
                    if not job.done.done():
                        job.done.set_exception(exc)
                self._waiting = []
                raise
            self.ticks_ += 1
            for job in jobs:
                try:
                    await self._deliver(job)
                except Exception as exc:  # this stream's caller sees it; the others' rows still go out
                    if not job.done.done():
                        job.done.set_exception(exc)
                finally:
                    if not job.done.done():
                        job.done.set_result(None)

    async def _remote(self, stream: LiveStream, packets: list, send: Send | None) -> None:
        """The packets analysed in the stream's worker process: each packet's rows are emitted as
        soon as they arrive; returns when every packet is done."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        left = [len(packets)]
        errors: list[tuple[int, Exception]] = []

        def on_output(index: int, strides, stances, error) -> None:  # on the event loop
            if error is not None:
                errors.append((max(index, 0), error))
            else:
                stream.analyzer.add(strides)
                packet, received_at = packets[index]
                if stances is not None:
                    self.emit(stream, stances, received_at, packet.sequence, "packet", "stance")
                if strides is not None:
                    self.emit(stream, strides, received_at, packet.sequence, "packet", "stride")
            left[0] -= 1
            if left[0] == 0 and not done.done():
                done.set_result(None)

        def from_worker(*args) -> None:  # on a reader thread
            loop.call_soon_threadsafe(on_output, *args)

        stream.analyzer.push_packets([p for p, _ in packets], from_worker)
        await asyncio.shield(done)
        await self._report(stream, [(packets[i][0].sequence, exc) for i, exc in errors], send)

    async def _report(
        self, stream: LiveStream, errors: list[tuple[int, Exception]], send: Send | None
    ) -> None:
        for seq, exc in errors:
            # The packet is durable; a failing analysis must not drop the connection. Logged and
            # reported once per stream, not once per packet.
            stream.analysis_failures += 1
            if stream.analysis_failures > 1:
                continue
            log.error("live analysis failed on %s, packet %s", stream.key, seq, exc_info=exc)
            if send is not None:
                message = (
                    f"live analysis failed at packet {seq} ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); the packets are stored, strides may be missing"
                )
                with contextlib.suppress(Exception):
                    await send({"analysis_error": message, "seq": seq})

    async def _deliver(self, job: _Job) -> None:
        stream = job.stream
        await self._report(stream, [(job.packets[n][0].sequence, exc) for n, exc in job.errors], job.send)
        for number, (strides, stances) in job.outputs:
            packet, received_at = job.packets[number]
            self.emit(stream, stances, received_at, packet.sequence, "packet", "stance")
            self.emit(stream, strides, received_at, packet.sequence, "packet", "stride")

    async def finish(self, stream: LiveStream, closed_by: str) -> None:
        """Finish the analysis, write the CLOSE record, emit the tail (caller holds stream.lock)."""
        if stream.ended:
            return
        received_at = time.time()
        async with stream.analysis_lock:
            tail = (await asyncio.to_thread(stream.analyzer.finish)).strides
        await asyncio.to_thread(stream.receiver.end)
        stream.ended = True
        self.emit(stream, tail, received_at, stream.receiver.resume_from, closed_by, "stride")


def _tick(jobs: list[_Job]) -> None:
    """Analyse the jobs' packets in rounds (round r: packet r of each job), each round's metric
    queries as one; fills each job's outputs and errors."""
    rounds = max(len(job.packets) for job in jobs)
    for r in range(rounds):
        begun: list[_Job] = []
        for job in jobs:
            if r >= len(job.packets):
                continue
            packet, _ = job.packets[r]
            analyzer = job.stream.analyzer
            try:
                block = packet_block(packet, job.stream.hello.sampling_rate_hz)
                if not hasattr(analyzer, "begin_push"):
                    job.outputs.append((r, analyzer.push(block)))
                    continue
                analyzer.begin_push(block)
            except Exception as exc:
                job.errors.append((r, exc))
                with contextlib.suppress(Exception):
                    analyzer.resolve()  # rows completed before the failure are kept, as by push()
                continue
            begun.append(job)
        failed = resolve_together([job.stream.analyzer for job in begun])
        for i, job in enumerate(begun):
            if i in failed:
                job.errors.append((r, failed[i]))
                continue
            try:
                job.outputs.append((r, job.stream.analyzer.end_push()))
            except Exception as exc:
                job.errors.append((r, exc))
