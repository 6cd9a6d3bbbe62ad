"""User mappings for files no reader understands: `acc_x=COL,...` columns and `acc=g,gyr=rad/s` units.

The same text is accepted by the CLI (`--columns`, `--units`), the upload route (form fields
`columns`, `units`) and the batch manifest (columns `columns`, `units`). Items are separated by
commas; a column name holding a comma or `=` is quoted (`acc_x="Accel X, g"`), as in CSV.
"""

from __future__ import annotations

import csv
import difflib

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import ACC, GYR, MAG

TIME_KEY = "t"
CHANNEL_KEYS = (TIME_KEY, *ACC, *GYR, *MAG)
_KEY_ALIASES = {"time": TIME_KEY}
# unit words -> the names read_recording takes (acc_unit / gyr_unit)
UNIT_WORDS = {
    "acc": {"g": "g", "m/s^2": "mps2", "m/s2": "mps2", "m/s²": "mps2", "mps2": "mps2"},
    "gyr": {"deg/s": "dps", "dps": "dps", "°/s": "dps", "rad/s": "rad/s", "radps": "rad/s"},
}


class MappingError(StrideflowError, ValueError):
    """A `--columns` / `--units` text that cannot be understood; the message says which item and why."""


def _items(text: str, what: str) -> list[tuple[str, str]]:
    try:
        cells = next(csv.reader([text], skipinitialspace=True), [])
    except csv.Error as exc:
        raise MappingError(f"{what}: not readable ({exc})") from None
    items = []
    for cell in cells:
        if not cell.strip():
            continue
        key, sep, value = cell.partition("=")
        if not sep:
            raise MappingError(f"{what}: {cell.strip()!r} is not KEY=VALUE")
        key, value = key.strip().lower(), value.strip().strip('"').strip()
        if not value:
            raise MappingError(f"{what}: {key!r} has an empty value")
        items.append((key, value))
    if not items:
        raise MappingError(f"{what}: empty (expected KEY=VALUE,...)")
    return items


def _nearest(key: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(key, choices, n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""


def parse_columns(text: str | None) -> dict[str, str] | None:
    """`acc_x=COL,...` -> {canonical channel: column label}; None or blank text gives None.

    Keys: `t` (or `time`), acc_x/y/z, gyr_x/y/z, mag_x/y/z. Each key and each column at most once.
    """
    if text is None or not text.strip():
        return None
    mapping: dict[str, str] = {}
    for key, column in _items(text, "--columns"):
        key = _KEY_ALIASES.get(key, key)
        if key not in CHANNEL_KEYS:
            raise MappingError(
                f"--columns: unknown channel {key!r}{_nearest(key, list(CHANNEL_KEYS))}; "
                f"channels are {', '.join(CHANNEL_KEYS)}"
            )
        if key in mapping:
            raise MappingError(f"--columns: {key} given twice ({mapping[key]!r} and {column!r})")
        if column in mapping.values():
            other = next(k for k, v in mapping.items() if v == column)
            raise MappingError(f"--columns: column {column!r} given for both {other} and {key}")
        mapping[key] = column
    return mapping


def parse_units(text: str | None) -> dict[str, str]:
    """`acc=g,gyr=rad/s` -> {"acc": "g", "gyr": "rad/s"} in read_recording's unit names ({} if blank)."""
    if text is None or not text.strip():
        return {}
    units: dict[str, str] = {}
    for key, value in _items(text, "--units"):
        key = {"accel": "acc", "gyro": "gyr"}.get(key, key)
        if key not in UNIT_WORDS:
            raise MappingError(
                f"--units: unknown group {key!r}{_nearest(key, list(UNIT_WORDS))}; use acc or gyr"
            )
        words = UNIT_WORDS[key]
        unit = words.get(value.lower().replace(" ", ""))
        if unit is None:
            raise MappingError(
                f"--units: {key}={value!r} is not a known unit{_nearest(value.lower(), list(words))}; "
                f"use one of {', '.join(words)}"
            )
        if key in units:
            raise MappingError(f"--units: {key} given twice")
        units[key] = unit
    return units


def nearest_columns(wanted: str, seen: list[str], n: int = 3) -> list[str]:
    """Columns of the file whose names are closest to a wanted channel or column name."""
    lowered = {s.lower(): s for s in seen}
    near = difflib.get_close_matches(wanted.lower(), list(lowered), n=n, cutoff=0.3)
    return [lowered[x] for x in near]
