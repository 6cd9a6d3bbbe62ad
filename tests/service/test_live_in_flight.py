"""Back-pressure of the live analysis in worker processes (`service.live.analysis`): a stream's
connection goes on while at most `MAX_IN_FLIGHT` of its packets wait for their rows, then waits
until the worker has caught up; a failed packet is reported once its push is answered (counts)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from strideflow.service.live.analysis import MAX_IN_FLIGHT, LiveAnalysis
from strideflow.service.live.workers import RemoteAnalyzer


class _HeldAnalyzer(RemoteAnalyzer):
    """A remote analyzer whose worker answers only when told (`answer`)."""

    def __init__(self):  # no worker process
        self.waiting_ = 0
        self.caught_up_ = None
        self.outputs: list = []  # (on_output, index) not answered yet
        self.added = 0

    def push_packets(self, packets, on_output, loop=None) -> None:
        self.outputs += [(on_output, i) for i in range(len(packets))]

    def answer(self, n: int, error: Exception | None = None) -> None:
        for on_output, i in self.outputs[:n]:
            on_output(i, None, None, error, "-")
        del self.outputs[:n]

    def add(self, strides) -> None:
        self.added += 1

    def take_mountings(self, pieces) -> None:
        return None


def _packets(first: int, n: int) -> list:
    return [(SimpleNamespace(sequence=first + i), 0.0) for i in range(n)]


def test_the_connection_waits_only_beyond_max_in_flight_packets():
    async def run():
        analysis = LiveAnalysis(lambda *args: None)
        analyzer = _HeldAnalyzer()
        stream = SimpleNamespace(analyzer=analyzer, key=("A", "S", "left", "d"), analysis_failures=0)
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        ready = [analysis.analyse(stream, _packets(i, 1), send) for i in range(MAX_IN_FLIGHT)]
        assert all(r.done() for r in ready) and analyzer.waiting_ == MAX_IN_FLIGHT
        late = analysis.analyse(stream, _packets(MAX_IN_FLIGHT, 2), send)
        assert not late.done() and analyzer.waiting_ == MAX_IN_FLIGHT + 2
        analyzer.answer(1)
        await asyncio.sleep(0)
        assert not late.done()  # still one more than MAX_IN_FLIGHT
        analyzer.answer(1, RuntimeError("boom"))
        await asyncio.wait_for(late, 1.0)
        assert analyzer.waiting_ == MAX_IN_FLIGHT
        analyzer.answer(len(analyzer.outputs))
        await asyncio.sleep(0.01)
        return analyzer, sent, stream

    analyzer, sent, stream = asyncio.run(run())
    assert analyzer.waiting_ == 0 and analyzer.caught_up_ is None
    assert analyzer.added == MAX_IN_FLIGHT + 1  # every packet's output but the failed one
    assert stream.analysis_failures == 1 and [m["seq"] for m in sent] == [1]
