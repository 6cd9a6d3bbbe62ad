"""`counts_block` (a packet's fields to a `SampleBlock`, compiled) gives the floats of the NumPy
statements it replaced, for any counts, timestamp, scales and rate, and for a worker's read-only
packet bytes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strideflow.ingest.stream_receiver import counts_block

_COUNT_LIMITS = [np.iinfo(np.int16).min, np.iinfo(np.int16).max, 0, -1, 1]


def _numpy_statements(counts, timestamp_us, acc_scale, gyr_scale, rate):
    """What `counts_block` computed before it was compiled."""
    values = counts.astype(float)
    return (
        timestamp_us * 1e-6 + np.arange(len(counts)) / rate,
        values[:, :3] / acc_scale,
        values[:, 3:] / gyr_scale,
        ((counts == _COUNT_LIMITS[0]) | (counts == _COUNT_LIMITS[1])).any(axis=1),
    )


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(
    st.integers(0, 40).flatmap(
        lambda n: hnp.arrays(
            np.int16, (n, 6), elements=st.integers(-32768, 32767) | st.sampled_from(_COUNT_LIMITS)
        )
    ),
    st.integers(0, 2**64 - 1) | st.sampled_from([0, 1_700_000_000_123_456, 2**53 + 1, 2**63, 2**64 - 1]),
    st.floats(1e-3, 1e5) | st.sampled_from([2048.0, 16.4, 1.0]),
    st.floats(1e-3, 1e5) | st.sampled_from([2048.0, 16.4, 1.0]),
    st.sampled_from([200.0, 100.0, 104.0, 1000.0, 3.0]),
    st.booleans(),
)
def test_counts_block_is_the_numpy_statements(counts, timestamp_us, acc_scale, gyr_scale, rate, read_only):
    want = _numpy_statements(counts, timestamp_us, acc_scale, gyr_scale, rate)
    if read_only:  # as a worker's packet bytes
        counts = np.frombuffer(counts.tobytes(), np.int16).reshape(-1, 6)
    got = counts_block(counts, timestamp_us, acc_scale, gyr_scale, 7, rate)
    assert (got.first_seq, got.last_seq) == (7, 7)
    for a, b in zip(want, (got.t_s, got.acc_mps2, got.gyr_dps, got.saturated), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
