"""A live analysis worker sends a stream's mountings back only when they changed
(`service.live.workers`): every output with rows stands for the mountings its stream had after that
packet, which the server's `RemoteAnalyzer` labels the rows' messages with, a snapshot fetched in
between included. Counts of what is sent, not times."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

from strideflow.service.live import workers as W


class _Analyzer:
    """A stream's analyzer whose next push completes one row (or none) under given mountings."""

    def __init__(self) -> None:
        self.mountings_ = SimpleNamespace(pieces_=())
        self.rows: list[tuple] = []

    def end_push_rows(self) -> tuple[list[tuple], list[tuple]]:
        rows, self.rows = self.rows, []
        return rows, []


def test_mountings_go_back_only_when_changed_and_label_every_row_as_they_were():
    worker = W._Worker(None, None, "")
    analyzer = _Analyzer()
    worker.analyzers[1] = (analyzer, 200.0)
    server = W.RemoteAnalyzer.__new__(W.RemoteAnalyzer)
    server.mountings_, server._output_pieces = None, None
    first, second = ("first piece",), ("first piece", "remount piece")
    # per packet: the stream's mountings after it, whether it completed a row, a snapshot after it
    script = [
        (first, True, False),
        (first, False, False),
        (first, True, False),
        (first, True, True),  # the snapshot has what the next rows carry
        (second, False, True),  # a remount found by a packet without rows; snapshot has it
        (second, True, False),
        (second, True, False),
        (None, True, False),  # no watch (a given frame)
        (None, True, False),
    ]
    sent, labels = [], []
    for index, (pieces, row, snapshot) in enumerate(script):
        analyzer.mountings_ = None if pieces is None else SimpleNamespace(pieces_=pieces)
        analyzer.rows = [(index,)] if row else []
        out = pickle.loads(pickle.dumps(worker._end(1, 1, index)))
        if index == 2:  # a snapshot's reply that overtook this output (reader thread, event loop)
            server._take_snapshot((None, second))
        sent.append(out[5])
        server.take_mountings(out[5])
        if row:
            labels.append(None if server.mountings_ is None else server.mountings_.pieces_)
        if snapshot:
            server._take_snapshot((None, W._pieces(analyzer)))
    same, none = W.UNCHANGED, W.NOT_SENT
    assert sent == [first, none, same, same, none, second, same, None, same]
    assert labels == [first, first, first, second, second, None, None]  # as after each packet
    # a stream opened again (a rebuild) starts with its mountings in full
    worker.sent_pieces.pop(1)
    analyzer.mountings_, analyzer.rows = SimpleNamespace(pieces_=second), [(0,)]
    assert worker._end(1, 2, 0)[5] == second
