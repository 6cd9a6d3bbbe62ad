"""Group commit across streams (`service.live.registry.LogCommitter`): the packets that streams store
in the same turn of the event loop are made durable by one hop to the commit thread; with
`live_log_sync = "files"` one fsync per log, the fsyncs of a batch in flight together, and each
packet acknowledged only after its own log's fsync; with "file_system" (the default) one syncfs for
the logs of a batch on one file system, each packet acknowledged only after it, and a failed syncfs
acknowledging none of them (counts, not times)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading

import numpy as np
import pytest

from strideflow.hardware.packets import encode_packet
from strideflow.ingest.stream_receiver import StreamHello
from strideflow.ingest.wal import read_wal, wal_path
from strideflow.service.live import registry as registry_module
from strideflow.service.live.registry import StreamRegistry

N_STREAMS = 8
ROUNDS = 3
FS = 100.0
N_PER_PACKET = 10


def _packet(device: str, seq: int) -> bytes:
    counts = np.zeros((N_PER_PACKET, 6), np.int16)
    counts[:, 2] = 2048
    return encode_packet(device, "left", seq, int(seq * N_PER_PACKET / FS * 1e6), counts, 204.8, 16.0)


def _hello(i: int) -> StreamHello:
    return StreamHello(f"A{i}", "S1", "left", f"pod-{i}", FS)


async def _no_analysis(stream, packets, send) -> None:
    return None


class _Counts:
    """fdatasync calls (by descriptor), the most in flight at once, and hops to the commit thread,
    counted where they happen. With `all_in_flight`, an fsync returns only once `N_STREAMS` have
    started (or a 5 s safety timeout passes), so one after another they can never all overlap."""

    def __init__(self, monkeypatch, all_in_flight: bool = False):
        self.synced: list[int] = []
        self.hops = 0
        self.in_flight = self.most_in_flight = 0
        lock, started = threading.Lock(), threading.Barrier(N_STREAMS) if all_in_flight else None
        sync, commit_all = os.fdatasync, registry_module._commit_all

        def counting_sync(fd: int) -> None:
            with lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if started is not None:
                with contextlib.suppress(threading.BrokenBarrierError):
                    started.wait(timeout=5.0)
            sync(fd)
            with lock:
                self.in_flight -= 1
            self.synced.append(fd)

        def counting_commit_all(*args):
            self.hops += 1
            return commit_all(*args)

        monkeypatch.setattr(os, "fdatasync", counting_sync)
        monkeypatch.setattr(registry_module, "_commit_all", counting_commit_all)
        # syncfs calls (by descriptor), each going through to the real one
        self.fs_synced: list[int] = []
        sync_fs = registry_module.sync_file_system

        def counting_sync_fs(fd: int) -> None:
            sync_fs(fd)
            self.fs_synced.append(fd)

        monkeypatch.setattr(registry_module, "sync_file_system", counting_sync_fs)


def _files_registry(tmp_path) -> StreamRegistry:
    """A registry that fsyncs each log (`live_log_sync = "files"`)."""
    return StreamRegistry(
        tmp_path / "wal", tmp_path / "results", lambda hello: object(), file_system_sync=False
    )


async def _attach_all(registry: StreamRegistry) -> list:
    owners = [object() for _ in range(N_STREAMS)]
    streams = [(await registry.attach(_hello(i), "T1", owners[i]))[0] for i in range(N_STREAMS)]
    return list(zip(streams, owners, strict=True))


def test_packets_of_many_streams_in_one_turn_share_one_commit_hop(tmp_path, monkeypatch):
    async def run():
        registry = _files_registry(tmp_path)
        attached = await _attach_all(registry)  # each new log's META is synced here, not counted
        counts = _Counts(monkeypatch)
        acked: dict[int, list[int]] = {i: [] for i in range(N_STREAMS)}

        def sender(i: int, stream):
            fd = stream.receiver.wal._fd

            async def send(message: dict) -> None:
                # acknowledged only once this stream's log has been fsynced after the packet
                assert counts.synced.count(fd) == message["ack"] + 1
                acked[i].append(message["ack"])

            return send

        for seq in range(ROUNDS):  # every stream's packet arrives in the same turn
            await asyncio.gather(
                *[
                    registry.receive(
                        stream, [(_packet(f"pod-{i}", seq), 0.0)], owner, sender(i, stream), _no_analysis
                    )
                    for i, (stream, owner) in enumerate(attached)
                ]
            )
        registry.close_all()
        return counts, acked, registry

    counts, acked, registry = asyncio.run(run())
    assert counts.hops == ROUNDS  # one per turn, not one per stream and packet (N_STREAMS * ROUNDS)
    assert len(counts.synced) == N_STREAMS * ROUNDS  # one fsync per log and turn
    assert registry.committer.batches_ == ROUNDS and registry.committer.syncs_ == N_STREAMS * ROUNDS
    assert acked == {i: list(range(ROUNDS)) for i in range(N_STREAMS)}
    for i in range(N_STREAMS):
        path = wal_path(tmp_path / "wal", f"A{i}", "S1", "left", f"pod-{i}")
        assert read_wal(path)[1] == [_packet(f"pod-{i}", seq) for seq in range(ROUNDS)]


def test_a_log_that_fails_to_commit_fails_only_its_own_stream(tmp_path, monkeypatch):
    async def run():
        registry = _files_registry(tmp_path)
        attached = await _attach_all(registry)
        bad_stream = attached[3][0]

        def broken_commit() -> None:
            raise OSError("disk full")

        monkeypatch.setattr(bad_stream.receiver, "commit", broken_commit)
        acked: list[int] = []

        def sender(i: int):
            async def send(message: dict) -> None:
                acked.append(i)

            return send

        results = await asyncio.gather(
            *[
                registry.receive(stream, [(_packet(f"pod-{i}", 0), 0.0)], owner, sender(i), _no_analysis)
                for i, (stream, owner) in enumerate(attached)
            ],
            return_exceptions=True,
        )
        in_memory = set(registry.streams.values())
        registry.close_all()
        return results, acked, bad_stream, in_memory

    results, acked, bad_stream, in_memory = asyncio.run(run())
    assert isinstance(results[3], OSError)
    assert [r for i, r in enumerate(results) if i != 3] == [None] * (N_STREAMS - 1)
    assert sorted(acked) == [i for i in range(N_STREAMS) if i != 3]  # never the failed one
    assert bad_stream not in in_memory and bad_stream.ended  # its next hello rebuilds it from the log
    assert len(in_memory) == N_STREAMS - 1


def test_the_committer_works_again_on_a_new_event_loop(tmp_path):
    registry = StreamRegistry(tmp_path / "wal", tmp_path / "results", lambda hello: object())

    async def one(seq: int) -> list:
        stream, _ = await registry.attach(_hello(0), "T1", owner := object())
        sent: list = []

        async def send(message: dict) -> None:
            sent.append(message)

        await registry.receive(stream, [(_packet("pod-0", seq), 0.0)], owner, send, _no_analysis)
        return sent

    for seq in range(2):  # a TestClient starts the app on a new loop each time
        assert asyncio.run(one(seq)) == [{"ack": seq}]
    registry.close_all()


def test_the_fsyncs_of_one_batch_are_in_flight_together(tmp_path, monkeypatch):
    # one after another, each fsync waits for its own journal commit (~4 ms here): 200 pods' logs
    # in turn would hold every acknowledgement of a batch for most of a second
    async def run():
        registry = _files_registry(tmp_path)
        attached = await _attach_all(registry)
        counts = _Counts(monkeypatch, all_in_flight=True)

        async def send(message: dict) -> None:
            return None

        await asyncio.gather(
            *[
                registry.receive(stream, [(_packet(f"pod-{i}", 0), 0.0)], owner, send, _no_analysis)
                for i, (stream, owner) in enumerate(attached)
            ]
        )
        registry.close_all()
        return counts

    counts = asyncio.run(run())
    assert counts.hops == 1 and len(counts.synced) == N_STREAMS
    assert counts.most_in_flight == N_STREAMS


needs_syncfs = pytest.mark.skipif(
    not registry_module.FILE_SYSTEM_SYNC,
    reason="syncfs needs Linux 5.8 or later; logs are fsynced one by one",
)


def _receive_round(registry, attached, seq: int, sender) -> list:
    return [
        registry.receive(stream, [(_packet(f"pod-{i}", seq), 0.0)], owner, sender(i, stream), _no_analysis)
        for i, (stream, owner) in enumerate(attached)
    ]


@needs_syncfs
def test_the_logs_of_one_turn_are_made_durable_by_one_syncfs_before_any_is_acknowledged(
    tmp_path, monkeypatch
):
    async def run():
        registry = StreamRegistry(tmp_path / "wal", tmp_path / "results", lambda hello: object())
        attached = await _attach_all(registry)
        counts = _Counts(monkeypatch)
        acked: dict[int, list[int]] = {i: [] for i in range(N_STREAMS)}

        def sender(i: int, stream):
            async def send(message: dict) -> None:
                assert len(counts.fs_synced) == message["ack"] + 1  # this turn's syncfs has returned
                acked[i].append(message["ack"])

            return send

        for seq in range(ROUNDS):
            await asyncio.gather(*_receive_round(registry, attached, seq, sender))
        registry.close_all()
        return counts, acked, registry

    counts, acked, registry = asyncio.run(run())
    assert counts.hops == ROUNDS and len(counts.fs_synced) == ROUNDS and counts.synced == []
    assert registry.committer.file_system_syncs_ == ROUNDS and registry.committer.syncs_ == N_STREAMS * ROUNDS
    assert acked == {i: list(range(ROUNDS)) for i in range(N_STREAMS)}
    for i in range(N_STREAMS):
        path = wal_path(tmp_path / "wal", f"A{i}", "S1", "left", f"pod-{i}")
        assert read_wal(path)[1] == [_packet(f"pod-{i}", seq) for seq in range(ROUNDS)]


@needs_syncfs
def test_a_failed_syncfs_acknowledges_none_of_its_logs_and_a_log_alone_on_its_file_system_is_fsynced(
    tmp_path, monkeypatch
):
    async def run():
        registry = StreamRegistry(tmp_path / "wal", tmp_path / "results", lambda hello: object())
        attached = await _attach_all(registry)
        counts = _Counts(monkeypatch)
        # stream 5's log as if on another file system: it is fsynced on its own
        alone = attached[5][0].receiver.wal
        alone._device = -1
        alone_fd = alone.fileno()

        def broken_sync_fs(fd: int) -> None:
            raise OSError(5, "syncfs: Input/output error")

        monkeypatch.setattr(registry_module, "sync_file_system", broken_sync_fs)
        acked: list[int] = []

        def sender(i: int, stream):
            async def send(message: dict) -> None:
                acked.append(i)

            return send

        results = await asyncio.gather(*_receive_round(registry, attached, 0, sender), return_exceptions=True)
        in_memory = set(registry.streams.values())
        registry.close_all()
        return results, acked, in_memory, counts, alone_fd, [s for s, _ in attached]

    results, acked, in_memory, counts, alone_fd, streams = asyncio.run(run())
    assert acked == [5] and results[5] is None and counts.synced == [alone_fd]
    failed = [i for i in range(N_STREAMS) if i != 5]
    assert all(isinstance(results[i], OSError) for i in failed)
    # none of them acknowledged, each dropped: its next hello rebuilds it from what its log holds
    assert in_memory == {streams[5]} and all(streams[i].ended for i in failed)


def test_an_unknown_log_sync_is_refused_by_name(tmp_path):
    from strideflow.service.live.hub import LiveHub

    with pytest.raises(ValueError, match="log_sync must be one of"):
        LiveHub(tmp_path / "wal", tmp_path / "results", log_sync="filesystem")
