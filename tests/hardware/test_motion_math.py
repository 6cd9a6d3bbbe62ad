"""Still-period helpers of `hardware.motion_math` (compiled) against their definitions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from strideflow.hardware.motion_math import mask_to_periods, periods_to_mask


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=300))
def test_mask_to_periods_lists_every_run_of_true(values):
    mask = np.array(values, dtype=bool)
    periods = mask_to_periods(mask)
    assert periods.dtype == np.int64 and periods.shape == (periods.shape[0], 2)
    # by definition: the runs of true, in order, [start, end)
    runs, start = [], None
    for i, v in enumerate([*values, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i))
            start = None
    assert [tuple(p) for p in periods.tolist()] == runs
    assert np.array_equal(periods_to_mask(periods, len(values)), mask)


def test_mask_to_periods_takes_any_truthy_array():
    assert mask_to_periods(np.array([0, 2, 3, 0, 1])).tolist() == [[1, 3], [4, 5]]
    assert mask_to_periods(np.zeros(0)).shape == (0, 2)
