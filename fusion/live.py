"""Streaming zero-velocity detection whose flags equal the batch detector's on the whole recording.

`ZeroVelocityDetector` (fusion.zero_velocity) decides each sample from the samples around it only:
the SHOE window, the merging of short motion gaps, the minimum still duration and, farthest, the
running fallback (an anchor is the minimum of the short-window statistic over +-separation and
must be a separation away from every still sample and from the previous candidate). So a flag is
final once `margin_samples` samples on each side are known, and `ZeroVelocityStream` runs the
batch detector (its compiled form, `StillMask`) on fixed chunks of `chunk_s` with that much context
on both sides, keeping only the chunk. The chunks are fixed by sample count, never by how the
samples arrived, so the flags do not depend on the block sizes fed; at `finish()` the last chunk
sees the recording's end exactly as the batch run does (its edge windows are clipped the same way).
"""

from __future__ import annotations

import math

import numpy as np

from strideflow.fusion.zero_velocity import StillMask, ZeroVelocitySettings


def zero_velocity_margin_samples(settings: ZeroVelocitySettings, sampling_rate_hz: float) -> int:
    """Samples of context on each side after which a batch zero-velocity flag cannot change."""
    fs = float(sampling_rate_hz)
    half = max(int(round(settings.window_s * fs / 2.0)), 1)
    # still before the fallback: SHOE window, then merged gaps, then the minimum duration
    local = half + math.ceil(settings.merge_gap_s * fs) + math.ceil(settings.min_duration_s * fs) + 2
    sep = max(int(round(settings.fallback_separation_s * fs)), 1)
    half_short = max(int(round(settings.fallback_window_s * fs / 2.0)), 1)
    half_mark = max(int(round(settings.fallback_duration_s * fs / 2.0)), 0)
    if settings.fallback_threshold is None:
        before_guided = local + 2
    else:
        # a marked sample <- its anchor (half_mark) <- the previous candidate (sep) <- that
        # candidate's local-minimum window and distance to still samples (sep + the larger local radius)
        before_guided = half_mark + 2 * sep + max(local + 1, half_short) + 4
    if settings.swing_gyr_dps is None:
        return before_guided
    # a marked sample <- its swing-guided anchor (half_mark) <- the mid-swings around it (up to
    # swing_max_gap_s away, each the minimum within +-sep) and the still flags between them
    gap = math.ceil(settings.swing_max_gap_s * fs)
    return half_mark + gap + max(sep, before_guided, half_short) + 4


class ZeroVelocityStream:
    """Zero-velocity flags of a foot-frame stream, equal to `ZeroVelocityDetector` on the whole of it.

    `push(acc_mps2, gyr_dps)` ((n, 3) each, m/s² and deg/s) returns the flags that became final
    (those of the samples `done_` .. `done_ + k`); `finish()` returns the rest. Flags lag the input
    by `margin_` + up to `chunk_` samples. Memory: the last 2 * margin + chunk samples, in arrays
    kept from push to push. Each chunk is one compiled call (`fusion.zero_velocity.StillMask`).
    """

    def __init__(
        self,
        sampling_rate_hz: float,
        settings: ZeroVelocitySettings | None = None,
        chunk_s: float = 0.2,
        margin_samples: int | None = None,
    ) -> None:
        self.settings = settings if settings is not None else ZeroVelocitySettings()
        self.sampling_rate_hz = float(sampling_rate_hz)
        if not (math.isfinite(self.sampling_rate_hz) and self.sampling_rate_hz > 0):
            raise ValueError(f"sampling_rate_hz must be a positive number, got {sampling_rate_hz!r}")
        self.margin_ = (
            zero_velocity_margin_samples(self.settings, self.sampling_rate_hz)
            if margin_samples is None
            else int(margin_samples)
        )
        self.chunk_ = max(int(round(chunk_s * self.sampling_rate_hz)), 1)
        self._mask = StillMask(self.settings, self.sampling_rate_hz)
        # rows [0, _stop) of the arrays hold stream samples [_base, _base + _stop)
        cap = 2 * (2 * self.margin_ + self.chunk_) + 64
        self._acc = np.empty((cap, 3))
        self._gyr = np.empty((cap, 3))
        self._base = 0
        self._stop = 0
        self.done_ = 0  # samples whose flag is final
        self.samples_seen_ = 0

    def push(self, acc_mps2: np.ndarray, gyr_dps: np.ndarray) -> np.ndarray:
        """Append samples; return the flags that became final (bool, possibly empty)."""
        acc = np.asarray(acc_mps2, dtype=float).reshape(-1, 3)
        gyr = np.asarray(gyr_dps, dtype=float).reshape(-1, 3)
        if acc.shape != gyr.shape:
            raise ValueError(f"acc and gyr must have the same shape, got {acc.shape} and {gyr.shape}")
        n = len(acc)
        if self._stop + n > len(self._acc):
            self._make_room(n)
        self._acc[self._stop : self._stop + n] = acc
        self._gyr[self._stop : self._stop + n] = gyr
        self._stop += n
        self.samples_seen_ += n
        step = self.chunk_ + self.margin_
        if self.samples_seen_ < self.done_ + step:
            return _NO_FLAGS
        out = []
        while self.samples_seen_ >= self.done_ + step:
            out.append(self._final(self.done_ + self.chunk_, self.done_ + step))
        return out[0] if len(out) == 1 else np.concatenate(out)

    def finish(self) -> np.ndarray:
        """The flags of every remaining sample, the stream's end seen as the recording's end."""
        if self.samples_seen_ <= self.done_:
            return np.zeros(0, dtype=bool)
        return self._final(self.samples_seen_, self.samples_seen_)

    def peek(self) -> np.ndarray:
        """Provisional flags of the samples not final yet (`done_` .. `samples_seen_`): what
        `finish()` would return now, the samples so far seen as the recording; nothing changes."""
        return self._flags(self.samples_seen_, self.samples_seen_)

    def _make_room(self, n: int) -> None:
        """Drop the rows no flag reads any more (before done_ - margin); grow if still short."""
        keep = max(max(self.done_ - self.margin_, 0) - self._base, 0)
        used = self._stop - keep
        cap = len(self._acc)
        if used + n > cap:
            cap = 2 * (used + n)
            acc, gyr = np.empty((cap, 3)), np.empty((cap, 3))
        else:
            acc, gyr = self._acc, self._gyr
        acc[:used] = self._acc[keep : self._stop]
        gyr[:used] = self._gyr[keep : self._stop]
        self._acc, self._gyr = acc, gyr
        self._base += keep
        self._stop = used

    def _flags(self, stop: int, context_stop: int) -> np.ndarray:
        """Flags of [done_, stop) from the detector on [done_ - margin, context_stop)."""
        if stop <= self.done_:
            return np.zeros(0, dtype=bool)
        lo = max(self.done_ - self.margin_, 0)
        a, b = lo - self._base, context_stop - self._base
        zv = self._mask.mask(self._acc[a:b], self._gyr[a:b])
        return zv[self.done_ - lo : stop - lo].copy()

    def _final(self, stop: int, context_stop: int) -> np.ndarray:
        """Flags of [done_, stop), made final."""
        flags = self._flags(stop, context_stop)
        self.done_ = stop
        return flags


# what a push that finalised nothing returns (empty: nothing in it to change)
_NO_FLAGS = np.zeros(0, dtype=bool)
_NO_FLAGS.flags.writeable = False
