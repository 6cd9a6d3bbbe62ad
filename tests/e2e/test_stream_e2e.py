"""End to end against `strideflow serve` subprocesses: SIGKILL mid-stream loses nothing acknowledged,
streaming a recording stores the strides `analyze_recording` finds (within live's tolerance),
and `strideflow stream` with a bad key fails in one line.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import numpy as np
import polars as pl
import pytest

from strideflow.analytics.curves import PCT, PHASE, STRIDE_COUNT, curve_mean, curve_sd, session_curves
from strideflow.analytics.live_analyzer import WARMUP_TOLERANCE, LiveStrideAnalyzer
from strideflow.analytics.partitions import CURVES, SESSIONS, STRIDES, read_partition
from strideflow.analytics.pipeline import analyze_recording
from strideflow.benchmarks.stream import Server, create_api_key
from strideflow.hardware import schema as S
from strideflow.hardware.devices import RecordingReplayer, SimulatedDevice, stream_device
from strideflow.hardware.packets import decode_packet
from strideflow.hardware.profiles import PROFILES
from strideflow.hardware.simulator import SimulationSettings, write_dataset
from strideflow.ingest import read_recording
from strideflow.ingest.stream_receiver import packet_block
from strideflow.ingest.wal import read_wal, wal_path
from strideflow.service.live import WAL_DIRNAME

# Metrics are compared with analytics.live_analyzer.WARMUP_TOLERANCE, its documented tolerance with the
# causal 20 s warm-up (mounting and gyro bias from the first 20 s instead of the whole recording).
TIMING = (*S.EVENT_TIMES, S.STRIDE_TIME_S, S.STANCE_TIME_S, S.SWING_TIME_S, S.CADENCE_SPM)


def local_live(device) -> pl.DataFrame:
    """The live analyzer run in this process on exactly the samples the device's packets carry."""
    live = LiveStrideAnalyzer("A1", "S1", device.foot, device.sampling_rate_hz)
    for seq in range(device.n_packets):
        live.push(packet_block(decode_packet(device.packet(seq)), device.sampling_rate_hz))
    live.finish()
    return live.strides_


def assert_same_strides(stored: pl.DataFrame, expected: pl.DataFrame, atol: float = 1e-9) -> None:
    stored, expected = stored.sort(S.FOOT, S.STRIDE_INDEX), expected.sort(S.FOOT, S.STRIDE_INDEX)
    assert stored.height == expected.height > 0
    assert stored[S.VALID].to_list() == expected[S.VALID].to_list()
    for c in (*S.EVENT_TIMES, *S.METRICS):
        a, b = stored[c].to_numpy().astype(float), expected[c].to_numpy().astype(float)
        np.testing.assert_allclose(a, b, atol=atol, rtol=0, equal_nan=True, err_msg=c)


# Stored live curves against batch's `session_curves` of the same file (issue 18): with the causal
# warm-up the means differ by the warm-up's mounting and bias (measured on imu_sample.csv: <= 0.29 deg
# mean, <= 0.04 deg SD; with batch's mounting and bias they agree to 3e-13 deg, test_live_equivalence).
CURVE_MEAN_TOL_DEG = 1.0
CURVE_SD_TOL_DEG = 0.3


def assert_curves_close(stored: pl.DataFrame, batch: pl.DataFrame) -> dict[str, float]:
    """Same rows (foot, activity, phase, pct) and stride counts; means and SDs within the tolerances."""
    on = [S.FOOT, S.ACTIVITY, PHASE, PCT]
    assert stored.height == batch.height > 0
    joined = batch.join(stored, on=on, how="full", suffix="_live", nulls_equal=True, coalesce=True)
    assert joined.height == batch.height, "the stored curves have other rows than batch's"
    assert joined[STRIDE_COUNT].to_list() == joined[f"{STRIDE_COUNT}_live"].to_list()
    worst = {}
    for angle in (S.PRONATION_DEG, S.PITCH_DEG):
        for column, tol in ((curve_mean(angle), CURVE_MEAN_TOL_DEG), (curve_sd(angle), CURVE_SD_TOL_DEG)):
            worst[column] = float((joined[column] - joined[f"{column}_live"]).abs().max())
            assert worst[column] <= tol, (column, worst[column], tol)
    return worst


def get_curves(url: str, key: str, athlete: str, session: str) -> list[dict]:
    """Every item of `GET /v1/sessions/{session}/curves`, following the cursor."""
    base = url.replace("ws://", "http://", 1)  # Server.url is the stream's WebSocket address
    items, cursor = [], None
    while True:
        params = {"athlete_id": athlete, "limit": 500, **({"cursor": cursor} if cursor else {})}
        r = httpx.get(
            f"{base}/v1/sessions/{session}/curves",
            params=params,
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,  # the machine is shared: no timed assert
        )
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


