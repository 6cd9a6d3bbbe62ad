"""Is the recording's foot label plausible? The roll after initial contact tells left from right.

After initial contact the loading foot everts (pronates): the rearfoot rolls so that its medial
side goes down, on both feet, in walking and running alike. With eversion defined positive on
both feet (DESIGN.md: p = +roll on the left foot, -roll on the right), the pronation angle p rises
after IC on almost every stride of a correctly labelled foot. Read as the wrong foot the same
motion appears as an inversion on almost every stride.

Measured (median over valid strides of mean p over [IC, IC + 60 % of stance] minus p at IC, and
the share of strides where it is positive): the gaitmap recordings with known feet, healthy,
multiple sclerosis and stairs, +0.0 to +7.4 deg and 50-100 %; the single-foot LORD footprint walks
read as left -5.0 to -8.6 deg and 0-15 %, so that pod was on the right foot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from strideflow.hardware.schema import IC_T, KEYS, PRONATION_DEG, TOE_OFF_T, T, steady_of

OTHER_FOOT = {"left": "right", "right": "left"}


@dataclass(frozen=True)
class FootSideSettings:
    """Settings of `FootSideCheck`.

    window_share: the roll after IC is averaged over [IC, IC + this share of the stance].
    min_strides: fewer steady strides than this give no verdict.
    max_median_deg: the label is doubted only when the median roll after IC is below this (deg) ...
    max_everting_share: ... and fewer than this share of the strides evert at all.
    """

    window_share: float = 0.6
    min_strides: int = 10
    max_median_deg: float = -2.0
    max_everting_share: float = 0.25


class FootSideCheck:
    """Doubts a foot label whose strides invert instead of evert after initial contact.

    Parameters
    ----------
    settings
        `FootSideSettings`.

    Attributes
    ----------
    checks_ : pl.DataFrame
        One row per athlete-session-foot: `strides`, `roll_after_ic_deg` (median, deg),
        `everting_share` (0-1) and `suspect` (bool: probably the other foot).
    warnings_ : tuple[str, ...]
        One plain-words warning per suspect foot.

    Notes
    -----
    strideflow's own heuristic, from the eversion of the loading foot after initial contact; the
    measurements it rests on are in the module docstring.
    """

    def __init__(self, settings: FootSideSettings | None = None) -> None:
        self.settings = settings if settings is not None else FootSideSettings()

    def detect(self, strides: pl.DataFrame, signals: pl.DataFrame) -> FootSideCheck:
        """`strides` (STRIDES_SCHEMA) and the per-sample `signals` (keys, `t`, `pronation_deg`)."""
        s = self.settings
        rows = []
        keys = list(KEYS)
        valid = strides.filter(steady_of(strides.columns))
        for key, sig in (
            signals.sort([*keys, T]).partition_by(keys, as_dict=True, maintain_order=True).items()
        ):
            mine = valid.filter(*[pl.col(c) == v for c, v in zip(keys, key, strict=True)])
            t = sig.get_column(T).to_numpy()
            p = sig.get_column(PRONATION_DEG).to_numpy()
            ic = mine.get_column(IC_T).to_numpy()
            end = ic + s.window_share * (mine.get_column(TOE_OFF_T).to_numpy() - ic)
            i0 = np.searchsorted(t, ic)
            i1 = np.maximum(np.searchsorted(t, end), i0 + 1)
            ok = i1 <= len(t)
            csum = np.concatenate([[0.0], np.cumsum(p)])
            i0, i1 = i0[ok], i1[ok]
            roll = (csum[i1] - csum[i0]) / (i1 - i0) - p[np.minimum(i0, len(p) - 1)]
            n = len(roll)
            median = float(np.median(roll)) if n else float("nan")
            share = float(np.mean(roll > 0)) if n else float("nan")
            suspect = n >= s.min_strides and median < s.max_median_deg and share < s.max_everting_share
            rows.append((*key, n, median, share, suspect))
        self.checks_ = pl.DataFrame(
            rows,
            schema={
                **{c: pl.String for c in keys},
                "strides": pl.Int64,
                "roll_after_ic_deg": pl.Float64,
                "everting_share": pl.Float64,
                "suspect": pl.Boolean,
            },
            orient="row",
        )
        self.warnings_ = tuple(
            f"athlete {a}, session {ss}, {f} foot: the foot inverts after contact on "
            f"{100 * (1 - sh):.0f} % of {n} strides (median {m:+.1f} deg) where a {f} foot everts: "
            f"the sensor is probably on the {OTHER_FOOT.get(f, 'other')} foot (pronation metrics "
            f"assume {f}; give the foot explicitly)"
            for a, ss, f, n, m, sh, sus in self.checks_.rows()
            if sus
        )
        return self
