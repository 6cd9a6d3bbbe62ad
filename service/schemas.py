"""Pydantic models of every request and response body of the HTTP API."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Generic, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, create_model

from strideflow.hardware.schema import FEET, STRIDES_SCHEMA
from strideflow.ingest.recording import FORMATS

T = TypeVar("T")


class Foot(StrEnum):
    """A foot, as the API and the CLI accept it (`hardware.schema.FEET`)."""

    left = FEET[0]
    right = FEET[1]


# A recorded file's format, as the API and the CLI accept it: the readers' formats.
FileFormat = StrEnum("FileFormat", {name: name for name in FORMATS})


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class ErrorBody(BaseModel):
    detail: str = Field(description="What is wrong, naming the field or problem.")


# The error answers every read route documents (401 no/bad key, 404 not visible, 422 bad input,
# 503 stored results that cannot be read, naming the athlete and session).
READ_ERRORS = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor=` for the next one (null: last page)."""

    items: list[T]
    next_cursor: str | None = None


class StreamOut(BaseModel):
    """A live device stream: who and what it carries, how far it got, how fresh it is."""

    athlete_id: str
    session_id: str
    foot: Foot
    device_id: str
    sampling_rate_hz: float
    connected: bool = Field(description="A device connection holds the stream now.")
    ended: bool = Field(description="Its client sent end (or it was idle too long); results final.")
    last_seq: int | None = Field(description="Highest acknowledged packet sequence number.")
    samples: int = Field(description="Samples in the stream's write-ahead log.")
    strides: int = Field(description="Final strides analysed so far.")
    last_packet_at: dt.datetime
    idle_s: float = Field(description="Seconds since the last packet.")


class Health(BaseModel):
    status: str = "ok"
    database: str = "ok"
    jobs_queued: int | None = Field(
        default=None, description="Queued jobs of the key's team (null without a key)."
    )
    jobs_running: int | None = Field(
        default=None, description="Running jobs of the key's team (null without a key)."
    )


class JobAccepted(BaseModel):
    job_id: str


class JobOut(BaseModel):
    """An analysis job of one athlete-session (all its stored recordings)."""

    job_id: str
    status: JobState
    error: str | None = None
    athlete_id: str
    session_id: str
    recording_ids: list[str] = Field(default_factory=list, description="Recordings analysed by the last run.")
    stride_count: int | None = Field(default=None, description="Strides written by the last successful run.")
    warnings: list[str] = Field(default_factory=list)
    attempts: int = 0
    created: dt.datetime
    started: dt.datetime | None = None
    finished: dt.datetime | None = None


class AthleteOut(BaseModel):
    athlete_id: str
    session_count: int
    last_session_date: dt.date | None = None


class SessionFoot(BaseModel):
    """Per-foot aggregate of a session: steady/valid/all stride counts and per-metric medians."""

    foot: Foot
    activity: str | None = Field(
        default=None,
        description="walk or run: a session holding both gaits has one entry per foot and activity, "
        "its main activity (most steady strides) first.",
    )
    stride_count: int | None = Field(
        default=None, description="Steady strides (valid, no turn or gait start): the medians' count."
    )
    stride_count_all: int | None = None
    stride_count_valid: int | None = Field(
        default=None,
        description="Valid strides (measured without a fault, turns and the gait start included).",
    )
    median: dict[str, float | None] = Field(
        default_factory=dict, description="Metric -> median of steady strides (valid, no turn or gait start)."
    )
    iqr: dict[str, float | None] = Field(default_factory=dict, description="Metric -> inter-quartile range.")
    mounting_id: str | None = Field(
        default=None,
        description="The foot's mounting (device -> shoe frame, kept across sessions) at its last stride "
        "of the session; GET /v1/athletes/{id}/mountings lists them.",
    )
    remount: bool | None = Field(
        default=None, description="A remount of the foot's pod was detected in this session."
    )
    mounting_uncertainty_deg: float | None = Field(
        default=None, description="1-sigma heading uncertainty of the shoe axis, deg; null: frame given."
    )


class MountingOut(BaseModel):
    """One mounting of an athlete's pod on a foot (docs/frames.md, "One mounting per shoe")."""

    mounting_id: str
    athlete_id: str
    device_id: str
    foot: Foot
    q_wxyz: list[float] = Field(description="Device -> shoe frame rotation, scalar-first quaternion.")
    shoe_axis_source: str | None = Field(description="calibration, square, walking or swing_axis.")
    uncertainty_deg: float | None = Field(description="1-sigma heading uncertainty of the shoe axis, deg.")
    gravity_spread_deg: float = Field(description="Quality: RMS spread of the foot-flat gravity, deg.")
    started: str = Field(description="first, remount_between_sessions or remount_within_recording.")
    reason: str = Field(description="Why a remount was declared, in words (empty for the first).")
    first_session_id: str
    last_session_id: str
    start_t_s: float = Field(description="Where in its first session it began, s.")
    n_strides: int
    sessions: list[str]


class SessionOut(BaseModel):
    athlete_id: str
    session_id: str
    session_date: dt.date | None = None
    created: dt.datetime
    analysed: bool = Field(description="Whether result tables are stored for this session.")
    feet: list[SessionFoot] = Field(default_factory=list)
    symmetry_index_pct: dict[str, float | None] = Field(
        default_factory=dict,
        description="Metric -> 200 (L - R) / (L + R), percent, of the main activity (left walking "
        "against right walking); null for the signed angles.",
    )
    lr_difference_deg: dict[str, float | None] = Field(
        default_factory=dict,
        description="Signed angle (foot strike, toe-off pronation) -> left minus right median, degrees.",
    )
    results_error: str | None = Field(
        default=None, description="Why the stored results cannot be read (a damaged file); null if fine."
    )


_PY_TYPES = {pl.String(): str, pl.Float64(): float, pl.Int64(): int, pl.Boolean(): bool}

# One stride row: exactly the `strides` columns of hardware.schema (DESIGN.md), all nullable.
Stride = create_model(
    "Stride",
    __config__=ConfigDict(extra="ignore"),
    **{name: (_PY_TYPES[dtype] | None, None) for name, dtype in STRIDES_SCHEMA.items()},
)


class TrendPoint(BaseModel):
    """One session of a metric's trend, per foot (analytics.trends.compute_trends).

    `median` in the metric's unit; `baseline` the mean of the first sessions' medians;
    `change_from_baseline` = median - baseline, `change_pct` relative to |baseline|;
    `slope_per_30d` the least-squares slope over sessions so far, per 30 days;
    `symmetry_index` the session's left/right SI of the metric, percent (positive-valued metrics);
    `lr_difference_deg` left minus right median, degrees (signed angles).
    """

    model_config = ConfigDict(extra="ignore")

    athlete_id: str
    metric: str
    foot: str | None = None
    activity: str | None = Field(default=None, description="walk or run: each trend line is per activity.")
    session_id: str
    session_date: dt.date | None = None
    median: float | None = None
    baseline: float | None = None
    change_from_baseline: float | None = None
    change_pct: float | None = None
    days: float | None = Field(default=None, description="Days since the first dated session.")
    slope_per_30d: float | None = None
    symmetry_index: float | None = None
    lr_difference_deg: float | None = None
    stride_count: int | None = None
