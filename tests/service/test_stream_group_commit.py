"""Group commit across streams (`service.live.registry.LogCommitter`): the packets that streams store
in the same turn of the event loop are made durable by one hop to the commit thread, one fsync per
log, and each packet is acknowledged only after its own log's fsync (counts, not times)."""

from __future__ import annotations

import asyncio
import os

import numpy as np

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
    """fdatasync calls (by descriptor) and hops to the commit thread, counted where they happen."""

    def __init__(self, monkeypatch):
        self.synced: list[int] = []
        self.hops = 0
        sync, commit_all = os.fdatasync, registry_module._commit_all

        def counting_sync(fd: int) -> None:
            sync(fd)
            self.synced.append(fd)

        def counting_commit_all(receivers):
            self.hops += 1
            return commit_all(receivers)

        monkeypatch.setattr(os, "fdatasync", counting_sync)
        monkeypatch.setattr(registry_module, "_commit_all", counting_commit_all)


async def _attach_all(registry: StreamRegistry) -> list:
    owners = [object() for _ in range(N_STREAMS)]
    streams = [(await registry.attach(_hello(i), "T1", owners[i]))[0] for i in range(N_STREAMS)]
    return list(zip(streams, owners, strict=True))


def test_packets_of_many_streams_in_one_turn_share_one_commit_hop(tmp_path, monkeypatch):
    async def run():
        registry = StreamRegistry(tmp_path / "wal", tmp_path / "results", lambda hello: object())
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
        registry = StreamRegistry(tmp_path / "wal", tmp_path / "results", lambda hello: object())
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
