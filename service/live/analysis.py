"""Live analysis of stored packets on its own threads, and its failures.

Analyses get their own threads (one per core by default), so fsyncs in the default pool never
wait behind them, and a burst of analyses queues first come, first served. Packets of one stream
are analysed in the order they were stored. The first exception the analysis raises on a stream
is logged with its traceback and sent to the client once as `{"analysis_error": message, "seq":
n}`; the packets stay stored, later failures are counted (`LiveStream.analysis_failures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from strideflow.analytics.live_analyzer import LiveOutput, StreamAnalyzer
from strideflow.ingest.stream_receiver import SampleBlock, packet_block
from strideflow.service.live.registry import LiveStream, Send

log = logging.getLogger("strideflow.service")

# (stream, rows, received_at, closing sequence number, closed_by, kind "stance" or "stride")
Emit = Callable[[LiveStream, pl.DataFrame, float, int | None, str, str], None]


class LiveAnalysis:
    """Runs each stream's analyzer on the packets it stored and hands the rows to `emit`."""

    def __init__(self, emit: Emit, threads: int = 2):
        self.emit = emit
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="live-analysis")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False)

    async def analyse(self, stream: LiveStream, packets: list, send: Send | None = None) -> None:
        """Push stored packets ((packet, received_at), ...) through the stream's analyzer."""
        async with stream.analysis_lock:  # FIFO: packets are analysed in the order they were stored
            for packet, received_at in packets:
                block = packet_block(packet, stream.hello.sampling_rate_hz)
                try:
                    strides, stances = await asyncio.get_running_loop().run_in_executor(
                        self._pool, lambda b=block: self._push(stream.analyzer, b)
                    )
                except Exception as exc:
                    # The packet is durable; a failing analysis must not drop the connection. Logged
                    # and reported once per stream, not once per packet.
                    stream.analysis_failures += 1
                    if stream.analysis_failures == 1:
                        log.exception("live analysis failed on %s, packet %s", stream.key, packet.sequence)
                        if send is not None:
                            message = (
                                f"live analysis failed at packet {packet.sequence} ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); the packets are stored, strides may be missing"
                            )
                            with contextlib.suppress(Exception):
                                await send({"analysis_error": message, "seq": packet.sequence})
                    continue
                self.emit(stream, stances, received_at, packet.sequence, "packet", "stance")
                self.emit(stream, strides, received_at, packet.sequence, "packet", "stride")

    @staticmethod
    def _push(analyzer: StreamAnalyzer, block: SampleBlock) -> LiveOutput:
        """(strides, provisional stance rows) the block completed."""
        return analyzer.push(block)

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
