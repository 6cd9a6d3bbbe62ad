"""Live analysis of stored packets, batched across streams, and its failures.

With `LiveHub(analysis_workers=n)` (what `strideflow serve` runs) a stream's analyzer lives in a
worker process (`service.live.workers`): its packets are sent there in the order stored and each
packet's rows are emitted when they come back. Otherwise, on this process's analysis thread: streams
whose packets were stored while an analysis ran wait for the next tick; a tick takes every waiting
stream's packets and analyses them on the analysis thread (so fsyncs in the default pool never wait
behind it) in rounds, each round's rows emitted as soon as it is resolved: round r pushes the r-th
packet of each stream (`LiveStrideAnalyzer.begin_push`), then runs the metric queries of all the
strides and stance rows those packets completed as one Polars query
(`analytics.live_analyzer.resolve_together`): on the few rows of one stride the query's fixed cost
was most of the analysis, so with many streams due at once it is paid once per round instead of once
per row. The rows are those each stream's own analysis gives (each query row depends on that row
only). Packets of one stream are analysed in the order they were stored. An analyzer without
`begin_push` (a test's) is pushed as it is.

The first exception the analysis raises on a stream is logged with its traceback and sent to the
client once as `{"analysis_error": message, "seq": n}`; the packets stay stored, later failures
are counted (`LiveStream.analysis_failures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from strideflow.analytics.live_analyzer import LiveOutput, resolve_together
from strideflow.ingest.stream_receiver import packet_block
from strideflow.service.live.registry import LiveStream, Send
from strideflow.service.live.workers import RemoteAnalyzer

log = logging.getLogger("strideflow.service")

# packets of a stream sent to its worker process and not analysed yet before its connection waits
# (2 s of a 200 Hz pod's 20-sample packets): a worker that falls behind slows the acknowledgements
MAX_IN_FLIGHT = 20

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
    emit_error: Exception | None = None  # publishing its rows failed (its caller sees it)


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
        self._done: asyncio.Future | None = None  # a finished future of the running loop (`_ready`)
        self.ticks_ = 0  # ticks run (a tick with n streams saves n - 1 queries per round)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False)

    def analyse(self, stream: LiveStream, packets: list, send: Send | None = None) -> Awaitable[None]:
        """Push stored packets ((packet, received_at), ...) through the stream's analyzer at the
        next tick, done once their rows are emitted; or hand them to the stream's worker process
        at once, done once at most `MAX_IN_FLIGHT` of its packets wait for their rows (most often
        already: then a finished future, so that a packet costs the event loop no task)."""
        if isinstance(stream.analyzer, RemoteAnalyzer):
            return self._remote(stream, list(packets), send)
        return self._local(stream, packets, send)

    async def _local(self, stream: LiveStream, packets: list, send: Send | None) -> None:
        async with stream.analysis_lock:  # FIFO: packets are analysed in the order they were stored
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

            def on_round(r: int, jobs=jobs) -> None:  # on the analysis thread
                loop.call_soon_threadsafe(self._emit_round, jobs, r)

            try:
                await loop.run_in_executor(self._pool, _tick, jobs, on_round)
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
                    if job.emit_error is not None:
                        raise job.emit_error
                except Exception as exc:  # this stream's caller sees it; the others' rows still go out
                    if not job.done.done():
                        job.done.set_exception(exc)
                finally:
                    if not job.done.done():
                        job.done.set_result(None)

    def _remote(self, stream: LiveStream, packets: list, send: Send | None) -> Awaitable[None]:
        """The packets analysed in the stream's worker process, in the order sent: each packet's
        rows are emitted as soon as they arrive. The stream's connection goes on storing and
        acknowledging its next packets meanwhile, up to `MAX_IN_FLIGHT` packets ahead of the
        analysis (counted, `RemoteAnalyzer.waiting_`; a future only when the connection must wait);
        `finish` (and a store's refresh) reach the worker after every packet sent."""
        loop = asyncio.get_running_loop()
        analyzer = stream.analyzer
        left = len(packets)
        errors: list[tuple[int, Exception]] = []

        def on_output(index: int, strides, stances, error, pieces) -> None:  # on the event loop
            nonlocal left
            if error is not None:
                errors.append((max(index, 0), error))
            else:
                analyzer.add(strides)
                analyzer.take_mountings(pieces)  # what the messages are labelled with
                packet, received_at = packets[index]
                if stances is not None:
                    self.emit(stream, stances, received_at, packet.sequence, "packet", "stance")
                if strides is not None:
                    self.emit(stream, strides, received_at, packet.sequence, "packet", "stride")
            left -= 1
            analyzer.waiting_ -= 1
            caught_up = analyzer.caught_up_
            if caught_up is not None and analyzer.waiting_ <= MAX_IN_FLIGHT:
                analyzer.caught_up_ = None
                if not caught_up.done():
                    caught_up.set_result(None)
            if left == 0 and errors:
                failed = [(packets[i][0].sequence, exc) for i, exc in errors]
                asyncio.ensure_future(self._report(stream, failed, send))

        analyzer.waiting_ += len(packets)  # before the push: a lost worker answers within it
        # on_output runs on this loop, the outputs of one worker message in one hand-off
        analyzer.push_packets([p for p, _ in packets], on_output, loop)
        if analyzer.waiting_ <= MAX_IN_FLIGHT:
            return self._ready(loop)
        if analyzer.caught_up_ is None:
            analyzer.caught_up_ = loop.create_future()
        return asyncio.shield(analyzer.caught_up_)

    def _ready(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        """A finished future of `loop` (one per loop: awaiting it again costs nothing)."""
        ready = self._done
        if ready is None or ready.get_loop() is not loop:
            ready = self._done = loop.create_future()
            ready.set_result(None)
        return ready

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

    def _emit_round(self, jobs: list[_Job], r: int) -> None:
        """The rows of a tick's round r, as soon as it is resolved (not after the whole tick)."""
        for job in jobs:
            for number, (strides, stances) in job.outputs:
                if number != r:
                    continue
                packet, received_at = job.packets[number]
                try:
                    self.emit(job.stream, stances, received_at, packet.sequence, "packet", "stance")
                    self.emit(job.stream, strides, received_at, packet.sequence, "packet", "stride")
                except Exception as exc:  # this stream's caller sees it; the others' rows still go out
                    job.emit_error = job.emit_error or exc

    async def _deliver(self, job: _Job) -> None:
        """After the tick: the job's failures (its rows went out with their rounds)."""
        await self._report(job.stream, [(job.packets[n][0].sequence, e) for n, e in job.errors], job.send)

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


def _tick(jobs: list[_Job], on_round: Callable[[int], None] | None = None) -> None:
    """Analyse the jobs' packets in rounds (round r: packet r of each job), each round's metric
    queries as one; fills each job's outputs and errors, and calls `on_round(r)` after each."""
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
        if on_round is not None:
            on_round(r)
