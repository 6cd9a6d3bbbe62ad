"""Detected strides against a reference (simulator truth or hand labels): matching and scores.

Two strides match when one event time (toe-off by default) of each lies within a tolerance;
matching is one-to-one, closest pairs first, and only inside the same group (athlete, session,
foot: whichever key columns both tables have). Precision = matched / detected, recall =
matched / reference. Timing errors of any event are taken over the matched pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from strideflow.hardware.schema import KEYS, TOE_OFF_T, VALID

DETECTED_ROW = "detected_row"
REFERENCE_ROW = "reference_row"
ERROR_S = "error_s"


def match_events(
    detected_t: np.ndarray, reference_t: np.ndarray, tolerance_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of two sets of event times (s) within a tolerance, closest pairs first.

    Returns (detected indices, reference indices) of the matched pairs, sorted by reference time.
    """
    d = np.asarray(detected_t, dtype=float)
    r = np.asarray(reference_t, dtype=float)
    if d.size == 0 or r.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(d, kind="stable")
    ds = d[order]
    lo = np.searchsorted(ds, r - tolerance_s, side="left")
    hi = np.searchsorted(ds, r + tolerance_s, side="right")
    counts = hi - lo
    ref_i = np.repeat(np.arange(r.size), counts)
    det_sorted = (
        np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)]) if counts.sum() else []
    )
    det_i = order[np.asarray(det_sorted, dtype=np.int64)]
    err = np.abs(d[det_i] - r[ref_i])
    used_d = np.zeros(d.size, dtype=bool)
    used_r = np.zeros(r.size, dtype=bool)
    keep_d, keep_r = [], []
    # Greedy by error; events of one foot are >= 0.3 s apart, so with a tolerance well below
    # that there is never a competing pair and greedy equals the optimal assignment.
    for k in np.argsort(err, kind="stable"):
        a, b = det_i[k], ref_i[k]
        if not used_d[a] and not used_r[b]:
            used_d[a] = used_r[b] = True
            keep_d.append(a)
            keep_r.append(b)
    keep_d = np.asarray(keep_d, dtype=np.int64)
    keep_r = np.asarray(keep_r, dtype=np.int64)
    o = np.argsort(r[keep_r], kind="stable")
    return keep_d[o], keep_r[o]


@dataclass(frozen=True)
class StrideMatch:
    """Result of `match_strides`: matched pairs and detection scores."""

    matches: pl.DataFrame  # group keys, detected_row, reference_row, error_s (detected - reference)
    n_detected: int
    n_reference: int

    @property
    def n_matched(self) -> int:
        return self.matches.height

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_detected if self.n_detected else float("nan")

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_reference if self.n_reference else float("nan")


def match_strides(
    detected: pl.DataFrame,
    reference: pl.DataFrame,
    tolerance_s: float = 0.060,
    on: str = TOE_OFF_T,
    reference_on: str | None = None,
    only_valid: bool = True,
) -> StrideMatch:
    """Match detected strides to reference strides by the time of one event (s).

    `on` names the detected table's event column, `reference_on` the reference's (default the
    same). With `only_valid`, detected strides with `valid == false` are left out (when the
    column exists). `detected_row` and
    `reference_row` index the tables as passed (before filtering).
    """
    ref_on = on if reference_on is None else reference_on
    det = detected.with_row_index(DETECTED_ROW)
    if only_valid and VALID in det.columns:
        det = det.filter(pl.col(VALID))
    ref = reference.with_row_index(REFERENCE_ROW)
    by = [k for k in KEYS if k in det.columns and k in ref.columns]

    det_groups = det.partition_by(by, as_dict=True) if by else {(): det}
    ref_groups = ref.partition_by(by, as_dict=True) if by else {(): ref}
    parts = []
    for key, r in ref_groups.items():
        d = det_groups.get(key)
        if d is None:
            continue
        di, ri = match_events(d[on].to_numpy(), r[ref_on].to_numpy(), tolerance_s)
        part = pl.DataFrame(
            {
                DETECTED_ROW: d[DETECTED_ROW].to_numpy()[di].astype(np.int64),
                REFERENCE_ROW: r[REFERENCE_ROW].to_numpy()[ri].astype(np.int64),
                ERROR_S: d[on].to_numpy()[di] - r[ref_on].to_numpy()[ri],
            }
        )
        if by:
            part = part.with_columns([pl.lit(v).alias(k) for k, v in zip(by, key, strict=True)])
        parts.append(part)
    schema = {DETECTED_ROW: pl.Int64, REFERENCE_ROW: pl.Int64, ERROR_S: pl.Float64}
    matches = pl.concat(parts, how="diagonal") if parts else pl.DataFrame(schema=schema)
    return StrideMatch(
        matches=matches.select(by + list(schema)), n_detected=det.height, n_reference=ref.height
    )


