"""Gyroscope samples clipped at the sensor's range, rebuilt across each clipped run.

A MEMS gyro whose axis turns faster than its range reads the range (or, after the maker's
calibration, a value within a few per cent of it) until the rate falls back: the angle turned over
the run is lost, and so is the orientation for the rest of the swing. On a fast, running-like
stride of the LORD 3DM-GX5-25 (range about 500 deg/s) the foot's pitch rate stays clipped for up to
130 ms in mid-swing, 60 ms at push-off and a few samples at the heel strike.

Method: every run of samples at or beyond `CLIP_FRACTION` of the range on one axis is replaced by
the cubic Hermite polynomial that joins the last unclipped sample before the run to the first one
after it with their values and slopes (each slope the difference to that sample's own unclipped
neighbour), never below the clipped reading. A rate rising into the range and falling out of it
makes the cubic peak above the range. On the simulator (noise-free running at 2.6-4.0 m/s, true
peaks 1050-1100 deg/s, clipped at 500 deg/s) it recovers 81-89 % of the angle the clipping lost
(the rest: the true peak is narrower than a cubic); a parabola fitted to 3-4 neighbours on each
side recovers 55-75 % (tests/ingest/test_gyro_clipping.py). Its weak case is a broad peak just
above the range (simulated walking, 40-70 ms runs that lost 1-8 deg): the cubic follows the steep
edges and overshoots, about doubling the small lost angle. In `bench accuracy`'s
`gyro_range_500` rows (benchmarks/README.md) it takes running stride length from 0.88 to 0.40 %
MAPE (0.24 % unclipped) and costs walking 0.69 -> 1.03 %; a parabola on 4 neighbours a side
would be 0.66 % running and 0.40 % walking. The cubic is kept for the running-like strides the
real pod clips on; on the real normal-speed walks (at most 30 clipped samples) nothing moves by
more than 0.02 cm.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicHermiteSpline

# A sample at or beyond this fraction of the range counts as clipped: the 3DM-GX5-25's calibrated
# output of a clipped axis reads 495-510 deg/s for its 500 deg/s range, not one code.
CLIP_FRACTION = 0.97


def clipped_runs(x: np.ndarray, level: float) -> np.ndarray:
    """(K, 2) [start, stop) of the runs of samples with |x| >= level, one sign per run."""
    x = np.asarray(x, dtype=float)
    key = np.where(np.abs(x) >= level, np.sign(x), 0.0)
    change = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [x.size]])
    keep = key[starts] != 0 if x.size else np.zeros(0, dtype=bool)
    return np.column_stack([starts[keep], stops[keep]]).astype(np.int64)


def rebuild_clipped(t_s: np.ndarray, x: np.ndarray, range_value: float) -> tuple[np.ndarray, int]:
    """`x` (one gyro axis, any unit) with its clipped runs rebuilt, and how many samples were.

    `range_value`: the sensor's full scale in the unit of `x`; `t_s`: sample times (s, increasing).
    A run that touches either end of the data, or whose neighbour on either side is not followed
    by a second unclipped sample, has no slope to start from and is left as it is.
    """
    t = np.asarray(t_s, dtype=float)
    out = np.array(x, dtype=float, copy=True)
    n = out.size
    runs = clipped_runs(out, CLIP_FRACTION * float(range_value))
    rebuilt = 0
    for a, b in runs:
        if a < 2 or b + 2 > n or np.abs(out[[a - 2, b + 1]]).max() >= CLIP_FRACTION * range_value:
            continue
        slope_in = (out[a - 1] - out[a - 2]) / (t[a - 1] - t[a - 2])
        slope_out = (out[b + 1] - out[b]) / (t[b + 1] - t[b])
        cubic = CubicHermiteSpline([t[a - 1], t[b]], [out[a - 1], out[b]], [slope_in, slope_out])
        sign = np.sign(out[a])
        out[a:b] = sign * np.maximum(np.abs(out[a:b]), sign * cubic(t[a:b]))
        rebuilt += b - a
    return out, rebuilt
