"""Files that are not gait recordings, told apart in one short line each.

- `refuse_known_binary`: a file whose first bytes are a common non-recording format (an image, a
  PDF, an office document) -> ``not a text recording (PNG image)``, whatever its file name says.
- `screen_samples`: a recording that reads but cannot hold gait: shorter than `MIN_RECORDING_S`
  per foot -> ``too short: 2.0 s of data (...)``; a foot that never turns as fast as a swing does
  -> ``no walking found: the foot never left the ground (30 s standing)``.

The upload route runs both before it creates a job (422), the analysis before the mounting
alignment, so neither a long alignment error nor an empty session results.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from strideflow.hardware.schema import FOOT, GYR, T
from strideflow.ingest.errors import IngestError

# Leading bytes of formats people attach by mistake (file signatures as their specifications give them).
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "ZIP archive or office document (.xlsx/.docx): export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "old Office document (.xls/.doc): export the sheet as CSV"),
    (b"BM", "BMP image"),
    (b"RIFF", "RIFF media file (WAV/AVI/WebP)"),
)
# BMP and RIFF signatures are short: only trusted with a NUL byte soon after (text never has one).
_WEAK = {b"BM", b"RIFF"}

# Mounting alignment needs 3 strides, and a walking stride lasts ~1-1.4 s.
MIN_RECORDING_S = 3.0
# A swing turns the foot at several hundred deg/s; the mounting alignment counts a stride from 100.
SWING_GYR_DPS = 100.0


def refuse_known_binary(source: str, data: bytes) -> None:
    """Raise IngestError naming the kind of file when `data` starts with a non-recording signature."""
    for magic, kind in SIGNATURES:
        if data.startswith(magic) and (magic not in _WEAK or b"\x00" in data[:64]):
            raise IngestError(source, f"not a text recording ({kind})")


def screen_samples(samples: pl.DataFrame, sampling_rate_hz: float, source: str) -> None:
    """Raise IngestError when a foot of `samples` is too short or never moves like a swing.

    `samples` in the samples schema (gyroscope in deg/s), one recording; `source` names it.
    """
    if samples.height == 0:
        raise IngestError(source, "no samples")
    per_foot = samples.group_by(FOOT, maintain_order=True).agg(
        pl.len().alias("n"),
        (pl.col(T).max() - pl.col(T).min()).alias("span"),
        pl.max_horizontal(*[pl.col(c).abs() for c in GYR]).max().alias("peak"),
    )
    for foot, n, span, peak in per_foot.iter_rows():
        seconds = max(float(span or 0.0), n / float(sampling_rate_hz))
        if seconds < MIN_RECORDING_S:
            raise IngestError(
                source,
                f"too short: {seconds:.1f} s of data ({foot} foot); a stride analysis needs at least "
                f"{MIN_RECORDING_S:g} s of walking",
            )
        if peak is None or not np.isfinite(peak) or peak < SWING_GYR_DPS:
            raise IngestError(
                source,
                f"no walking found: the foot never left the ground ({seconds:.0f} s standing; "
                f"{foot} foot, peak rotation {0.0 if peak is None else peak:.0f} deg/s)",
            )
