"""Walking or running, per stride, from the duty factor (stance time / stride time).

Rule: a stride is `run` when its duty factor is below `RUN_BELOW_DUTY_FACTOR` = 0.5, else `walk`;
null when the duty factor is unknown (no next IC).

Why the duty factor: walking always has a double-support phase (both feet on the ground), running
a flight phase (neither foot on the ground). With the two feet half a stride apart, each foot's
stance is then longer than half its stride in walking and shorter in running, so duty factor 0.5
is the walk/run boundary whatever the speed (Alexander R.McN., "Optimization and gaits in the
locomotion of vertebrates", Physiol. Rev. 69:1199-1227, 1989, defines walking as duty factor
> 0.5 and running as < 0.5). Measured values sit well clear of it: walking stance is about 60 %
of the gait cycle, running about 40 % at jogging and less with speed (Novacheck T.F., "The
biomechanics of running", Gait & Posture 7:77-95, 1998, fig. 1). A per-foot duty factor needs no
second foot, so the rule also holds for a one-sensor recording.

The sessions table, flags, trends and curves are split by this column (a session holding both
gaits gets one row per activity), so walking is never compared with, or averaged into, running.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from strideflow.hardware.schema import ACTIVITY, DUTY_FACTOR, KEYS, RUN, STEADY, WALK, steady_of

RUN_BELOW_DUTY_FACTOR = 0.5


def activity_expr(duty_factor: pl.Expr | None = None, run_below: float = RUN_BELOW_DUTY_FACTOR) -> pl.Expr:
    """`run` where the duty factor (1) is below `run_below`, `walk` where not, null where unknown."""
    df = pl.col(DUTY_FACTOR) if duty_factor is None else duty_factor
    return (
        pl.when(df.is_null() | df.is_nan())
        .then(pl.lit(None, dtype=pl.String))
        .when(df < run_below)
        .then(pl.lit(RUN))
        .otherwise(pl.lit(WALK))
    )


def with_activity(strides: pl.LazyFrame | pl.DataFrame):
    """`strides` with the `activity` column (walk/run) from its `duty_factor`."""
    return strides.with_columns(activity_expr().alias(ACTIVITY))


def activity_key_expr(names: Sequence[str] = (STEADY,)) -> pl.Expr:
    """The activity a stride is summarised under (sessions rows, curve summaries), in a table with
    these column names.

    A steady stride (`schema.steady_of`): its own. Any other (a turn, the gait start, an invalid
    stride, unknown duty factor) under its own activity if the foot has steady strides of it, else
    under the foot's usual activity (most steady strides), so a lone odd stride adds to
    `stride_count_all` of an existing row instead of opening a row without steady strides.
    """
    own = pl.col(ACTIVITY)
    steady = steady_of(names)
    keys = list(KEYS)
    steady_same = (steady & own.is_not_null()).sum().over([*keys, ACTIVITY])
    usual_steady = own.filter(steady).drop_nulls().mode().sort().first().over(keys)
    usual_any = own.drop_nulls().mode().sort().first().over(keys)
    return pl.when(steady_same > 0).then(own).otherwise(usual_steady).fill_null(own).fill_null(usual_any)
