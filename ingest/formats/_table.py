"""Shared pieces of the CSV device readers: header lines, the numeric body, valid flags, units.

Every device CSV is a preamble (maker lines, possibly none), one row naming the columns (plus, for
some makers, a row of units), then data. The readers find the name row by the maker's own words,
pick their columns by the maker's documented names, and hand the body to `csvfile`'s parser, so
bad cells are reported with the file line just as for strideflow's own CSV.
"""

from __future__ import annotations

import re

import numpy as np

from strideflow.hardware.schema import GYR
from strideflow.ingest.clipping import rebuild_clipped
from strideflow.ingest.columns import parse_name
from strideflow.ingest.csvfile import RawSensor, RawTable, _Body, _cells, _time_seconds
from strideflow.ingest.errors import GYRO_CLIPPED, GYRO_DELAY, INVALID_SAMPLES, IngestError, WarningLog
from strideflow.ingest.settings import ReadSettings

GAUSS_TO_UT = 100.0  # 1 G = 100 µT
_LAST_BRACKET = re.compile(r"[\[(]([^\[\]()]*)[\])]$")


def lines(data: bytes, limit: int = 64) -> list[str]:
    """The first `limit` lines as text (blank ones kept, so index + 1 is the file line)."""
    out = []
    pos = 0
    while len(out) < limit and pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        out.append(data[pos:end].decode("utf-8", errors="replace").rstrip("\r").lstrip("\ufeff"))
        pos = end + 1
    return out


def cells(line: str, sep: str = ",") -> list[str]:
    return [c.strip() for c in _cells(line, sep)]


def find_line(head: list[str], test, what: str, source: str) -> int:
    """0-based index of the first line for which `test(line)` holds; IngestError naming `what` if none."""
    for i, line in enumerate(head):
        if test(line):
            return i
    raise IngestError(source, f"no {what} in the first {len(head)} lines")


