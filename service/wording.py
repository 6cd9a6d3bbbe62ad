"""Words for result columns, shared by the report and the API: metric labels, units and decimals,
gait names, and each flag in plain words with its value and heuristic threshold."""

from __future__ import annotations

from strideflow.analytics.flags import (
    ASYMMETRY,
    ASYMMETRY_CHANGE,
    FAST_PRONATION,
    FLAG,
    LATERAL_ROLL_OFF,
    LOW_PRONATION,
    METRIC,
    NOTE,
    SHORT_TOE_OFF,
    THRESHOLD,
    VALUE,
)
from strideflow.hardware.schema import (
    ACTIVITY,
    CADENCE_SPM,
    DUTY_FACTOR,
    FOOT,
    FOOT_STRIKE_ANGLE_DEG,
    IMPACT_G,
    MAX_PRONATION_VELOCITY_DPS,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    SPEED_MPS,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
    STRIDE_TIME_S,
    TIME_TO_MAX_PRONATION_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
)

# metric -> (label, unit, decimals) for tables, axes and flag sentences.
METRIC_INFO: dict[str, tuple[str, str, int]] = {
    PRONATION_EXCURSION_DEG: ("pronation excursion", "deg", 1),
    MAX_PRONATION_VELOCITY_DPS: ("max pronation velocity", "deg/s", 0),
    TIME_TO_MAX_PRONATION_S: ("time to max pronation", "s", 3),
    TOE_OFF_PRONATION_DEG: ("toe-off pronation", "deg", 1),
    TOE_OFF_ANGLE_DEG: ("toe-off angle", "deg", 1),
    FOOT_STRIKE_ANGLE_DEG: ("foot-strike angle", "deg", 1),
    PUSH_OFF_RATE_DPS: ("push-off rate", "deg/s", 0),
    STANCE_TIME_S: ("stance time", "s", 3),
    STRIDE_TIME_S: ("stride time", "s", 3),
    CADENCE_SPM: ("cadence", "steps/min", 1),
    STRIDE_LENGTH_M: ("stride length", "m", 2),
    SPEED_MPS: ("speed", "m/s", 2),
    IMPACT_G: ("impact", "g", 1),
    DUTY_FACTOR: ("duty factor", "1", 2),
}

ACTIVITY_WORDS = {"walk": "walking", "run": "running"}


def metric_label(metric: str) -> str:
    """'pronation excursion (deg)' for a metric column; the column name itself if unknown."""
    label, unit, _ = METRIC_INFO.get(metric, (metric, "", 2))
    return f"{label} ({unit})" if unit and unit != "1" else label


_FLAG_TEXT = {
    LOW_PRONATION: "the median pronation excursion is {value} deg, below the heuristic threshold of "
    "{threshold} deg: the foot everts little after contact.",
    FAST_PRONATION: "the median maximum pronation velocity is {value} deg/s, above the heuristic "
    "threshold of {threshold} deg/s: the foot everts unusually fast after contact.",
    LATERAL_ROLL_OFF: "the median toe-off pronation is {value} deg, below the heuristic threshold of "
    "{threshold} deg: the foot leaves the ground over its outer edge rather than rolling through the "
    "big toe.",
    SHORT_TOE_OFF: "the median toe-off angle is {value} deg, below the heuristic threshold of "
    "{threshold} deg: the foot rolls over and pushes off through the toes only a little.",
}


def metric_decimals(metric: str) -> int:
    """Decimals a metric is shown with (2 when unknown)."""
    return METRIC_INFO.get(metric, ("", "", 2))[2]


def flag_sentence(row: dict) -> str:
    """One flags-table row in plain words, with its value and heuristic threshold."""
    metric, flag = row[METRIC], row[FLAG]
    d = metric_decimals(metric)
    if flag == ASYMMETRY:
        gait = ACTIVITY_WORDS.get(row.get(ACTIVITY) or "", "")
        return (
            f"Left and right differ in {METRIC_INFO.get(metric, (metric,))[0]}"
            f"{f' ({gait})' if gait else ''}: symmetry index "
            f"{row[VALUE]:+.1f} % (positive = left larger), beyond the heuristic threshold of "
            f"±{row[THRESHOLD]:g} %."
        )
    if flag == ASYMMETRY_CHANGE:
        gait = ACTIVITY_WORDS.get(row.get(ACTIVITY) or "", "")
        return (
            f"Left/right balance of {METRIC_INFO.get(metric, (metric,))[0]}"
            f"{f' ({gait})' if gait else ''} moved away from this athlete's own baseline: {row[NOTE]}."
        )
    template = _FLAG_TEXT.get(flag)
    gait = ACTIVITY_WORDS.get(row.get(ACTIVITY) or "", "")
    who = (f"{row[FOOT]} foot" if row[FOOT] else "session") + (f", {gait}" if gait else "")
    if template is None:
        return f"{who}: {metric} = {row[VALUE]:.{d}f} (heuristic threshold {row[THRESHOLD]:g}): {row[NOTE]}."
    text = template.format(value=f"{row[VALUE]:.{d}f}", threshold=f"{row[THRESHOLD]:g}")
    return f"{who[0].upper()}{who[1:]}: {text}"
