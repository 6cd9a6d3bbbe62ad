"""Streaming filters: any chunking gives the batch result (contract: within 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strideflow.benchmarks._common import synthetic_imu
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.mahony import Mahony
from strideflow.fusion.settings import (
    AccelerationRejection,
    FusionInputError,
    MadgwickSettings,
    MahonySettings,
)
from strideflow.fusion.stream import MadgwickStream, MahonyStream

N = 400
RATE = 200.0
DATA = synthetic_imu(N, RATE, seed=11, rate_dps=300.0, lin_acc_mps2=8.0)
DT = np.random.default_rng(2).uniform(0.003, 0.008, N)
CASES = {
    "madgwick": (Madgwick, MadgwickStream, MadgwickSettings()),
    "madgwick_rejecting": (Madgwick, MadgwickStream, MadgwickSettings(acc_rejection=AccelerationRejection())),
    "mahony": (Mahony, MahonyStream, MahonySettings(k_i=0.5)),
}


def run_chunks(stream, sizes, mag, dt):
    out, i = [], 0
    for size in sizes:
        j = min(N, i + size)
        out.append(
            stream.update(
                DATA["acc_mps2"][i:j],
                DATA["gyr_dps"][i:j],
                mag_ut=None if mag is None else mag[i:j],
                dt_s=None if dt is None else dt[i:j],
            )
        )
        i = j
        if i >= N:
            break
    if i < N:
        out.append(
            stream.update(
                DATA["acc_mps2"][i:],
                DATA["gyr_dps"][i:],
                None if mag is None else mag[i:],
                None if dt is None else dt[i:],
            )
        )
    return np.concatenate(out)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("with_mag", [False, True])
@pytest.mark.parametrize("irregular", [False, True])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=0, max_value=150), min_size=1, max_size=40))
def test_random_chunks_equal_batch(case, with_mag, irregular, sizes):
    batch_cls, stream_cls, cfg = CASES[case]
    mag = DATA["mag_ut"] if with_mag else None
    dt = DT if irregular else None
    batch = batch_cls(cfg).estimate(DATA["acc_mps2"], DATA["gyr_dps"], RATE, mag_ut=mag, dt_s=dt).orientation_
    stream = stream_cls(cfg, sampling_rate_hz=RATE, with_magnetometer=with_mag)
    got = run_chunks(stream, sizes, mag, dt)
    assert got.shape == (N, 4)
    np.testing.assert_allclose(got, batch, rtol=0, atol=1e-12)
    assert stream.n_samples == N


@pytest.mark.parametrize("case", sorted(CASES))
def test_chunk_size_one_and_whole_file(case):
    batch_cls, stream_cls, cfg = CASES[case]
    batch = batch_cls(cfg).estimate(DATA["acc_mps2"], DATA["gyr_dps"], RATE).orientation_
    one = run_chunks(stream_cls(cfg, sampling_rate_hz=RATE), [1] * N, None, None)
    whole = run_chunks(stream_cls(cfg, sampling_rate_hz=RATE), [N], None, None)
    np.testing.assert_allclose(one, batch, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(whole, batch)


def test_mahony_stream_carries_bias_and_reset_restarts():
    cfg = MahonySettings(k_i=1.0)
    batch = Mahony(cfg).estimate(DATA["acc_mps2"], DATA["gyr_dps"], RATE)
    stream = MahonyStream(cfg, sampling_rate_hz=RATE)
    run_chunks(stream, [37] * 20, None, None)
    np.testing.assert_allclose(stream.bias_dps, batch.bias_dps_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stream.orientation, batch.orientation_[-1], rtol=0, atol=1e-12)
    stream.reset()
    assert stream.orientation is None
    again = run_chunks(stream, [100] * 4, None, None)
    np.testing.assert_allclose(again, batch.orientation_, rtol=0, atol=1e-12)


def test_stream_q0_and_errors():
    q0 = [0.0, 1.0, 0.0, 0.0]
    batch = Madgwick().estimate(DATA["acc_mps2"], DATA["gyr_dps"], RATE, q0=q0).orientation_
    got = run_chunks(MadgwickStream(sampling_rate_hz=RATE, q0=q0), [50] * 8, None, None)
    np.testing.assert_allclose(got, batch, rtol=0, atol=1e-12)
    stream = MadgwickStream(sampling_rate_hz=RATE)
    with pytest.raises(FusionInputError, match="magnetometer"):
        stream.update(DATA["acc_mps2"][:5], DATA["gyr_dps"][:5], mag_ut=DATA["mag_ut"][:5])
    with pytest.raises(FusionInputError, match="dt_s"):
        MadgwickStream().update(DATA["acc_mps2"][:5], DATA["gyr_dps"][:5])
    with pytest.raises(FusionInputError, match="non-finite"):
        bad = DATA["gyr_dps"][:5].copy()
        bad[3, 1] = np.nan
        stream.update(DATA["acc_mps2"][:5], bad)
    assert stream.update(np.empty((0, 3)), np.empty((0, 3))).shape == (0, 4)