# How long the SIGKILL test lets the server take to start (and the client wait for it to come back).
# A restart imports the service, starts the analysis workers and replays the killed stream's log
# before it listens: 60 s at load average 18 on two cores (session 10), over the client's default
# 30 s and near `Server.start`'s 90 s. Time is no part of what the test proves; it only bounds a hang.
RESTART_TIMEOUT_S = 600.0


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_sample(tmp_path):
    key = create_api_key(tmp_path, "T1", "admin", athletes=("A1",))
    device = SimulatedDevice.simulate(SimulationSettings(duration_s=45.0, seed=5), feet=("left",))[0]
    server = Server(tmp_path).start(timeout_s=RESTART_TIMEOUT_S)
    acked_at_kill: list[int] = []

    def on_ack(report) -> None:
        # Kill mid-stream, once, as soon as a good part is acknowledged; restart on the same port.
        if not acked_at_kill and report.last_ack >= device.n_packets // 3:
            acked_at_kill.append(report.last_ack)
            server.kill()

    async def run():
        task = asyncio.ensure_future(
            stream_device(
                device,
                server.url,
                key,
                "A1",
                "S1",
                speed="max",
                window=64,
                on_ack=on_ack,
                reconnect_timeout_s=RESTART_TIMEOUT_S,
            )
        )
        while not acked_at_kill:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(server.start, RESTART_TIMEOUT_S)
        return await task

    try:
        report = asyncio.run(run())
    finally:
        server.stop()
    assert report.connections >= 2, "the client never had to resume"
    assert 0 < acked_at_kill[0] < device.n_packets - 1
    assert report.last_ack == device.n_packets - 1 and report.samples_acked == device.n_samples
    # The log holds every packet exactly once, in order, bit for bit what the device sent.
    _, packets, closed = read_wal(wal_path(tmp_path / WAL_DIRNAME, "A1", "S1", "left", device.device_id))
    assert closed
    assert [decode_packet(p).sequence for p in packets] == list(range(device.n_packets))
    assert all(p == device.packet(i) for i, p in enumerate(packets))
    # The restarted server rebuilt the analysis from the log: the stored strides are those of
    # one uninterrupted live run over the same samples.
    stored = read_partition(tmp_path / "results", STRIDES, "A1", "S1")
    assert_same_strides(stored, local_live(device))
    assert report.end_reply["strides"] == stored.height


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("serve")
    keys = {"admin": create_api_key(data, "T1", "admin", athletes=("A1", "R1"))}
    with Server(data) as server:
        yield server, keys, data


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from strideflow.service.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_streamed_recording_equals_batch_analysis(server_dir, tmp_path):
    """`strideflow stream FILE --speed max` stores what analyze_recording finds, within live's tolerance."""
    server, keys, data = server_dir
    write_dataset(tmp_path / "ds", athletes=1, minutes=1.0, seed=3, activity="walk")
    path = tmp_path / "ds" / "A001" / "S01" / "left.parquet"
    t0 = time.perf_counter()
    done = _cli(
        "stream", "--device", str(path), "--to", server.url, "--key", keys["admin"],
        "--athlete", "A1", "--session", "S1", "--speed", "max",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "12000 of 12000 samples acknowledged" in done.stderr, done.stderr
    elapsed = time.perf_counter() - t0
    stored = read_partition(data / "results", STRIDES, "A1", "S1")
    assert read_partition(data / "results", SESSIONS, "A1", "S1") is not None
    recording = read_recording(path)
    device = RecordingReplayer.from_samples(recording.samples, recording.sampling_rate_hz, "left")
    # 1. The transport adds nothing: exactly the live analyzer's strides on the same samples.
    assert_same_strides(stored, local_live(device))
    # 2. Against batch on the file: same strides and events; metrics within live's tolerance.
    batch = analyze_recording(recording).strides.sort(S.STRIDE_INDEX)
    stored = stored.sort(S.STRIDE_INDEX)
    assert stored.height == batch.height, (stored.height, batch.height)
    assert stored[S.VALID].to_list() == batch[S.VALID].to_list()
    worst = {}
    for c in TIMING:
        worst[c] = float(np.nanmax(np.abs(stored[c].to_numpy() - batch[c].to_numpy())))
        assert worst[c] < 1e-6, (c, worst[c])
    valid = batch[S.VALID].to_numpy()
    for c, tol in WARMUP_TOLERANCE.items():
        worst[c] = float(np.nanmax(np.abs(stored[c].to_numpy()[valid] - batch[c].to_numpy()[valid])))
        assert worst[c] <= tol, (c, worst[c], tol)
    # 3. The session's curves are stored as batch stores them, and served (issue 18).
    curves = read_partition(data / "results", CURVES, "A1", "S1")
    worst |= assert_curves_close(curves, session_curves(analyze_recording(recording)))
    served = get_curves(server.url, keys["admin"], "A1", "S1")
    assert len(served) == curves.filter(pl.col(STRIDE_COUNT) > 0).height > 0
    print(f"streamed 60 s at max speed in {elapsed:.1f} s; max |live - batch|: {worst}")


def test_bad_key_is_one_line_and_exit_1(server_dir):
    server, _, _ = server_dir
    done = _cli(
        "stream", "--device", "sim", "--minutes", "0.5", "--to", server.url, "--key", "sf_wrong",
        "--athlete", "A1", "--session", "S9", "--foot", "left",
    )  # fmt: skip
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "4401" in lines[0] and "invalid API key" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_restreaming_an_ended_session_exits_1_with_the_reason(server_dir):
    """Issue 13, LIVE3: the same `strideflow stream` into a session that has ended. Before, a shorter
    re-run printed every sample acknowledged though nothing was stored, and a longer one hung."""
    server, keys, data = server_dir
    common = ("--device", "sim", "--to", server.url, "--key", keys["admin"], "--athlete", "A1",
              "--session", "LIVE3", "--foot", "left", "--speed", "max")  # fmt: skip
    first = _cli("stream", *common, "--minutes", "0.5")
    assert first.returncode == 0, first.stderr
    log = wal_path(data / WAL_DIRNAME, "A1", "LIVE3", "left", "sim-L")
    stored = read_wal(log)
    assert stored[2] and stored[1]
    for minutes in ("0.25", "1"):
        again = _cli("stream", *common, "--minutes", minutes)
        assert again.returncode == 1, again.stderr
        lines = [line for line in again.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "4410" in lines[0], again.stderr
        assert "LIVE3" in again.stderr and "has ended" in again.stderr, again.stderr
        assert "acknowledged" not in again.stderr and "Traceback" not in again.stderr
    assert read_wal(log) == stored


@pytest.mark.real_data
@pytest.mark.slow
def test_streamed_real_recording_both_feet(server_dir, real_data):
    """The real gaitmap recording (both feet, no time column) replayed by the CLI at max speed."""
    server, keys, data = server_dir
    path = real_data / "imu_sample.csv"
    done = _cli(
        "stream", "--device", str(path), "--rate", "204.8", "--profile", "nilspod", "--to", server.url,
        "--key", keys["admin"], "--athlete", "R1", "--session", "imu_sample", "--speed", "max",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stored = read_partition(data / "results", STRIDES, "R1", "imu_sample")
    recording = read_recording(path, sampling_rate_hz=204.8)
    batch = analyze_recording(recording).strides
    expected = []
    for foot in S.FEET:
        dev = RecordingReplayer.from_samples(
            recording.samples, 204.8, foot, profile=PROFILES["nilspod"], device_id="x"
        )
        expected.append(local_live(dev).with_columns(pl.lit(foot).alias(S.FOOT)))
        # live finds the strides batch finds on this walk (its warm-up moves metrics, not strides)
        assert stored.filter(pl.col(S.FOOT) == foot).height == batch.filter(pl.col(S.FOOT) == foot).height
    assert_same_strides(stored, pl.concat(expected))
    sessions = read_partition(data / "results", SESSIONS, "R1", "imu_sample")
    assert sorted(sessions[S.FOOT].to_list()) == ["left", "right"]
    # Curves of both feet stored as batch's, and served like an uploaded session's (issue 18).
    curves = read_partition(data / "results", CURVES, "R1", "imu_sample")
    worst = assert_curves_close(curves, session_curves(analyze_recording(recording)))
    served = get_curves(server.url, keys["admin"], "R1", "imu_sample")
    assert {(c["foot"], c["phase"]) for c in served} == {(f, p) for f in S.FEET for p in ("stance", "stride")}
    assert len(served) == curves.filter(pl.col(STRIDE_COUNT) > 0).height
    print(f"real recording streamed: max |live - batch| of the curves {worst}")


@pytest.mark.slow
def test_load_run_times_stance_messages_from_the_toe_off(tmp_path):
    """`bench stream`'s load step on 2 realtime devices: nothing dropped, and the subscriber gets a
    stance message for the strides (the issue's toe-off latency is measured on them, not asserted)."""
    from strideflow.benchmarks.stream import TEAM, _run_load

    admin = create_api_key(tmp_path, TEAM, "admin", athletes=("ATH000",))
    coach = create_api_key(tmp_path, TEAM, "coach")
    with Server(tmp_path) as server:
        res = asyncio.run(_run_load(server.url, admin, coach, 2, 12.0, session="load"))
    assert res["dropped"] == 0
    # 2 devices x 200 Hz in real time: a rate computed wrongly (a factor of the device count or of
    # the window) lands far outside; a loaded machine (a second test worker) acknowledges late,
    # so the floor is loose: this is a check of the figure, not a speed test.
    assert 0.5 * 400.0 <= res["samples_per_s"] <= 1.1 * 400.0
    # 11 s timed per device; the simulated schedule has standing bouts too
    assert res["toe_off_timed"] >= 4 and res["timed"] >= 4
    # a stance goes out at the toe-off, its stride about one stride later: the order is physics
    assert res["toe_off_p50_ms"] < res["final_toe_off_p50_ms"]
    # the machine's share idle over the realtime phase is a share of all cores
    assert 0.0 <= res["machine_idle_pct"] <= 100.0 and 0.0 <= res["machine_steal_pct"] <= 100.0