def event_errors_s(
    detected: pl.DataFrame,
    reference: pl.DataFrame,
    match: StrideMatch,
    event: str,
    reference_event: str | None = None,
) -> np.ndarray:
    """Signed timing errors (s, detected - reference) of one event over the matched pairs."""
    ref_event = event if reference_event is None else reference_event
    d = detected[event].to_numpy()[match.matches[DETECTED_ROW].to_numpy()]
    r = reference[ref_event].to_numpy()[match.matches[REFERENCE_ROW].to_numpy()]
    return d - r


def timing_summary_ms(errors_s: np.ndarray) -> dict[str, float]:
    """Median and 95th percentile of absolute timing errors, and the mean signed error, in ms."""
    e = np.abs(np.asarray(errors_s, dtype=float)) * 1000.0
    if e.size == 0:
        return {"median_abs_ms": float("nan"), "p95_abs_ms": float("nan"), "mean_ms": float("nan")}
    return {
        "median_abs_ms": float(np.median(e)),
        "p95_abs_ms": float(np.percentile(e, 95)),
        "mean_ms": float(np.mean(np.asarray(errors_s)) * 1000.0),
    }


# --- agreement of paired measurements (Bland-Altman, ICC) -----------------------------------------

LOA_Z = 1.96  # limits of agreement: bias ± 1.96 SD of the differences (Bland & Altman 1986)


