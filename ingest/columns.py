"""Header names to canonical channels: spelling variants, unit hints, suggestions for typos."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from strideflow.hardware.schema import ACC, GYR, MAG

# Words a header may use for a sensor, before the axis letter (after lower-casing and dropping
# spaces, underscores, dashes and dots): `Acc X`, `accX`, `acc_x`, `gyro_x`, `Accelerometer.X`...
_PREFIXES = {
    "acc": ("acc", "accel", "accelerometer", "acceleration", "a"),
    "gyr": ("gyr", "gyro", "gyroscope", "angvel", "angularvelocity", "angularrate", "g"),
    "mag": ("mag", "magn", "magnetometer", "magneticfield", "m"),
}
_CANONICAL = {"acc": ACC, "gyr": GYR, "mag": MAG}
AXIS_KEYS: dict[str, str] = {
    prefix + axis: canonical
    for group, prefixes in _PREFIXES.items()
    for prefix in prefixes
    for axis, canonical in zip("xyz", _CANONICAL[group], strict=True)
}

# Time columns by the unit their name implies (scale to seconds).
TIME_KEYS: dict[str, float] = {
    **{k: 1.0 for k in ("t", "time", "timestamp", "times", "ts", "seconds", "sec", "elapsed")},
    **{k: 1e-3 for k in ("tms", "timems", "timestampms", "millis", "milliseconds", "ms", "elapsedms")},
    **{k: 1e-6 for k in ("tus", "timeus", "timestampus", "micros", "microseconds", "us")},
    **{k: 1e-9 for k in ("tns", "timens", "timestampns", "nanos", "nanoseconds", "ns")},
}
# A row number written by pandas or a logger's sample counter: not data, not time.
INDEX_KEYS = frozenset({"", "index", "idx", "unnamed0", "unnamed", "row", "rownumber"})

# Unit words, as a trailing name token or in brackets: `acc_x [g]`, `gyr_x (rad/s)`, `time_ms`.
_UNIT_WORDS = {
    "g": "g",
    "m/s^2": "mps2",
    "m/s2": "mps2",
    "m/s²": "mps2",
    "ms^-2": "mps2",
    "ms-2": "mps2",
    "m/s/s": "mps2",
    "mps2": "mps2",
    "rad/s": "rad/s",
    "rad/sec": "rad/s",
    "rads": "rad/s",
    "radps": "rad/s",
    "deg/s": "dps",
    "deg/sec": "dps",
    "°/s": "dps",
    "dps": "dps",
    "degs": "dps",
    "s": "s",
    "sec": "s",
    "ms": "ms",
    "us": "us",
    "µs": "us",
    "ns": "ns",
    "ut": "ut",
    "µt": "ut",
}
_TIME_UNIT_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_BRACKET = re.compile(r"[\[(]([^\])]*)[\])]")
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ColumnName:
    """One header cell, understood."""

    label: str  # as written in the file (stripped)
    key: str  # lower-case letters and digits only, unit removed
    unit: str | None  # unit stated by the header, normalised (g, mps2, rad/s, dps, s, ms, us, ns, ut)


def parse_name(label: str) -> ColumnName:
    """Normalise a header cell: `Gyro X (rad/s)` -> key `gyrox`, unit `rad/s`."""
    text = label.strip().strip("\ufeff").strip().lower()
    unit = None
    bracket = _BRACKET.search(text)
    if bracket:
        unit = _UNIT_WORDS.get(bracket.group(1).strip().replace(" ", ""))
        text = _BRACKET.sub(" ", text)
    tokens = [tok for tok in _TOKEN_SPLIT.split(text) if tok]
    key = "".join(tokens)
    # A trailing unit token (`time_ms`, `acc_x_g`) is a unit unless the whole name is a known key.
    if len(tokens) > 1 and tokens[-1] in _UNIT_WORDS and key not in AXIS_KEYS and key not in TIME_KEYS:
        stem = "".join(tokens[:-1])
        if stem in AXIS_KEYS or stem in TIME_KEYS:
            unit = unit or _UNIT_WORDS[tokens[-1]]
            key = stem
    return ColumnName(label=label.strip(), key=key, unit=unit)


def time_scale(name: ColumnName) -> float | None:
    """Seconds per unit of a time column by its name and unit, or None when it is not a time column."""
    if name.key not in TIME_KEYS:
        return None
    if name.unit in _TIME_UNIT_SCALE:
        return _TIME_UNIT_SCALE[name.unit]
    return TIME_KEYS[name.key]


def suggest(missing: str, candidates: list[str]) -> str:
    """` (did you mean 'Gyr_Zz'?)` for the header closest to a missing channel name, else ``."""
    if not candidates:
        return ""
    keyed = {parse_name(c).key: c for c in candidates}
    target = missing.replace("_", "")
    best = difflib.get_close_matches(target, list(keyed), n=1, cutoff=0.6)
    if not best:
        best_label = difflib.get_close_matches(missing, candidates, n=1, cutoff=0.6)
        return f" (did you mean {best_label[0]!r}?)" if best_label else ""
    return f" (did you mean {keyed[best[0]]!r}?)"
