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
