"""Gaps in a sample stream: where they are, which ones split it, and the streaming fill.

One rule for recorded files (`ingest.condition.to_uniform_grid`) and live streams
(`analytics.live_analyzer`, through `GapConditioner`): a step between two samples longer than
`ReadSettings.gap_min_intervals` sample intervals is a gap; its missing time is the step less one
interval; up to `max_interpolated_gap_s` of missing time is filled by linear interpolation (the
samples flagged), longer starts a new segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from strideflow.ingest.settings import ReadSettings

__all__ = ["ConditionedBlock", "GapConditioner", "find_gaps"]


def find_gaps(
    steps_s: np.ndarray, sampling_rate_hz: float, settings: ReadSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaps among the time steps `steps_s` (s, step i between sample i and i + 1).

    Returns (index i of each gap's step, missing time in s, whether it splits the stream).
    """
    interval = 1.0 / sampling_rate_hz
    gap_at = np.flatnonzero(steps_s > settings.gap_min_intervals * interval)
    missing_s = steps_s[gap_at] - interval
    return gap_at, missing_s, missing_s > settings.max_interpolated_gap_s


@dataclass(frozen=True)
class ConditionedBlock:
    """A block after `GapConditioner.push`: `t` (n,) s, `values` (n, k), `saturated` (n,) bool,
    `new_segment` (n,) bool (True where a segment starts: the stream's first sample and the
    sample after a long gap), `interpolated` (n,) bool (filled in across a short gap), and the
    `warnings` of its gaps in plain words."""

    t: np.ndarray
    values: np.ndarray
    saturated: np.ndarray
    new_segment: np.ndarray
    interpolated: np.ndarray
    warnings: tuple[str, ...]


class GapConditioner:
    """Streaming gap handling of one sample stream (`find_gaps`'s rule), block by block.

    Parameters
    ----------
    sampling_rate_hz
        Nominal rate of the stream.
    settings
        `gap_min_intervals` and `max_interpolated_gap_s` of `ReadSettings`.

    Attributes
    ----------
    last_t_
        Time of the last sample pushed (s), None before the first.

    Notes
    -----
    The fill of a short gap after sample (t0, v0) and before (t1, v1) is the k = round((t1 - t0) *
    rate) - 1 samples t0 + (t1 - t0) w, v0 + (v1 - v0) w with w = j / (k + 1), j = 1..k; it
    depends only on those two samples, so it is the same whatever the block sizes.
    """

    def __init__(self, sampling_rate_hz: float, settings: ReadSettings = ReadSettings()) -> None:
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.settings = settings
        self.last_t_: float | None = None
        self._last_values: np.ndarray | None = None

    def follows(self, t: np.ndarray, last_values: np.ndarray) -> bool:
        """Take block `t` (n,) s as it is if it continues the stream with no gap (True): `push`
        would return it unchanged, nothing filled or split, no warning; `last_values` (k,) are
        its last sample's values, kept as given (a later gap's fill starts from them). Otherwise
        (the stream's first block, a gap, an empty block) False, nothing taken: `push` it."""
        if self.last_t_ is None or not len(t):
            return False
        limit_s = self.settings.gap_min_intervals * (1.0 / self.sampling_rate_hz)  # `find_gaps`'s
        if not _steps_within(t, self.last_t_, limit_s):
            return False
        self.last_t_, self._last_values = float(t[-1]), last_values
        return True

    def push(self, t: np.ndarray, values: np.ndarray, saturated: np.ndarray) -> ConditionedBlock:
        """Condition a block: `t` (n,) s strictly increasing after the previous block, `values`
        (n, k) floats, `saturated` (n,) bool. Returns the block with short gaps filled."""
        n = len(t)
        if n == 0:
            return ConditionedBlock(t, values, saturated, np.zeros(0, bool), np.zeros(0, bool), ())
        is_new = np.zeros(n, dtype=bool)
        is_gap = np.zeros(n, dtype=bool)
        warnings: list[str] = []
        first = self.last_t_ is None
        is_new[0] = first
        # step i leads to sample i (the stream's first sample has none: a step of 0)
        steps = np.diff(np.concatenate([[t[0] if first else self.last_t_], t]))
        gap_at, missing_s, long_gap = find_gaps(steps, self.sampling_rate_hz, self.settings)
        if len(gap_at):
            pieces: list[tuple[np.ndarray, ...]] = []
            lo = 0
            prev_t, prev_v = self.last_t_, self._last_values
            for i, missing, is_long in zip(gap_at, missing_s, long_gap, strict=True):
                pieces.append((t[lo:i], values[lo:i], saturated[lo:i], is_new[lo:i], is_gap[lo:i]))
                if i > 0:
                    prev_t, prev_v = t[i - 1], values[i - 1]
                if is_long:
                    is_new[i] = True
                    warnings.append(
                        f"gap of {missing:.4g} s after t = {prev_t:.6g} s: "
                        "the stream continues in a new segment"
                    )
                else:
                    k = int(round(steps[i] * self.sampling_rate_hz)) - 1
                    if k > 0:
                        w = (np.arange(1, k + 1) / (k + 1))[:, None]
                        pieces.append(
                            (
                                prev_t + (t[i] - prev_t) * w[:, 0],
                                prev_v + (values[i] - prev_v) * w,
                                np.zeros(k, dtype=bool),
                                np.zeros(k, dtype=bool),
                                np.ones(k, dtype=bool),
                            )
                        )
                    warnings.append(
                        f"gap of {missing:.4g} s after t = {prev_t:.6g} s: {k} sample(s) linearly "
                        "interpolated, strides over them invalid"
                    )
                lo = i
            pieces.append((t[lo:], values[lo:], saturated[lo:], is_new[lo:], is_gap[lo:]))
            t, values, saturated, is_new, is_gap = (np.concatenate(p) for p in zip(*pieces, strict=True))
        self.last_t_, self._last_values = float(t[-1]), values[-1].copy()
        return ConditionedBlock(t, values, saturated, is_new, is_gap, tuple(warnings))


@numba.njit(cache=True)
def _steps_within(t, last_t, limit_s):  # pragma: no cover - compiled
    """No step from `last_t` through t (s) longer than `limit_s`: `find_gaps`'s test (`steps_s >
    gap_min_intervals * interval`) finds no gap. Per live packet, where its NumPy form cost ~5 us."""
    prev = last_t
    for i in range(t.shape[0]):
        if t[i] - prev > limit_s:
            return False
        prev = t[i]
    return True