def read_body(
    source: str,
    data: bytes,
    header_lines: int,
    labels: list[str],
    sep: str,
    wanted: dict[int, str],
    log: WarningLog,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Parse the wanted columns (position -> label for messages) of the lines after the header.

    Returns the float columns and the 1-based file line of every row.
    """
    pos = 0
    for _ in range(header_lines):
        end = data.find(b"\n", pos)
        if end < 0:
            raise IngestError(source, "no data rows (header only)")
        pos = end + 1
    end = len(data)
    while end > pos and data[end - 1] in b"\r\n\t ":
        end -= 1
    body = _Body(source, data[pos:end], header_lines + 1, sep, labels)
    return body.numbers(wanted, log)


def pad_labels(labels: list[str], first_row: str, sep: str) -> list[str]:
    """Labels widened with empty names for the trailing separators the data rows carry."""
    n = len(_cells(first_row, sep))
    return labels + [""] * (n - len(labels)) if n > len(labels) else labels


def unit_of(text: str) -> str | None:
    """A unit cell (`[deg/s]`, `m/(s^2)`, `(g)`) normalised as `columns.parse_name` does, or None."""
    cleaned = text.strip().replace("(s^2)", "s^2").replace(" ", "")
    inner = _LAST_BRACKET.search(cleaned)
    cleaned = inner.group(1) if inner else cleaned
    if not cleaned:
        return None
    return parse_name(f"x [{cleaned}]").unit


def group_unit(source: str, found: dict[str, str | None], axes: tuple[str, ...], group: str) -> str | None:
    units = {found[a] for a in axes if found.get(a) is not None}
    if len(units) > 1:
        raise IngestError(source, f"the {group} columns state different units: {sorted(units)}")
    return units.pop() if units else None


def build_table(
    source: str,
    values: dict[int, np.ndarray],
    rows: np.ndarray,
    *,
    channels: dict[str, int],
    labels: dict[str, str],
    units: dict[str, str | None],
    time_pos: int,
    time_label: str,
    time_scale: float,
    settings: ReadSettings,
    log: WarningLog,
    valid: dict[str, int] | None = None,
    scale: dict[str, float] | None = None,
    time_values: np.ndarray | None = None,
    foot: str | None = None,
    gyr_delay_s: float = 0.0,
    gyr_delay_source: str = "",
    gyr_range: float | None = None,
) -> RawTable:
    """One sensor's table: rows whose device valid flag of a used channel is not 1 are left out
    (logged), so they become gaps for `condition` to interpolate or split at.

    `gyr_delay_s` (s): the device's gyroscope samples lag its accelerometer's by this much (its
    format's known value, `gyr_delay_source` says where it comes from): the gyro channels are read
    that much later, gyr(t + gyr_delay_s), by linear interpolation on the file's own time.
    `gyr_range` (the gyro channels' unit after `scale`): the device's known full scale; samples
    clipped there are rebuilt first (`ingest.clipping`, warning kind `gyro_clipped`)."""
    keep = np.ones(rows.size, dtype=bool)
    if valid:
        for pos in valid.values():
            keep &= values[pos] == 1
    t = values[time_pos] if time_values is None else time_values
    if not keep.all():
        bad = np.flatnonzero(~keep)
        flagged = [labels[c] for c, p in valid.items() if np.any(values[p][bad] != 1)]
        log.add(
            INVALID_SAMPLES,
            f"{bad.size} samples flagged invalid by the device ({', '.join(flagged)}): left out, "
            "the gaps they leave are interpolated or split like any gap",
            row=int(rows[bad[0]]),
        )
        if not keep.any():
            raise IngestError(source, "every sample is flagged invalid by the device")
    scale = scale or {}
    sensor = RawSensor(
        foot=foot,
        channels={c: values[p][keep] * scale.get(c, 1.0) for c, p in channels.items()},
        labels=dict(labels),
        units=units,
    )
    table = RawTable(sensors=[sensor], rows=rows[keep], time_label=time_label)
    table.time_s = _time_seconds(source, t[keep], time_scale, time_label, settings, log)
    if gyr_range is not None:
        _rebuild_clipped_gyr(sensor, table, gyr_range, log)
    if gyr_delay_s:
        _undo_gyr_delay(sensor, table.time_s, gyr_delay_s, gyr_delay_source, log)
    return table


def _rebuild_clipped_gyr(sensor: RawSensor, table: RawTable, gyr_range: float, log: WarningLog) -> None:
    """Rebuild the gyro samples clipped at the device's range, before anything interpolates them;
    only on strictly increasing time (an unordered file fails later in `condition` anyway)."""
    t_s = table.time_s
    if t_s.size < 2 or not np.all(np.diff(t_s) > 0):
        return
    counts, first = {}, t_s.size
    for c in (c for c in GYR if c in sensor.channels):
        before = sensor.channels[c]
        sensor.channels[c], counts[c] = rebuild_clipped(t_s, before, gyr_range)
        if counts[c]:
            first = min(first, int(np.argmax(sensor.channels[c] != before)))
    if first < t_s.size:
        per_axis = ", ".join(f"{k} of {sensor.labels.get(c, c)}" for c, k in counts.items() if k)
        log.add(
            GYRO_CLIPPED,
            f"gyroscope samples at the device's range (±{gyr_range:.4g} {sensor.units.get('gyr') or ''}) "
            f"rebuilt by a cubic across each clipped run (ingest.clipping): {per_axis}",
            row=int(table.rows[first]),
        )


def _undo_gyr_delay(sensor: RawSensor, t_s: np.ndarray, delay_s: float, why: str, log: WarningLog) -> None:
    """Read the gyro channels `delay_s` later (ends held); only on strictly increasing time, where
    interpolation means something (an unordered file fails later in `condition` anyway)."""
    gyr = [c for c in GYR if c in sensor.channels]
    if not gyr or t_s.size < 2 or not np.all(np.diff(t_s) > 0):
        return
    for c in gyr:
        sensor.channels[c] = np.interp(t_s + delay_s, t_s, sensor.channels[c])
    log.add(GYRO_DELAY, f"gyroscope read {1000.0 * delay_s:g} ms later than the accelerometer ({why})")
