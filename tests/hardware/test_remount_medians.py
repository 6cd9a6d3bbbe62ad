"""The remount detector's window medians: the compiled median equals `np.nanmedian` bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strideflow.hardware.remount import _nanmedian_rows, _window_median_directions


def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        return np.nanmedian(x, axis=axis)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(
        np.all((a == b) & (np.signbit(a) == np.signbit(b)) | np.isnan(a) & np.isnan(b))
    )


@settings(max_examples=300, deadline=None)  # the first example compiles the kernel
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 25)),
        elements=st.floats(-1.0, 1.0, allow_subnormal=True)
        | st.sampled_from([np.nan, np.nan, 0.0, -0.0, 0.5, -0.5, np.inf, -np.inf]),
    )
)
def test_nanmedian_rows_are_numpys(x):
    assert _same_bits(_nanmedian_rows(x), _nanmedian(x, axis=1))


@settings(deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(21, 60), st.just(3)),
        elements=st.floats(-1.0, 1.0) | st.sampled_from([np.nan, 0.0, -0.0]),
    ),
    st.integers(1, 21),
)
def test_window_median_directions_are_the_nanmedian_ones(d, w):
    d[::5] = np.nan  # strides without a swing axis
    runs = np.lib.stride_tricks.sliding_window_view(d, w, axis=0)
    medians = _nanmedian(runs, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = medians / np.linalg.norm(medians, axis=-1, keepdims=True)
    assert _same_bits(_window_median_directions(d, w), want)
