"""The mountings of a live stream: kept from the athlete's store, and remounts found as they happen.

A stream is measured in the frame batch and upload sessions of that athlete's foot use
(`analytics.mountings`), so that trends hold one frame whatever way a session arrived:

- **at the warm-up** (`LiveMountings.first`): the stream's own estimate from its warm-up samples
  is compared with the prior the caller passes (the athlete's stored mounting of that foot and
  device, `prior_mountings`) by `MountingTracker.piece`, the code batch runs per piece: when it
  fits, the prior's rotation is used unchanged (the same frame, bit for bit, from the first
  stride); when not, a new mounting starts ("remount_between_sessions") in the stream's own
  estimate; without a prior the stream's estimate is its first mounting.
- **while streaming** (`observe` / `check`): every `chunk_s` of device-frame samples the strides
  of that chunk and their foot-flat up and swing axis are found (`stride_directions`, batch's
  remount detection input) and `hardware.remount.RemountDetector` runs on the strides since the
  current mounting began. A jump needs `window_strides` strides after it, so it is found 10 to
  about 30 strides late. Then a new mounting ("remount_within_recording") is estimated from the
  samples since the jump and the analyzer goes on in it from the next sample, as a new segment.
  The strides emitted in between were measured in the old frame after the pod moved: they carry
  the new mounting's id, `remount` true, and `valid = false` with reason "remount" (`label`).
- **at a store**: `label` adds `mounting_uncertainty_deg`, `mounting_id` and `remount` with
  `mounting_rule`, the one row rule the messages to subscribers use too (the same answers as
  batch's `analytics.pipeline.with_mounting_uncertainty` and `with_mountings`), and `used` counts
  the strides per mounting for `record_mountings`, the same code as the upload jobs and the batch.

Chunks fall at fixed sample counts from the stream's start, so every decision is the same
whatever the block sizes and after a rebuild from the stream's log. The first chunk is longer by a
phase fixed by the stream's keys (`chunk_phase`), so that streams started together do not all
check in the same moment.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from strideflow.analytics.live_buffer import SampleColumns
from strideflow.analytics.mountings import (
    FIRST,
    Mounting,
    MountingTracker,
    mountings_used,
    remount_reason,
    stride_directions,
)
from strideflow.analytics.segment import MountingFailed
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware.remount import RemountDetector, _nanmedian_rows
from strideflow.hardware.schema import (
    FOOT,
    IC_T,
    MOUNTING_ID,
    MOUNTING_UNCERTAINTY_DEG,
    REASON,
    REMOUNT,
    STEADY,
    VALID,
    steady_expr,
)

__all__ = [
    "REASON_REMOUNT",
    "LiveMountingSettings",
    "LiveMountings",
    "LivePiece",
    "chunk_phase",
    "label_strides",
    "mounting_rule",
]

# a stride measured in the previous mounting's frame after the pod moved (found later, see above)
REASON_REMOUNT = "remount"


def chunk_phase(keys: tuple[str, ...], chunk: int) -> int:
    """Samples (0 .. chunk - 1) by which a stream's first chunk is longer than `chunk`: a fixed
    function of the stream's keys (CRC-32 of them joined), so the same stream always gets the same
    chunks (after a rebuild from its log too), while the streams of a team that start together
    check at different moments: with one grid for all, every stream's check fell in the same
    packet period (~1.6 ms each, 100 streams per analysis worker at once; benchmarks/README.md,
    session 17)."""
    return zlib.crc32("\x1f".join(keys).encode()) % chunk


@dataclass(frozen=True)
class LiveMountingSettings:
    """Settings of `LiveMountings` (times in s).

    chunk_s: device-frame samples per remount check (the first chunk is longer by up to one
        chunk, `chunk_phase`). The stride finder needs `min_strides` (3)
        strides between still periods in a chunk: 10 s chunks missed one of twelve on a simulated
        walk/run change, 20 s (about 18 walking strides) none; cost 1.3-1.6 ms per 20 s chunk
        (0.1 ms per stride, against about 16 ms per stride of the live analysis).
    max_strides: per-stride directions kept for the detector (its scatter and windows), newest.
    """

    chunk_s: float = 20.0
    max_strides: int = 200

    def __post_init__(self) -> None:
        if not self.chunk_s > 0 or self.max_strides < 1:
            raise ValueError("chunk_s must be > 0 and max_strides >= 1")


@dataclass(frozen=True)
class LivePiece:
    """A mounting of the stream: the rows after `switch_t_s` (s; None: from the start) are measured
    in its frame; the strides from its `start_t_s` up to then were measured in the one before."""

    mounting: Mounting
    switch_t_s: float | None = None


class LiveMountings:
    """The mountings of one foot's live stream (module docstring).

    Parameters
    ----------
    athlete_id, session_id, foot
        The stream's keys.
    sampling_rate_hz
        Its rate (Hz).
    analysis
        The analysis settings (`mounting`, `mounting_fallback`, `mounting_window_s`, `remount`:
        None, no remount detection and a prior is used as it is, as in batch).
    prior
        The athlete's stored mounting of this foot and device (`prior_mountings`), or None.
    settings
        `LiveMountingSettings`.

    Attributes
    ----------
    pieces_ : tuple[LivePiece, ...]
        The mountings so far, in time order (replaced, never changed in place: a reader's copy holds).
    warnings_, remounts_ : list[str]
        Warnings, and one line per remount, in words.

    Notes
    -----
    strideflow's own heuristic: batch's `MountingTracker` and `hardware.remount` on chunks.
    """

    def __init__(
        self,
        athlete_id: str,
        session_id: str,
        foot: str,
        sampling_rate_hz: float,
        analysis: AnalysisSettings,
        prior: Mounting | None = None,
        settings: LiveMountingSettings = LiveMountingSettings(),
    ) -> None:
        self.keys = (athlete_id, session_id, foot)
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.analysis = analysis
        self.prior = prior
        self.settings = settings
        self.where = f"athlete {athlete_id}, session {session_id}, {foot} foot"
        self._tracker = MountingTracker(analysis)
        self._chunk = max(int(round(settings.chunk_s * self.sampling_rate_hz)), 1)
        self._chunk_start = 0  # sample number where the current chunk began
        self._chunk_end = self._chunk + chunk_phase(self.keys, self._chunk)  # and where it ends
        self._buf = SampleColumns(t=1, acc=3, gyr=3)  # the last two chunks, device frame
        self._up = np.zeros((0, 3))  # per stride since the current mounting began: foot-flat up,
        self._swing = np.zeros((0, 3))  # swing axis (device frame)
        self._stride_t = np.zeros((0, 2))  # and (start, stop) times (s)
        self.pieces_: tuple[LivePiece, ...] = ()
        self.warnings_: list[str] = []
        self.remounts_: list[str] = []

    # --- the warm-up ---------------------------------------------------------------------------
    def first(self, acc_mps2: np.ndarray, gyr_dps: np.ndarray, start_t_s: float) -> tuple[Mounting, tuple]:
        """The stream's first mounting from its warm-up samples (device frame, m/s², deg/s):
        (mounting, warnings). Raises `analytics.segment.MountingFailed` as `estimate_mounting`."""
        mounting, notes, remount = self._tracker.piece(
            acc_mps2, gyr_dps, start_t_s, self.sampling_rate_hz, self.keys, self.where, 0, prior=self.prior
        )
        self.pieces_ = (LivePiece(mounting),)
        if remount is not None:
            self.remounts_.append(remount)
            notes = (*notes, remount)
        return mounting, notes

    # --- while streaming -----------------------------------------------------------------------
    def boundaries(self, n: int) -> list[int]:
        """Offsets (1..n) in the next `n` samples after which a chunk is complete (`check` then)."""
        first = self._chunk_end - self._buf.stop
        return list(range(first, n + 1, self._chunk)) if first <= n else []

    def observe(self, t_s: np.ndarray, acc_mps2: np.ndarray, gyr_dps: np.ndarray) -> None:
        """Take device-frame samples, at most up to the next chunk's end (`boundaries`)."""
        self._buf.append(t=t_s, acc=acc_mps2, gyr=gyr_dps)

    def check(self) -> Mounting | None:
        """At a chunk's end, or at the stream's end: the strides of the samples since the last
        check join the detector's; the new mounting when a remount is found (the analyzer switches
        to it; at the stream's end it only marks the rows), else None."""
        b = self._buf
        c0 = self._chunk_start
        if c0 >= b.stop:
            return None
        self._chunk_start, self._chunk_end = b.stop, b.stop + self._chunk
        t = b.view("t", c0, b.stop)
        acc, gyr = b.view("acc", c0, b.stop), b.view("gyr", c0, b.stop)
        est, up, swing = stride_directions(acc, gyr, self.sampling_rate_hz, self.analysis)
        if est is not None:
            # a chunk's swing axes are signed by its own estimate: keep them on the side of the rest
            # (`np.nanmedian(self._swing, axis=0)`, compiled: NumPy's masked median cost ~0.3 ms)
            ref = (
                _nanmedian_rows(np.ascontiguousarray(self._swing.T))
                if np.isfinite(self._swing).any()
                else None
            )
            if ref is not None and np.nansum(swing @ ref) < 0:
                swing = -swing
            times = np.column_stack((t[est.strides_[:, 0]], t[est.strides_[:, 1]]))
            keep = self.settings.max_strides
            self._up = np.vstack((self._up, up))[-keep:]
            self._swing = np.vstack((self._swing, swing))[-keep:]
            self._stride_t = np.vstack((self._stride_t, times))[-keep:]
        found = None
        if self.pieces_ and self.analysis.remount is not None and est is not None:
            found = self._remount(float(t[-1]))
        b.trim(c0)  # keep this chunk: the samples of the next remount may start in it
        return found

    def _remount(self, last_t_s: float) -> Mounting | None:
        det = RemountDetector(self.analysis.remount).detect(self._up, self._swing)
        if not det.remounts_:
            return None
        k = det.remounts_[0]  # a later one is found again among the strides after this one
        jump_t = float(self._stride_t[k - 1, 1])  # the still period before the first stride moved
        reason = remount_reason(jump_t, det.jumps_[0], det.tolerance_deg_)
        b = self._buf
        t = b.view("t", b.start, b.stop)
        lo = b.start + int(np.searchsorted(t, jump_t))
        try:
            mounting, notes, line = self._tracker.piece(
                b.view("acc", lo, b.stop),
                b.view("gyr", lo, b.stop),
                jump_t,
                self.sampling_rate_hz,
                self.keys,
                self.where,
                len(self.pieces_),
                within=reason,
            )
        except MountingFailed as exc:
            # tried again at the next chunk with more samples after the jump
            self.warnings_.append(f"{self.where}: {reason}; no new mounting estimated yet: {exc.errors[0]}")
            return None
        self.pieces_ = (*self.pieces_, LivePiece(mounting, switch_t_s=last_t_s))
        self.warnings_.extend((*notes, line or reason))
        self.remounts_.append(line or reason)
        moved = self._stride_t[:, 0] >= jump_t
        self._up, self._swing, self._stride_t = self._up[moved], self._swing[moved], self._stride_t[moved]
        return mounting

    # --- at a store ----------------------------------------------------------------------------
    def label(self, strides: pl.DataFrame) -> pl.DataFrame:
        """`label_strides` with this stream's pieces."""
        return label_strides(strides, self.pieces_, self.keys[2], self.keys[1])

    def used(self, strides: pl.DataFrame) -> list[tuple[Mounting, int]]:
        """(mounting, strides measured in it) of labelled `strides`, for `record_mountings`."""
        return used_mountings(strides, self.pieces_, self.keys[2])


MountingColumns = tuple[float | None, str | None, bool | None, bool]


def mounting_rule(
    pieces: tuple[LivePiece, ...], foot: str, session_id: str
) -> Callable[[str | None, float | None], MountingColumns]:
    """The mounting columns of one row of a stream, from its foot and IC (s): the one rule the
    stored rows (`label_strides`) and the messages to subscribers (`service.live.publish`) use.

    Returns (`mounting_uncertainty_deg`: the largest of the mountings so far, null if one has
    none; `mounting_id`: the mounting in use at the IC, the first for a row without IC; `remount`:
    that mounting began with a remount in this session; stale: measured in the old frame after a
    remount, IC from the new mounting's start up to its switch). All null (and not stale) without
    pieces, as for a frame that was given, and for another foot's row. The same answers as
    batch's `with_mounting_uncertainty` and `with_mountings`.
    """
    if not pieces:
        return lambda row_foot, ic: (None, None, None, False)
    uncertainty = [p.mounting.uncertainty_deg for p in pieces]
    worst = float(max(uncertainty)) if all(u is not None for u in uncertainty) else None
    # (start s, id, began with a remount in this session) per mounting; the first holds from the start
    spans = [
        (m.start_t_s, m.mounting_id, m.started != FIRST and m.first_session_id == session_id)
        for m in (p.mounting for p in pieces)
    ]
    stale_spans = [(p.mounting.start_t_s, p.switch_t_s) for p in pieces[1:] if p.switch_t_s is not None]

    def rule(row_foot: str | None, ic: float | None) -> MountingColumns:
        if row_foot != foot:
            return None, None, None, False
        _, mounting_id, remount = spans[0]
        if ic is None:
            return worst, mounting_id, remount, False
        for start, later_id, later_remount in spans[1:]:
            if ic >= start:
                mounting_id, remount = later_id, later_remount
        return worst, mounting_id, remount, any(start <= ic <= switch for start, switch in stale_spans)

    return rule


def label_strides(
    strides: pl.DataFrame, pieces: tuple[LivePiece, ...], foot: str, session_id: str
) -> pl.DataFrame:
    """One foot's live `strides` with batch's mounting columns (`mounting_uncertainty_deg`,
    `mounting_id`, `remount`; null without pieces, as for a frame that was given), and the strides
    measured in the old frame after a remount invalid ("remount"): `mounting_rule` on each row."""
    rule = mounting_rule(pieces, foot, session_id)
    rows = [rule(f, ic) for f, ic in zip(strides.get_column(FOOT), strides.get_column(IC_T), strict=True)]
    uncertainty, mounting_id, remount, stale = (
        (list(c) for c in zip(*rows, strict=True)) if rows else ([],) * 4
    )
    old_frame = pl.col(VALID) & pl.Series(stale, dtype=pl.Boolean)
    return strides.with_columns(
        pl.Series(MOUNTING_UNCERTAINTY_DEG, uncertainty, dtype=pl.Float64),
        pl.Series(MOUNTING_ID, mounting_id, dtype=pl.String),
        pl.Series(REMOUNT, remount, dtype=pl.Boolean),
    ).with_columns(
        pl.when(old_frame).then(pl.lit(REASON_REMOUNT)).otherwise(pl.col(REASON)).alias(REASON),
        (pl.col(VALID) & ~old_frame).alias(VALID),
        *((steady_expr(pl.col(VALID) & ~old_frame).alias(STEADY),) if STEADY in strides.columns else ()),
    )


def used_mountings(
    strides: pl.DataFrame, pieces: tuple[LivePiece, ...], foot: str
) -> list[tuple[Mounting, int]]:
    """(mounting, strides) of a stream's labelled strides, by `analytics.mountings.mountings_used`."""
    return mountings_used([strides], [{foot: [p.mounting for p in pieces]}] if pieces else [])
