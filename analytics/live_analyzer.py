"""Live per-stride analysis of one foot's sample stream, equal to the batch pipeline on the same data.

`LiveStrideAnalyzer.push(SampleBlock(t, acc, gyr))` takes blocks of any size and returns what the block
completed (`LiveOutput`: the strides, the `strides` table of DESIGN.md, and the provisional stance
rows). It runs the batch code itself: every window goes through `analytics.segment` (zero velocity,
orientation, integration, events, metrics, invalidation), the code the batch pipeline runs per
segment; so a stride it emits has the same events and metrics as `analyze_recording` on the whole
file, as long as the mounting rotation and gyro bias are the same. Measurements of where and how
much live differs from batch, of latencies and of the stance rows are in benchmarks/README.md
("live analyzer"), taken by tests/analytics/test_live_equivalence.py and tests/analytics/test_live_stance.py.

- zero velocity: `fusion.live.ZeroVelocityStream`, flags final once their context is known;
- the window starts where a still period starts, which batch levels the orientation on and where
  the de-drifted velocity is zero, so everything after it is what batch computes (heading differs
  by a constant, which no metric reads);
- a stride (IC_k to IC_k+1) closes at the end of the still period that follows the swing after its
  next foot-flat (batch's foot-flat is the middle of the longest still period of a stance, known
  once the stance has ended in a swing), once that sample's zero-velocity flag is final;
- provisional stance rows (`LiveSettings.stances`): at each swing start (the dorsiflexion rate
  passes `events.min_swing_dps` after a push-off, batch's test for a step) the window up to that
  sample with the detector's open-end stride gives the stride's stance metrics (STANCE_SCHEMA),
  once per IC; the final stride row with the same `ic_t` replaces it later;
- mounting and gyro bias: from the first `warmup_s` (`analytics.segment.estimate_mounting`, retried
  every `warmup_retry_s`), or fixed (`mounting_wxyz`, `gyr_bias_dps`), or not needed; an estimated
  mounting is the athlete's stored one when it fits the warm-up (`prior_mounting`) and is watched
  for remounts while streaming (`analytics.live_mountings`);
- gaps: `ingest.gaps.GapConditioner`, ingest's rule; saturation against the largest |gyr| so far;
- buffer: trimmed at each emitted stride's foot-flat; if no stride closes for `max_buffer_s` the
  window is cut there like a recording gap;
- the stance tilt fit (`ZuptSettings.tilt_fit_span` 1, the default): a window starts one still
  period earlier and a final row waits for one more still period, so that the periods each of its
  foot-flats' tilts is fitted from are levelled as batch levels them; its prior, the levelling's
  anchor SD, comes from the warm-up as the bias does (or `LiveSettings.anchor_tilt_sd_deg`).

Bounded memory: the rolling window (about four strides while walking, at most `max_buffer_s`),
the zero-velocity context and, until the mounting is known, the warm-up samples.
Deterministic and independent of block sizes: every decision (zero-velocity chunks, mounting
attempts, windows, cuts) falls at sample counts fixed by the data, never by block boundaries.

Longer than ~500 lines on purpose: the analyzer's state machine (warm-up, segments, windows,
stance rows, emission) reads best in one class; settings, tolerances and the sample buffer live in
`analytics.live_settings` and `analytics.live_buffer`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from strideflow.analytics.curves import CurveAccumulator
from strideflow.analytics.events import (
    FOOT_FLAT_IDX,
    IC_IDX,
    NEXT_IC_IDX,
    TOE_OFF_IDX,
    EventColumns,
)
from strideflow.analytics.live_buffer import SampleColumns
from strideflow.analytics.live_mountings import LiveMountings
from strideflow.analytics.live_packets import at_range, block_fine, still_ends, swing_starts, to_foot_rows
from strideflow.analytics.live_settings import STANCE_TOLERANCE, WARMUP_TOLERANCE, LiveError, LiveSettings
from strideflow.analytics.metric_rows import evaluate_row_lists
from strideflow.analytics.metrics import REASON_NO_SIGNAL, PreparedStrides
from strideflow.analytics.mountings import Mounting
from strideflow.analytics.segment import (
    GYR_AT_RANGE,
    REASON_GAP,
    REASON_SATURATION,
    MountingFailed,
    Segment,
    analyze_segment,
    apply_sample_flags,
    estimate_mounting,
    levelling_settings,
    segment_orientation,
)
from strideflow.fusion.live import ZeroVelocityStream
from strideflow.fusion.stream import MadgwickStream
from strideflow.fusion.zero_velocity import ZeroVelocityDetector
from strideflow.fusion.zupt import LevelledStrapdown, LevellingSettings, tilt_fit_nodes
from strideflow.hardware.frames import rotation_from_wxyz
from strideflow.hardware.motion_math import mask_to_periods
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    CONTEXT,
    CONTEXT_GAIT_START,
    FEET,
    IC_T,
    NEEDS_IC,
    NEXT_IC_T,
    PITCH_DEG,
    PRONATION_DEG,
    REASON,
    SESSION_ID,
    STANCE_METRICS,
    STANCE_SCHEMA,
    STEADY,
    STRIDE_INDEX,
    STRIDES_SCHEMA,
    TOE_OFF_T,
    VALID,
    T,
)
from strideflow.ingest.gaps import GapConditioner
from strideflow.ingest.stream_receiver import SampleBlock

__all__ = [
    "STANCE_TOLERANCE",
    "WARMUP_TOLERANCE",
    "LiveError",
    "LiveOutput",
    "LiveSettings",
    "LiveStrideAnalyzer",
    "StreamAnalyzer",
]

# Empty results, built once: a frame from a schema costs ~0.3 ms, and most pushes complete nothing.
_NO_STRIDES = pl.DataFrame(schema=STRIDES_SCHEMA)
_CURVE_TIMES = (IC_T, TOE_OFF_T, NEXT_IC_T)
_STRIDE_AT = {c: i for i, c in enumerate(STRIDES_SCHEMA)}  # a column's position in a row tuple
_STANCE_MEASURED_AT_START = tuple(c for c in STANCE_METRICS if c not in NEEDS_IC)
_NO_STANCES = pl.DataFrame(schema=STANCE_SCHEMA)

_CLOSE_T = "close_t"
_EMITTED_T = "emitted_t"
_LATENCY = "latency_samples"
_TOE_OFF_LATENCY = "toe_off_latency_samples"
STANCE_EMISSIONS_SCHEMA: dict[str, pl.DataType] = {
    IC_T: pl.Float64(),
    TOE_OFF_T: pl.Float64(),
    _EMITTED_T: pl.Float64(),
    _TOE_OFF_LATENCY: pl.Int64(),
}
EMISSIONS_SCHEMA: dict[str, pl.DataType] = {
    STRIDE_INDEX: pl.Int64(),
    NEXT_IC_T: pl.Float64(),
    _CLOSE_T: pl.Float64(),
    _EMITTED_T: pl.Float64(),
    _LATENCY: pl.Int64(),
}


def _with_sample_flags(rows: list[tuple], schema: dict, flags: tuple[np.ndarray, ...]) -> list[tuple]:
    """Rows (tuples in `schema`'s column order) over interpolated or gyro-saturated samples
    (`flags`: per row, from `LiveStrideAnalyzer._sample_flags`) are invalid ("gap", "saturation")."""
    gap, sat = flags
    if not (gap.any() or sat.any()):
        return rows  # what apply_sample_flags leaves (its query cost ~1 ms per row)
    flagged = {REASON_GAP: pl.Series(gap), REASON_SATURATION: pl.Series(sat)}
    return apply_sample_flags(rows_frame(rows, schema), flagged).rows()


def rows_frame(rows: list[tuple], schema: dict) -> pl.DataFrame:
    """The table of rows given as tuples in `schema`'s column order (their values as they are)."""
    return pl.DataFrame(rows, schema=schema, orient="row")


class _RowLog:
    """Rows emitted so far (tuples) and their table, built from the rows not in it yet when asked.

    The hub reads the table from its store thread while the analysis thread appends: both under
    the lock, so a row appended meanwhile waits for the next read."""

    def __init__(self, schema: dict, empty: pl.DataFrame) -> None:
        self._schema, self._table, self._new = schema, empty, []
        self._lock = threading.Lock()

    def extend(self, rows: list[tuple]) -> None:
        with self._lock:
            self._new.extend(rows)

    def table(self) -> pl.DataFrame:
        with self._lock:
            if self._new:
                new, self._new = rows_frame(self._new, self._schema), []
                self._table = new if self._table.height == 0 else pl.concat([self._table, new])
            return self._table


def resolve_together(analyzers: list[LiveStrideAnalyzer]) -> dict[int, Exception]:
    """Run the pending metric queries of several analyzers (each after its `begin_push`) as one
    query, and complete their rows; `end_push()` then gives each one's output. The rows are those
    each analyzer's own `resolve()` gives: every query row depends on that row only.

    Returns {position in `analyzers`: exception} for analyzers whose rows failed (then each was
    resolved on its own, so one bad table does not fail the others)."""
    waiting = [(i, a) for i, a in enumerate(analyzers) if a.pending_]
    failed: dict[int, Exception] = {}
    if not waiting:
        return failed
    settings = waiting[0][1].settings.analysis.metrics
    results = None
    if all(a.settings.analysis.metrics == settings for _, a in waiting):
        with contextlib.suppress(Exception):  # then each on its own, to tell which one fails
            results = evaluate_row_lists([p for _, a in waiting for p in a.pending_], settings)
    if results is not None:
        offset = 0
        for i, a in waiting:
            n = len(a.pending_)
            try:
                a.resolve(results[offset : offset + n])
            except Exception as exc:
                failed[i] = exc
            offset += n
        return failed
    for i, a in waiting:
        try:
            a.resolve()
        except Exception as exc:
            failed[i] = exc
    return failed


class LiveOutput(NamedTuple):
    """What a block completed: `strides` (STRIDES_SCHEMA) and provisional `stances` (STANCE_SCHEMA)."""

    strides: pl.DataFrame
    stances: pl.DataFrame


# what a push that completed nothing returns (its frames are the shared empty ones)
_NOTHING = LiveOutput(_NO_STRIDES, _NO_STANCES)


class StreamAnalyzer(Protocol):
    """What a live stream's analyzer does (the service's hub takes a factory of these)."""

    @property
    def strides_(self) -> pl.DataFrame:
        """Every stride emitted so far (STRIDES_SCHEMA)."""
        ...

    def push(self, block: SampleBlock) -> LiveOutput:
        """Feed a block; the strides and stance rows it completed."""
        ...

    def finish(self) -> LiveOutput:
        """End the stream; what its end completed."""
        ...

    # Optional: `curves_`, the session's curve summary so far (analytics.curves.curve_summary
    # columns), which the hub stores as the session's `curves`; an analyzer without it stores none.


class LiveStrideAnalyzer:
    """Per-stride metrics of one athlete-session-foot stream as it arrives (see the module doc).

    `push(block)` returns a `LiveOutput` with the strides completed by the block (STRIDES_SCHEMA,
    `stride_index` continuing from 0 as in batch) and its provisional stance rows; `finish()`
    what the end of the stream closes.

    Parameters
    ----------
    athlete_id, session_id, foot
        The stream's keys.
    sampling_rate_hz
        Nominal rate of the stream (Hz).
    settings
        `LiveSettings` (times in s; the batch `AnalysisSettings` the strides must agree with).
    prior_mounting
        The athlete's stored mounting of this foot and device (`analytics.mountings.prior_mountings`),
        kept unless the warm-up finds a remount; used only when the mounting is estimated.

    Attributes
    ----------
    strides_, stances_ : pl.DataFrame
        All strides and provisional stance rows emitted.
    samples_seen_ : int
        Samples pushed.
    mounting_ : Rotation | None
        Device -> foot rotation, None until known.
    mountings_ : LiveMountings | None
        The stream's mountings and remounts (`analytics.live_mountings`), when it estimates them.
    emissions_, stance_emissions_, latency_samples_
        Per stride (stance row): closing time and time of the newest sample when it went out (s),
        and the samples between the two.
    warnings_ : list[str]
        In plain words.
    curves_ : pl.DataFrame | None
        Mean and SD curves (deg) of the valid strides emitted, as batch stores them.

    Notes
    -----
    Runs the batch segment analysis (`analytics.segment`) on windows; each stage cites its source.
    """

    def __init__(
        self,
        athlete_id: str,
        session_id: str,
        foot: str,
        sampling_rate_hz: float,
        settings: LiveSettings = LiveSettings(),
        prior_mounting: Mounting | None = None,
    ) -> None:
        if foot not in FEET:
            raise LiveError(f"foot must be one of {', '.join(FEET)}, got {foot!r}")
        for name, value in ((ATHLETE_ID, athlete_id), (SESSION_ID, session_id)):
            if not isinstance(value, str) or not value:
                raise LiveError(f"{name} must be a non-empty string, got {value!r}")
        try:
            fs = float(sampling_rate_hz)
        except (TypeError, ValueError):
            fs = float("nan")
        if not (math.isfinite(fs) and fs > 0):
            raise LiveError(f"sampling_rate_hz must be a positive number, got {sampling_rate_hz!r}")
        a = settings.analysis
        if a.orientation not in ("zero_velocity", "madgwick"):
            raise LiveError(f"orientation must be 'zero_velocity' or 'madgwick', got {a.orientation!r}")
        if a.gyr_delay_s != 0.0:
            raise LiveError(
                f"gyr_delay_s is not supported by the live analysis (batch only), got {a.gyr_delay_s!r}"
            )
        fit = a.zupt.tilt_fit_sd_mps is not None
        if fit and a.zupt.tilt_fit_span != 1:
            # the whole-segment fit spans every stance; a window holds one still period before a
            # stride's and waits for one after it
            raise LiveError(
                f"zupt.tilt_fit_sd_mps needs zupt.tilt_fit_span=1 in the live analysis (the local "
                f"fit), got tilt_fit_sd_mps={a.zupt.tilt_fit_sd_mps!r}, "
                f"tilt_fit_span={a.zupt.tilt_fit_span!r}"
            )
        self._levelling_prior = fit and a.zupt.tilt_fit_prior_deg == "levelling"
        self.athlete_id, self.session_id, self.foot = athlete_id, session_id, foot
        self.sampling_rate_hz = fs
        self.settings = settings
        self._n = lambda seconds: max(int(round(seconds * fs)), 1)
        self._zv_margin = (
            None if settings.zero_velocity_margin_s is None else self._n(settings.zero_velocity_margin_s)
        )

        self.samples_seen_ = 0
        self.warnings_: list[str] = []
        # rows as tuples in their schema's column order, the tables built only when asked
        self._emitted = _RowLog(STRIDES_SCHEMA, _NO_STRIDES)
        self._emissions: list[dict] = []
        self._n_emitted = 0
        self._stances = _RowLog(STANCE_SCHEMA, _NO_STANCES)
        self._stance_emissions: list[dict] = []
        self._new_stances: list[tuple] = []
        self._new_strides: list[tuple] = []
        # metric queries of this push not run yet, each with what to do with its rows' columns
        self._pending: list[tuple[PreparedStrides, Callable[[dict[str, list]], None]]] = []
        self._push_start = 0
        # session curves of the emitted strides, from each window's signals (batch's resampling)
        self._curves = CurveAccumulator() if settings.curves else None
        self._armed = False  # a plantarflexion (push-off) was seen since the last swing trigger
        self._stance_ic = -1  # global index of the IC of the last stance emitted
        # conditioning (device frame)
        self._gaps = GapConditioner(fs, settings.read)
        self._gyr_abs_max = 0.0
        self._false = np.zeros(0, dtype=bool)  # `_no_marks`
        self._min_swing_dps = float(a.events.min_swing_dps)
        self._min_segment_n = a.min_segment_s * fs
        self._max_buffer_n = self._n(settings.max_buffer_s)
        # mounting
        if settings.mounting_wxyz is not None:
            self.mounting_: Rotation | None = rotation_from_wxyz(np.asarray(settings.mounting_wxyz, float))
        elif not a.align_mounting:
            self.mounting_ = Rotation.identity()
        else:
            self.mounting_ = None
        # heading uncertainty of an estimated mounting (deg); None when the frame was given
        self.mounting_uncertainty_deg_: float | None = None
        # an estimated mounting is kept from the store and watched for remounts, as in batch
        self.mountings_ = None
        if self.mounting_ is None:
            self.mountings_ = LiveMountings(athlete_id, session_id, foot, fs, a, prior_mounting)
        self._new_mounting = False  # the next sample starts a segment in a new mounting
        self._matrix = None if self.mounting_ is None else self.mounting_.as_matrix()
        levelled = a.orientation == "zero_velocity"
        if settings.gyr_bias_dps is not None or not levelled:
            self.gyr_bias_dps_: np.ndarray | None = np.asarray(
                settings.gyr_bias_dps if levelled else (0.0, 0.0, 0.0), dtype=float
            ).reshape(3)
        else:
            self.gyr_bias_dps_ = None
        # The stance tilt fit's prior (deg): fixed, or the warm-up's levelling's as the bias, when
        # a warm-up runs anyway (without it: no fit, as batch without a levelling).
        self.anchor_tilt_sd_deg_: float | None = settings.anchor_tilt_sd_deg if levelled else None
        self._needs_sd = (
            self._levelling_prior
            and levelled
            and self.anchor_tilt_sd_deg_ is None
            and (self.mounting_ is None or self.gyr_bias_dps_ is None)
        )
        # Samples of context around a still period that the levelling reads (its gravity margin,
        # the wider one of short periods, and the change of specific force to the neighbours).
        lev = LevellingSettings()
        margin_s = max(lev.gravity_margin_s, lev.short_gravity_margin_s or 0.0) if levelled else 0.0
        self._ctx = int(round(margin_s * fs)) + 2
        self._ready = self.mounting_ is not None and self.gyr_bias_dps_ is not None
        self._warm = SampleColumns(t=1, acc=3, gyr=3, is_gap=1, is_sat=1, is_new=1)
        self._next_attempt = self._n(settings.warmup_s)
        # foot-frame window
        quaternions = {"q": 4} if a.orientation == "madgwick" else {}  # the levelled one has none
        self._buf = SampleColumns(t=1, acc=3, gyr=3, is_gap=1, is_sat=1, is_zv=1, **quaternions)
        self._zv_done = 0
        self._seg0: int | None = None  # global index of the current segment's first sample
        self._finished = False

    # --- public ----------------------------------------------------------------------------
    @property
    def strides_(self) -> pl.DataFrame:
        """Every stride emitted so far (STRIDES_SCHEMA)."""
        return self._emitted.table()

    @property
    def curves_(self) -> pl.DataFrame | None:
        """Mean and SD stance and stride curves of the valid strides emitted so far, per foot and
        activity (the `curves` table a batch run stores for a session, `analytics.curves`); None
        when `LiveSettings.curves` is off."""
        return None if self._curves is None else self._curves.summary_

    @property
    def emissions_(self) -> pl.DataFrame:
        """Per emitted stride: stride_index, next_ic_t, close_t, emitted_t, latency_samples."""
        return pl.DataFrame(self._emissions, schema=EMISSIONS_SCHEMA)

    @property
    def stances_(self) -> pl.DataFrame:
        """Every provisional stance row emitted so far (STANCE_SCHEMA)."""
        return self._stances.table()

    @property
    def stance_emissions_(self) -> pl.DataFrame:
        """Per stance row: ic_t, toe_off_t, emitted_t (newest sample then), toe_off_latency_samples."""
        return pl.DataFrame(self._stance_emissions, schema=STANCE_EMISSIONS_SCHEMA)

    @property
    def latency_samples_(self) -> np.ndarray:
        """Per emitted stride, samples received after its closing sample before it went out."""
        return np.array([e[_LATENCY] for e in self._emissions], dtype=np.int64)

    def push(self, block: SampleBlock) -> LiveOutput:
        """Feed a block of n samples (`ingest.stream_receiver.SampleBlock`: t s, acc m/s², gyr deg/s,
        device or foot frame, optional saturation marks). Returns the strides this block completed
        and the provisional stance rows it gave.
        """
        try:
            self.begin_push(block)
        finally:
            self.resolve()
        return self.end_push()

    def begin_push(self, block: SampleBlock) -> None:
        """`push` up to the metric queries: they wait in `pending_` until `resolve()` (or
        `resolve_together` with other analyzers' queries) runs them; `end_push()` then returns the
        block's output. Nothing else reads the metric values in between."""
        if self._finished:
            raise LiveError("push after finish(): this analyzer's stream has ended")
        t, acc, gyr, sat = self._checked(block.t_s, block.acc_mps2, block.gyr_dps, block.saturated)
        self._start_output()
        if len(t):
            self.samples_seen_ += len(t)
            self._condition(t, acc, gyr, sat)

    def finish(self) -> LiveOutput:
        """End the stream: emit the strides its end closes (as batch does at a recording's end)."""
        if self._finished:
            return _NOTHING
        self._finished = True
        self._start_output()
        try:
            if not self._ready and self._warm.stop > self._warm.start:
                self._attempt_warmup(final=True)
            if self._ready and self._seg0 is not None:
                self._end_segment()
        finally:
            self.resolve()
        if self.mountings_ is not None:  # a remount in the last chunk marks the rows after it
            seen = len(self.mountings_.warnings_)
            self.mountings_.check()
            self.warnings_.extend(self.mountings_.warnings_[seen:])
        return self.end_push()

    @property
    def pending_(self) -> list[PreparedStrides]:
        """The metric queries of the current push not run yet."""
        return [p for p, _ in self._pending]

    def resolve(self, results: list[dict[str, list]] | None = None) -> None:
        """Run the pending metric queries (one query for all), or take their `results` (the
        `metric_rows.evaluate_row_lists` columns of `pending_`, in order), and complete the rows
        waiting on them."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        if results is None:
            results = evaluate_row_lists([p for p, _ in pending], self.settings.analysis.metrics)
        for (_, done), columns in zip(pending, results, strict=True):
            done(columns)

    def end_push(self) -> LiveOutput:
        """The output of the push (or finish) whose queries `resolve` has run."""
        strides, stances = self.end_push_rows()
        if not strides and not stances:
            return _NOTHING  # most pushes
        return LiveOutput(
            rows_frame(strides, STRIDES_SCHEMA) if strides else _NO_STRIDES,
            rows_frame(stances, STANCE_SCHEMA) if stances else _NO_STANCES,
        )

    def end_push_rows(self) -> tuple[list[tuple], list[tuple]]:
        """`end_push` without the tables: the push's strides and stance rows as tuples in the
        columns' order of STRIDES_SCHEMA and STANCE_SCHEMA (what `rows()` of its tables gives)."""
        self._close_emissions(self._push_start)
        return self._new_strides, self._new_stances

    def _start_output(self) -> None:
        self._push_start = len(self._emissions)
        self._new_stances = []
        self._new_strides = []
        self._pending = []

    # --- input -----------------------------------------------------------------------------
    def _checked(self, t_s, acc_mps2, gyr_dps, saturated):
        t = np.asarray(t_s, dtype=float).reshape(-1)
        n = len(t)
        acc = np.asarray(acc_mps2, dtype=float)
        gyr = np.asarray(gyr_dps, dtype=float)
        for name, v in (("acc_mps2", acc), ("gyr_dps", gyr)):
            if v.shape != (n, 3):
                raise LiveError(f"{name} must have shape ({n}, 3) to match t_s, got {v.shape}")
        last_t = self._gaps.last_t_
        # one quick compiled test for the usual block (this runs per packet and stream); rows only
        # if it fails
        if not block_fine(t, acc, gyr, -math.inf if last_t is None else last_t):
            self._refuse(t, [t, acc, gyr])
        sat = np.zeros(n, dtype=bool) if saturated is None else np.asarray(saturated, dtype=bool).reshape(-1)
        if sat.shape != (n,):
            raise LiveError(f"saturated must have shape ({n},) to match t_s, got {sat.shape}")
        return t, acc, gyr, sat

    def _refuse(self, t: np.ndarray, out: list[np.ndarray]) -> None:
        """LiveError naming the first bad row of a block that failed `_checked`'s quick test."""
        n = len(t)
        for name, v in zip(("t_s", "acc_mps2", "gyr_dps"), out, strict=True):
            bad = ~np.isfinite(v.reshape(n, -1)).all(axis=1)
            if bad.any():
                i = int(np.argmax(bad))
                raise LiveError(f"{name}, block row {i}: not a finite number ({v[i].tolist()})")
        last_t = self._gaps.last_t_
        prev = np.concatenate([[-np.inf if last_t is None else last_t], t[:-1]])
        back = t <= prev
        if back.any():
            i = int(np.argmax(back))
            raise LiveError(
                f"t_s, block row {i}: {t[i]:.9g} s is not after the previous sample ({prev[i]:.9g} s)"
            )
        raise AssertionError("unreachable: the block failed the quick test but no row is bad")

    def _condition(self, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray, sat: np.ndarray) -> None:
        """Gaps as ingest treats them (`ingest.gaps`): short ones interpolated (flagged), long ones
        new segments. `is_new` None below: no sample starts a segment (the usual block)."""
        if self._gaps.follows(t, np.concatenate((acc[-1], gyr[-1]))):
            is_new, is_gap = None, self._no_marks(len(t))  # the usual block: no gap, as it is
        else:
            block = self._gaps.push(t, np.concatenate([acc, gyr], axis=1), sat)
            self.warnings_.extend(block.warnings)
            t, acc, gyr = block.t, block.values[:, :3], block.values[:, 3:]
            sat, is_new, is_gap = block.saturated, block.new_segment, block.interpolated
        # Saturation counts where the gyro sits at the largest |gyr| seen so far (batch: in the
        # whole recording), in the device frame as batch reads it.
        marks, self._gyr_abs_max = at_range(gyr, sat, self._gyr_abs_max, GYR_AT_RANGE)
        if self.mountings_ is None:
            self._pass_on(t, acc, gyr, is_gap, marks, is_new)
            return
        # in pieces that end where a chunk of the mounting watch is complete (data-fixed sample
        # counts): a remount found there switches the frame from the next sample on
        ends = self.mountings_.boundaries(len(t))
        if not ends:  # the usual block: within one chunk
            self.mountings_.observe(t, acc, gyr)
            self._pass_on(t, acc, gyr, is_gap, marks, is_new)
            return
        lo = 0
        for hi in (*ends, len(t)):
            if hi > lo:
                sl = slice(lo, hi)
                self.mountings_.observe(t[sl], acc[sl], gyr[sl])
                new = None if is_new is None else is_new[sl]
                self._pass_on(t[sl], acc[sl], gyr[sl], is_gap[sl], marks[sl], new)
                if hi in ends:
                    self._check_mounting()
            lo = hi

    def _no_marks(self, n: int) -> np.ndarray:
        """n False flags (read-only: shared from block to block)."""
        if len(self._false) < n:
            self._false = np.zeros(max(n, 2 * len(self._false)), dtype=bool)
            self._false.flags.writeable = False
        return self._false[:n]

    def _pass_on(self, t, acc, gyr, is_gap, is_sat, is_new) -> None:
        """To the warm-up until the mounting and bias are known, then to the foot-frame path."""
        if self._new_mounting and len(t):
            is_new = np.zeros(len(t), dtype=bool) if is_new is None else is_new.copy()
            is_new[0], self._new_mounting = True, False
        if not self._ready:
            self._warm_up(t, acc, gyr, is_gap, is_sat, is_new)
        else:
            self._feed(t, acc, gyr, is_gap, is_sat, is_new)

    def _check_mounting(self) -> None:
        """A chunk of the mounting watch is complete: on a remount, end the segment measured in the
        old mounting and go on in the new one (`analytics.live_mountings`)."""
        seen = len(self.mountings_.warnings_)
        new = self.mountings_.check()
        self.warnings_.extend(self.mountings_.warnings_[seen:])
        if new is None:
            return
        if self._seg0 is not None:
            self._end_segment()
        old = self._matrix
        self.mounting_ = new.rotation
        self._matrix = self.mounting_.as_matrix()
        self.mounting_uncertainty_deg_ = new.uncertainty_deg
        if self.gyr_bias_dps_ is not None:  # the device's bias, in the new foot frame
            self.gyr_bias_dps_ = self._matrix @ (old.T @ self.gyr_bias_dps_)
        self._new_mounting = True

    # --- mounting --------------------------------------------------------------------------
    def _warm_up(self, t, acc, gyr, is_gap, is_sat, is_new) -> None:
        """Collect device-frame samples until mounting and bias are estimated; then feed them all."""
        w = self._warm
        if is_new is None:
            is_new = self._no_marks(len(t))
        i = 0
        while i < len(t) and not self._ready:
            take = min(len(t) - i, self._next_attempt - (w.stop - w.start))
            sl = slice(i, i + take)
            w.append(
                t=t[sl], acc=acc[sl], gyr=gyr[sl], is_gap=is_gap[sl], is_sat=is_sat[sl], is_new=is_new[sl]
            )
            i += take
            if w.stop - w.start >= self._next_attempt:
                self._attempt_warmup(final=False)
        if i < len(t):
            sl = slice(i, None)
            self._feed(t[sl], acc[sl], gyr[sl], is_gap[sl], is_sat[sl], is_new[sl])

    def _attempt_warmup(self, final: bool) -> None:
        """Estimate what is not fixed (mounting, then gyro bias) from the warm-up samples."""
        s, w = self.settings, self._warm
        where = f"athlete {self.athlete_id}, session {self.session_id}, {self.foot} foot"
        acc, gyr = w.view("acc", w.start, w.stop), w.view("gyr", w.start, w.stop)
        if self.mounting_ is None:
            try:
                if self.mountings_ is not None:  # the stored mounting, or the warm-up's own estimate
                    t0 = float(w.view("t", w.start, w.start + 1)[0])
                    mounting, relaxed = self.mountings_.first(acc, gyr, t0)
                    self.mounting_ = mounting.rotation
                    self.mounting_uncertainty_deg_ = mounting.uncertainty_deg
                else:
                    self.mounting_, relaxed, self.mounting_uncertainty_deg_ = estimate_mounting(
                        acc, gyr, self.sampling_rate_hz, s.analysis, where
                    )
            except MountingFailed as exc:
                errors = exc.errors
                if final:
                    self.warnings_.append(
                        f"{where}: mounting alignment failed, no strides: {'; '.join(errors)}"
                    )
                    return
                self._next_attempt += self._n(s.warmup_retry_s)
                excess = self._next_attempt - self._n(s.max_buffer_s)
                if excess > 0:
                    self.warnings_.append(
                        f"{where}: no mounting estimate in {s.max_buffer_s:g} s ({errors[0]}); "
                        f"dropped the oldest {excess} samples"
                    )
                    w.trim(w.start + excess)
                    w.view("is_new", w.start, w.start + 1)[:] = True
                    self._next_attempt -= excess
                return
            self.warnings_.extend(relaxed)
            self._matrix = self.mounting_.as_matrix()
        if self.gyr_bias_dps_ is None or (self._needs_sd and self.anchor_tilt_sd_deg_ is None):
            acc_f, gyr_f = to_foot_rows(self._matrix, np.ascontiguousarray(acc), np.ascontiguousarray(gyr))
            zv = ZeroVelocityDetector(s.analysis.zero_velocity).detect(acc_f, gyr_f, self.sampling_rate_hz)
            levelled = LevelledStrapdown(levelling_settings(s.analysis)).estimate(
                acc_f, gyr_f, zv.zero_velocity_, self.sampling_rate_hz, w.view("t", w.start, w.stop)
            )
            if self.gyr_bias_dps_ is None:
                self.gyr_bias_dps_ = levelled.gyr_bias_dps_
            if self.anchor_tilt_sd_deg_ is None and self._needs_sd:
                self.anchor_tilt_sd_deg_ = levelled.anchor_tilt_sd_deg_
        self._ready = True
        rows = {
            k: w.view(k, w.start, w.stop).copy() for k in ("t", "acc", "gyr", "is_gap", "is_sat", "is_new")
        }
        w.trim(w.stop)
        self._feed(rows["t"], rows["acc"], rows["gyr"], rows["is_gap"], rows["is_sat"], rows["is_new"])

    # --- foot-frame path -------------------------------------------------------------------
    def _feed(self, t, acc, gyr, is_gap, is_sat, is_new) -> None:
        """Rotate into the foot frame and run the window; a new segment first ends the old one."""
        acc, gyr = to_foot_rows(
            self._matrix, np.ascontiguousarray(acc, dtype=float), np.ascontiguousarray(gyr, dtype=float)
        )
        if is_new is None or not is_new.any():  # the usual block: all in the current segment
            self._append(t, acc, gyr, is_gap, is_sat)
            return
        bounds = np.concatenate([np.flatnonzero(is_new), [len(t)]])
        if bounds[0] != 0:
            bounds = np.concatenate([[0], bounds])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if hi <= lo:
                continue
            if is_new[lo]:
                if self._seg0 is not None:
                    self._end_segment()
                self._start_segment()
            self._append(t[lo:hi], acc[lo:hi], gyr[lo:hi], is_gap[lo:hi], is_sat[lo:hi])

    def _start_segment(self) -> None:
        a = self.settings.analysis
        self._seg0 = self._buf.stop
        self._buf.trim(self._buf.stop)
        self._zv_done = self._seg0
        self._anchor = self._seg0
        self._ends: list[int] = []  # still-period ends waiting for their context to be final
        self._last_ic = -1
        self._armed = False
        self._zv = ZeroVelocityStream(
            self.sampling_rate_hz, a.zero_velocity, self.settings.zero_velocity_chunk_s, self._zv_margin
        )
        self._madgwick = (
            MadgwickStream(a.madgwick, sampling_rate_hz=self.sampling_rate_hz)
            if a.orientation == "madgwick"
            else None
        )

    def _append(self, t, acc, gyr, is_gap, is_sat) -> None:
        """Append samples in pieces of at most one zero-velocity chunk, so each step is data-fixed."""
        chunk = self._zv.chunk_
        if len(t) <= chunk:  # a packet
            self._append_piece(t, acc, gyr, is_gap, is_sat)
            return
        for lo in range(0, len(t), chunk):
            sl = slice(lo, lo + chunk)
            self._append_piece(t[sl], acc[sl], gyr[sl], is_gap[sl], is_sat[sl])

    def _append_piece(self, t, acc, gyr, is_gap, is_sat) -> None:
        """Append at most one zero-velocity chunk of samples: flags, windows and stance rows."""
        if self._madgwick is not None:
            q = self._madgwick.update(acc, gyr)
            self._buf.append(t=t, acc=acc, gyr=gyr, q=q, is_gap=is_gap, is_sat=is_sat)
        else:  # the levelled orientation has no quaternion column
            self._buf.append(t=t, acc=acc, gyr=gyr, is_gap=is_gap, is_sat=is_sat)
        if not self.settings.stances:
            starts = ()
        else:
            starts, self._armed = swing_starts(gyr, self._min_swing_dps, self._armed)
        if not len(starts):  # the usual piece: no swing starts in it
            flags = self._zv.push(acc, gyr)
            if len(flags):
                self._new_flags(flags)
            return
        first, seg = self._buf.stop - len(t), self._seg0
        # Zero velocity in pieces that end at each swing start, then that stance: strides
        # closed by earlier samples go out first, as they would sample by sample.
        a = 0
        for end, swing in [*((int(e), True) for e in starts), (len(t), False)]:
            if end > a:
                flags = self._zv.push(acc[a:end], gyr[a:end])
                if len(flags):
                    self._new_flags(flags)
                if self._seg0 != seg:  # cut: the piece's rest was fed again to the new segment
                    break
            if swing:
                self._stance(first + end)
            a = end

    def _new_flags(self, flags: np.ndarray) -> None:
        """Store final zero-velocity flags, run a window at each still period that starts among them."""
        lo = self._zv_done
        self._buf.view("is_zv", lo, lo + len(flags))[:] = flags
        self._zv_done = lo + len(flags)
        first = max(lo, self._seg0 + 1)
        if first < self._zv_done:
            # a still period ends at p1 (zv[p1 - 1] and not zv[p1]): everything before it is final
            ends = still_ends(self._buf.view("is_zv", first - 1, self._zv_done))
            if len(ends):
                self._ends.extend((ends + (first - 1)).tolist())
        while self._ends and self._ends[0] + self._ctx <= self._zv_done:
            p1 = self._ends.pop(0)
            if p1 - self._seg0 >= self._min_segment_n:
                self._window(p1 + self._ctx, final=False, close=p1)
        if self._zv_done - self._anchor > self._max_buffer_n:
            self._cut()

    def _cut(self) -> None:
        """No stride closed for max_buffer_s: end the segment at the final flags, continue anew."""
        b = self._buf
        cut = self._zv_done
        rest = {k: b.view(k, cut, b.stop).copy() for k in ("t", "acc", "gyr", "is_gap", "is_sat")}
        where = float(b.view("t", cut - 1, cut)[0])
        self.warnings_.append(
            f"no stride closed for {self.settings.max_buffer_s:g} s before t = {where:.6g} s: "
            "the bout is cut there as at a recording gap"
        )
        b.stop = cut  # drop the unflagged tail; it is fed again to the new segment
        self._window(cut, final=True, close=cut - 1)
        self._start_segment()
        if len(rest["t"]):
            self._append(rest["t"], rest["acc"], rest["gyr"], rest["is_gap"], rest["is_sat"])

    def _end_segment(self) -> None:
        """The segment's end is known: final flags to its end, then every remaining stride."""
        flags = self._zv.finish()
        if len(flags):
            lo = self._zv_done
            self._buf.view("is_zv", lo, lo + len(flags))[:] = flags
            self._zv_done = lo + len(flags)
        n_seg = self._buf.stop - self._seg0
        if n_seg < self.settings.analysis.min_segment_s * self.sampling_rate_hz:
            self.warnings_.append(
                f"athlete {self.athlete_id}, session {self.session_id}, {self.foot} foot: skipped a "
                f"segment of {n_seg / self.sampling_rate_hz:.1f} s "
                f"(< {self.settings.analysis.min_segment_s} s)"
            )
        elif self._buf.stop > self._anchor:
            self._window(self._buf.stop, final=True, close=self._buf.stop - 1)
        self._seg0 = None

    # --- the window ------------------------------------------------------------------------
    def _window(self, stop: int, final: bool, close: int) -> None:
        """Batch events on [anchor, stop); emit the strides in it that later data cannot change."""
        # Context before the still period: batch levels on its samples +- a margin, weighted
        # by the change of specific force from the sample before.
        a0 = max(self._anchor - self._ctx, self._seg0)
        b = self._buf
        zv = b.view("is_zv", a0, stop).copy()
        seg = self._segment(a0, stop, zv)
        ev = seg.event_columns  # numpy columns: a table is built only of the emitted rows
        if ev.height == 0:
            return
        ic = ev[IC_IDX] + a0
        ff = ev[FOOT_FLAT_IDX]
        emit = ic > self._last_ic
        if a0 != self._seg0:
            emit &= np.array([c != CONTEXT_GAIT_START for c in ev[CONTEXT]], dtype=bool)
        if not final:
            emit[-1] = False
            if self._fitting():
                emit &= self._fit_settled(ev, zv)
        if not emit.any():
            return
        # only the emitted rows' metrics (each with what the rest of the window gives it)
        prepared = seg.prepare_strides(ev, np.flatnonzero(emit))
        # The emitted events' metric rows in IC order (column by column: on these few rows each
        # Polars query cost more than the rows' numbers).
        chosen = np.flatnonzero(emit)
        chosen = chosen[np.argsort(ev[IC_IDX][chosen], kind="stable")]
        picked = ev[STRIDE_INDEX][chosen].tolist()
        flags = self._sample_flags(ev[IC_IDX][chosen], ev[NEXT_IC_IDX][chosen], a0)
        k = len(chosen)
        numbered = list(range(self._n_emitted, self._n_emitted + k))
        sig = seg.signal_arrays() if self._curves is not None else None
        close_t = float(b.view("t", close, close + 1)[0])

        def done(columns: dict[str, list]) -> None:
            # the rest of the window, once the metric query has run (`resolve`)
            have = columns[STRIDE_INDEX]
            if have != picked:
                row_of = {i: r for r, i in enumerate(have)}
                order = [row_of[i] for i in picked]
                columns = {c: [v[r] for r in order] for c, v in columns.items()}
            columns[STRIDE_INDEX] = numbered
            rows = list(zip(*(columns[c] for c in STRIDES_SCHEMA), strict=True))
            rows = _with_sample_flags(rows, STRIDES_SCHEMA, flags)
            self._emitted.extend(rows)
            self._new_strides.extend(rows)
            if sig is not None:
                at = _STRIDE_AT
                self._curves.add_foot(
                    self.foot,
                    [r[at[ACTIVITY]] for r in rows],
                    np.array([r[at[STEADY]] is True for r in rows], dtype=bool),
                    {c: np.array([r[at[c]] for r in rows], dtype=float) for c in _CURVE_TIMES},
                    sig[T],
                    sig[PRONATION_DEG],
                    sig[PITCH_DEG],
                )
            for idx, nic in zip(numbered, columns[NEXT_IC_T], strict=True):
                self._emissions.append(
                    {
                        STRIDE_INDEX: idx,
                        NEXT_IC_T: nic,
                        _CLOSE_T: close_t,
                        "_close": close,
                        _EMITTED_T: None,
                        _LATENCY: None,
                    }
                )

        self._pending.append((prepared, done))
        self._n_emitted += k
        last = np.flatnonzero(emit)[-1]
        self._last_ic = int(ic[last])
        # Next window: from the start of the still period at or before the last emitted foot-flat
        # (the next stride's swing comes after it).
        starts = np.flatnonzero(zv & ~np.concatenate([[False], zv[:-1]]))
        before = starts[starts <= ff[last]]
        if self._fitting():
            # From the period before the one whose middle is at or before that foot-flat: the local
            # tilt fit of the next stride's foot-flat reads the motion from the middle of the
            # period before it, which a window levels as batch does only after its first
            # levelling anchor.
            periods = mask_to_periods(zv)
            at_or_before = np.count_nonzero(tilt_fit_nodes(periods) <= ff[last])
            before = periods[: max(at_or_before - 1, 0), 0]
        before = before[before + a0 > self._anchor]
        if len(before):
            self._anchor = a0 + int(before[-1])
            b.trim(max(self._anchor - self._ctx, self._seg0))

    def _fitting(self) -> bool:
        """The windows run the stance tilt fit (`ZuptSettings.tilt_fit_sd_mps`), i.e. it has its prior."""
        if self.settings.analysis.zupt.tilt_fit_sd_mps is None:
            return False
        return not self._levelling_prior or self.anchor_tilt_sd_deg_ is not None

    @staticmethod
    def _fit_settled(ev: EventColumns, zv: np.ndarray) -> np.ndarray:
        """Per event row: the local stance tilt fit (`ZuptSettings.tilt_fit_span` 1) gives the
        still period at or after its next foot-flat (the first whose middle is not before it) what
        batch gives it: the motion up to the middle of the period after it, levelled as batch
        levels it, i.e. up to the levelling anchor of the period after that one (the anchor, a
        weighted centre, can lie before a period's middle). The row waits for that period
        otherwise (about one stride)."""
        periods = mask_to_periods(zv)
        complete = int(np.count_nonzero(periods[:, 1] < len(zv)))
        ic, ff, nic = ev[IC_IDX], ev[FOOT_FLAT_IDX], ev[NEXT_IC_IDX]
        # the next foot-flat (analytics.metrics): the following stride's when it starts at this
        # stride's next IC, else the first still sample after next IC; the later of the two bounds
        order = np.argsort(ic, kind="stable")
        following = np.full(len(ic), -1)
        following[order[:-1]] = order[1:]
        chained = (following >= 0) & (ic[np.maximum(following, 0)] == nic)
        still = np.flatnonzero(zv)
        after = np.searchsorted(still, nic)
        first_still = np.where(after < len(still), still[np.minimum(after, len(still) - 1)], len(zv))
        nff = np.where(chained, ff[np.maximum(following, 0)], first_still)
        period = np.searchsorted(tilt_fit_nodes(periods), nff, side="left")
        return period + 2 < complete

    # --- provisional stance rows -----------------------------------------------------------
    def _stance(self, stop: int) -> None:
        """Provisional row of the stride whose toe-off started the swing that sample stop - 1 is in.

        The batch code on the window up to that sample (the zero-velocity stream has been fed up to
        it, whatever the block sizes): the flags not final yet are its provisional ones
        (`ZeroVelocityStream.peek`), the orientation is levelled at the still periods so far (the
        correction that the next still period will spread back over this swing is not known yet)
        and the detector's open-end stride gives the events. Only metrics of the stance are kept
        (STANCE_SCHEMA); the final stride row follows once it closes (see the module doc).
        """
        b = self._buf
        # The zero-velocity stream must have been fed exactly up to `stop` (not so after a cut).
        if not self._ready or self._seg0 is None or self._seg0 + self._zv.samples_seen_ != stop:
            return
        a0 = max(self._anchor - self._ctx, self._seg0, b.start)
        if stop - a0 < 3:
            return
        zv = b.view("is_zv", a0, stop).copy()
        tail = self._zv.peek()  # flags of [_zv_done, stop)
        skip = max(a0 - self._zv_done, 0)
        zv[max(self._zv_done - a0, 0) :] = tail[skip:]
        # no position or velocity: no stance metric reads them
        seg = self._segment(a0, stop, zv, integrate=False, open_end=True)
        row = seg.open_columns
        if row.height == 0:
            return
        ic, to = int(row[IC_IDX][0]) + a0, int(row[TOE_OFF_IDX][0]) + a0
        if ic <= max(self._stance_ic, self._last_ic):
            return
        prepared = seg.prepare_strides(row)
        flags = self._sample_flags(row[IC_IDX], row[NEXT_IC_IDX], a0)
        emission = {
            IC_T: float(row[IC_T][0]),
            TOE_OFF_T: float(row[TOE_OFF_T][0]),
            _EMITTED_T: float(b.view("t", b.stop - 1, b.stop)[0]),
            _TOE_OFF_LATENCY: b.stop - 1 - to,
        }

        def done(m: dict[str, list]) -> None:
            # the rest of the stance row, once the metric query has run (`resolve`)
            # The metrics' own validity also wants the next foot-flat, which a stance cannot have.
            # (The gait start's metrics that read its ic_t are null by definition, not missing.)
            start = m[CONTEXT][0] == CONTEXT_GAIT_START
            measured = _STANCE_MEASURED_AT_START if start else STANCE_METRICS
            missing = any(v is None or not math.isfinite(v) for v in (m[c][0] for c in measured))
            reason = row[REASON][0] or (REASON_NO_SIGNAL if missing else None)
            own = {VALID: reason is None, REASON: None if reason is None else str(reason)}
            out = [tuple(own[c] if c in own else m[c][0] for c in STANCE_SCHEMA)]
            out = _with_sample_flags(out, STANCE_SCHEMA, flags)
            self._stances.extend(out)
            self._new_stances.extend(out)
            self._stance_emissions.append(emission)

        self._pending.append((prepared, done))
        self._stance_ic = ic

    def _segment(self, a0: int, stop: int, zv: np.ndarray, **options) -> Segment:
        """The shared segment analysis (`analytics.segment`) of window rows [a0, stop) with flags zv.

        Orientation: the streaming Madgwick's, or the levelled strapdown with the warm-up's bias."""
        b = self._buf
        fs = self.sampling_rate_hz
        t = b.view("t", a0, stop)
        acc = np.ascontiguousarray(b.view("acc", a0, stop))
        gyr = np.ascontiguousarray(b.view("gyr", a0, stop))
        if self._madgwick is not None:
            q = b.view("q", a0, stop).copy()
        else:
            q = segment_orientation(
                acc, gyr, zv, fs, t, self.settings.analysis, gyr_bias_dps=self.gyr_bias_dps_
            )
        keys = (self.athlete_id, self.session_id, self.foot)
        return analyze_segment(
            acc,
            gyr,
            t,
            fs,
            keys,
            self.settings.analysis,
            zero_velocity=zv,
            q_wxyz=q,
            anchor_tilt_sd_deg=self.anchor_tilt_sd_deg_,
            **options,
        )

    def _sample_flags(self, ic_idx: np.ndarray, next_ic_idx: np.ndarray, a0: int) -> tuple[np.ndarray, ...]:
        """Per row (IC_IDX, NEXT_IC_IDX: window indices from a0): whether its samples between them
        include interpolated ones, and gyro-saturated ones (the buffer as it is now)."""
        b = self._buf
        lo, hi = ic_idx + a0, next_ic_idx + a0
        reasons = []
        for name in ("is_gap", "is_sat"):
            flags = b.view(name, a0, b.stop)
            if not flags.any():  # the usual window: no row spans one
                reasons.append(np.zeros(len(lo), dtype=bool))
                continue
            c = np.concatenate([[0], np.cumsum(flags)])
            reasons.append((c[np.clip(hi, a0, b.stop) - a0] - c[np.clip(lo, a0, b.stop) - a0]) > 0)
        return tuple(reasons)

    def _close_emissions(self, start: int) -> None:
        """The latency of the strides emitted since emission number `start`."""
        newest = self._gaps.last_t_
        for e in self._emissions[start:]:
            if "_close" not in e:
                continue  # filled by an earlier call for this push
            e[_EMITTED_T] = newest
            e[_LATENCY] = (
                int(round((newest - e[_CLOSE_T]) * self.sampling_rate_hz)) if newest is not None else 0
            )
            del e["_close"]