def icc_a1(ratings: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """ICC(2,1) with its confidence interval: two-way random effects, absolute agreement, one rater.

    ratings: (n targets, k raters), no NaN. Returns (icc, lower, upper).

    Notes
    -----
    Shrout & Fleiss (1979) ICC(2,1), the same quantity as McGraw & Wong (1996) ICC(A,1), from the
    two-way ANOVA mean squares: rows (targets) MSR, columns (raters) MSC, residual MSE:
    ICC = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n). The interval is McGraw & Wong's
    (their Table 7, case 2A) with Satterthwaite's degrees of freedom v for the denominator,
    using F quantiles from `scipy.stats.f`.
    """
    from scipy import stats

    x = np.asarray(ratings, dtype=float)
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan"), float("nan"), float("nan")
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((x - grand) ** 2) - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    if denom <= 0:
        return float("nan"), float("nan"), float("nan")
    icc = (msr - mse) / denom
    alpha = 1.0 - confidence
    if icc >= 1.0 or mse <= 0:
        return float(icc), float("nan"), float("nan")
    a = k * icc / (n * (1.0 - icc))
    b = 1.0 + k * icc * (n - 1) / (n * (1.0 - icc))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_low = stats.f.ppf(1.0 - alpha / 2.0, n - 1, v)
    f_high = stats.f.ppf(1.0 - alpha / 2.0, v, n - 1)
    lower = n * (msr - f_low * mse) / (f_low * (k * msc + (k * n - k - n) * mse) + n * msr)
    upper = n * (f_high * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_high * msr)
    return float(icc), float(lower), float(upper)


AGREEMENT_COLUMNS = (
    "n",
    "bias",
    "sd",
    "loa_low",
    "loa_high",
    "median_abs_error",
    "mae",
    "icc",
    "icc_low",
    "icc_high",
    "mean_detected",
    "mean_reference",
)


def agreement(detected: np.ndarray, reference: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Agreement of paired values (any unit; differences are detected - reference).

    bias = mean difference, sd = its sample SD (ddof 1), limits of agreement bias ± 1.96 sd,
    median_abs_error and mae of |difference|, ICC(2,1) with its `confidence` interval (`icc_a1`).
    Pairs with a NaN on either side are left out; `n` counts the pairs used.
    """
    d = np.asarray(detected, dtype=float)
    r = np.asarray(reference, dtype=float)
    ok = np.isfinite(d) & np.isfinite(r)
    d, r = d[ok], r[ok]
    diff = d - r
    n = int(diff.size)
    nan = float("nan")
    bias = float(diff.mean()) if n else nan
    sd = float(diff.std(ddof=1)) if n > 1 else nan
    icc, lo, hi = icc_a1(np.column_stack([d, r]), confidence) if n > 1 else (nan, nan, nan)
    return {
        "n": n,
        "bias": bias,
        "sd": sd,
        "loa_low": bias - LOA_Z * sd,
        "loa_high": bias + LOA_Z * sd,
        "median_abs_error": float(np.median(np.abs(diff))) if n else nan,
        "mae": float(np.mean(np.abs(diff))) if n else nan,
        "icc": icc,
        "icc_low": lo,
        "icc_high": hi,
        "mean_detected": float(d.mean()) if n else nan,
        "mean_reference": float(r.mean()) if n else nan,
    }


# --- clock alignment and order alignment -----------------------------------------------------------


@dataclass(frozen=True)
class ClockFit:
    """reference time -> detected clock: t_detected = offset_s + (1 + drift) * t_reference."""

    offset_s: float
    drift: float  # relative rate difference (1e-6 = 1 ppm)
    n_pairs: int

    def apply(self, t_reference: np.ndarray) -> np.ndarray:
        return self.offset_s + (1.0 + self.drift) * np.asarray(t_reference, dtype=float)


def fit_clock(
    detected_t: np.ndarray, reference_t: np.ndarray, tolerance_s: float, fit_drift: bool = True
) -> ClockFit:
    """Offset (and drift) between two clocks from event times alone.

    The offset is the one under which most events match within `tolerance_s` (tried at every
    detected - reference difference, ties to the smaller |offset|); drift is then the slope of a
    least-squares line through the matched pairs (with at least 3 pairs spanning time), and the
    offset its intercept.
    """
    d = np.sort(np.asarray(detected_t, dtype=float))
    r = np.sort(np.asarray(reference_t, dtype=float))
    if d.size == 0 or r.size == 0:
        return ClockFit(0.0, 0.0, 0)
    candidates = np.unique(np.round((d[:, None] - r[None, :]).ravel(), 6))
    best, best_count = 0.0, -1
    for c in candidates[np.argsort(np.abs(candidates), kind="stable")]:
        di, _ = match_events(d, r + c, tolerance_s)
        if di.size > best_count:
            best, best_count = float(c), int(di.size)
    di, ri = match_events(d, r + best, tolerance_s)
    if not fit_drift or di.size < 3 or np.ptp(r[ri]) <= 0:
        offset = float(np.mean(d[di] - r[ri])) if di.size else best
        return ClockFit(offset, 0.0, int(di.size))
    slope, intercept = np.polyfit(r[ri], d[di], 1)
    return ClockFit(float(intercept), float(slope - 1.0), int(di.size))


def align_by_order(detected: np.ndarray, reference: np.ndarray, min_overlap: int = 3) -> tuple[int, float]:
    """Shift k of two ordered sequences (detected i pairs with reference i + k) that minimises the
    median absolute difference over the overlap; returns (k, that median).

    For references that carry no time (footprints): stride lengths in walking order. Only shifts
    whose overlap has at least `min_overlap` pairs and at least half of the shorter sequence count.
    """
    d = np.asarray(detected, dtype=float)
    r = np.asarray(reference, dtype=float)
    need = max(min_overlap, (min(d.size, r.size) + 1) // 2)
    best_k, best_cost = 0, float("inf")
    for k in range(-(d.size - 1), r.size):
        i0, i1 = max(0, -k), min(d.size, r.size - k)
        if i1 - i0 < need:
            continue
        diff = d[i0:i1] - r[i0 + k : i1 + k]
        diff = diff[np.isfinite(diff)]
        if diff.size < need:
            continue
        cost = float(np.median(np.abs(diff)))
        if cost < best_cost or (cost == best_cost and abs(k) < abs(best_k)):
            best_k, best_cost = k, cost
    return best_k, best_cost
