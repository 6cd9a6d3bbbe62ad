"""CSV readers: the generic one-header-row file and the gaitmap two-row-header file.

(Over ~500 lines: the generic and the gaitmap reader share the header, field-count and cell checks and
the per-line scans that name a bad line; split, those private helpers would cross modules.)

Both turn the file into `RawSensor`s: float channels under canonical names plus the file line of
every sample, and a time base (time in s, or a sample index that needs a rate). Validation of the
numbers (time order, gaps, units, saturation) happens in `condition`; here only the text is
checked: header, field counts, empty and non-numeric cells. Parsing is polars' CSV reader over the
whole body; the per-line byte scans below run only when something is wrong, to name the line.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from strideflow.hardware.schema import ACC, FEET, GYR, MAG
from strideflow.ingest.columns import AXIS_KEYS, INDEX_KEYS, ColumnName, parse_name, suggest, time_scale
from strideflow.ingest.errors import (
    BLANK_LINE,
    IGNORED_COLUMN,
    IGNORED_SENSOR,
    TIME_UNIT,
    IngestError,
    WarningLog,
)
from strideflow.ingest.mapping import TIME_KEY, nearest_columns
from strideflow.ingest.settings import ReadSettings

REQUIRED = (*ACC, *GYR)
_SEPARATORS = (",", ";", "\t")


@dataclass
class RawSensor:
    """One foot's channels as read from a file, before conditioning."""

    foot: str | None
    channels: dict[str, np.ndarray]  # canonical name (acc_x...) -> values as written
    labels: dict[str, str]  # canonical name -> column as the file names it (for messages)
    units: dict[str, str | None] = field(default_factory=dict)  # "acc"/"gyr" -> unit the header states


@dataclass
class RawTable:
    """What a reader found: sensors sharing one time base."""

    sensors: list[RawSensor]
    rows: np.ndarray  # int64, 1-based file line of every sample
    time_s: np.ndarray | None = None  # time in s as written (not yet relative), or None
    sample_index: np.ndarray | None = None  # integer sample numbers that need a sampling rate
    time_label: str | None = None


def _split_lines(data: bytes, count: int) -> tuple[list[str], int, int]:
    """First `count` lines that are neither blank nor `#` comments.

    Returns them decoded, the byte offset after the last one and the number of lines consumed.
    """
    lines: list[str] = []
    pos = 0
    consumed = 0
    while len(lines) < count and pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        raw = data[pos:end]
        pos = end + 1
        consumed += 1
        text = raw.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
        if text and not text.startswith("#"):
            lines.append(text)
    return lines, min(pos, len(data)), consumed


def _cells(line: str, sep: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=sep))
    except (csv.Error, StopIteration):
        return line.split(sep)


def sniff_separator(line: str) -> str:
    """The separator used most in a header line (comma when none is)."""
    counts = [line.count(s) for s in _SEPARATORS]
    return _SEPARATORS[int(np.argmax(counts))] if max(counts) > 0 else ","


def looks_like_gaitmap(first: list[str], second: list[str]) -> bool:
    """Two header rows: sensor names over axis names (`left_sensor` over `acc_x`)."""
    if len(first) < 2 or len(second) != len(first):
        return False
    axis_cells = [parse_name(c).key in AXIS_KEYS for c in second[1:]]
    sensor_cells = [parse_name(c).key not in AXIS_KEYS and not _is_number(c) for c in first[1:]]
    return sum(axis_cells) >= 3 and all(sensor_cells)


def sniff(data: bytes) -> str:
    """ "gaitmap" or "csv" from the first two header lines."""
    lines, _, _ = _split_lines(data[:65536], 2)
    if len(lines) < 2:
        return "csv"
    sep = sniff_separator(lines[0])
    return "gaitmap" if looks_like_gaitmap(_cells(lines[0], sep), _cells(lines[1], sep)) else "csv"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Body:
    """The data lines of a CSV file, read by polars as strings, with line-precise diagnostics."""

    def __init__(self, source: str, body: bytes, first_line: int, sep: str, labels: list[str]):
        self.source = source
        self.body = body
        self.first_line = first_line  # file line (1-based) of the body's first line
        self.sep = sep
        self.labels = labels
        self._starts: np.ndarray | None = None

    def _line_starts(self) -> np.ndarray:
        if self._starts is None:
            nl = np.flatnonzero(np.frombuffer(self.body, dtype=np.uint8) == ord("\n"))
            self._starts = np.concatenate(([0], nl + 1))
        return self._starts

    def line(self, i: int) -> str:
        """Text of the body's i-th line (0-based), without the line break."""
        starts = self._line_starts()
        if i >= len(starts):
            return ""
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(self.body)
        return self.body[starts[i] : end].decode("utf-8", errors="replace").rstrip("\r")

    def n_lines(self) -> int:
        starts = self._line_starts()
        return len(starts) if starts[-1] < len(self.body) else len(starts) - 1

    def _field_count_error(self, i: int, n_found: int) -> IngestError:
        n = len(self.labels)
        if n_found < n and i == self.n_lines() - 1:
            problem = f"truncated last line: {n_found} of {n} fields"
        elif n_found < n:
            problem = f"{n_found} of {n} fields"
        else:
            problem = f"{n_found} fields, but the header names {n}"
        return IngestError(self.source, problem, row=self.first_line + i)

    def first_ragged_line(self) -> IngestError | None:
        """The first line whose field count differs from the header's (quotes not honoured)."""
        arr = np.frombuffer(self.body, dtype=np.uint8)
        starts = self._line_starts()
        n_lines = self.n_lines()
        seps = np.flatnonzero(arr == ord(self.sep))
        per_line = np.bincount(np.searchsorted(starts, seps, side="right") - 1, minlength=len(starts))
        counts = per_line[:n_lines] + 1
        ends = np.append(starts[1:] - 1, len(self.body))[:n_lines]
        lengths = ends - starts[:n_lines]
        blank = lengths == 0
        if lengths.size:
            blank |= (lengths == 1) & (arr[np.minimum(starts[:n_lines], len(arr) - 1)] == ord("\r"))
        bad = np.flatnonzero((counts != len(self.labels)) & ~blank)
        if bad.size == 0:
            return None
        i = int(bad[0])
        return self._field_count_error(i, int(counts[i]))

    def numbers(self, wanted: dict[int, str], log: WarningLog) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """The wanted columns (position -> label) as float64 and each row's file line.

        Fast path: polars parses the numbers itself. On any trouble the slow path reads text and
        finds the exact line and cell to blame.
        """
        if not self.body.strip():
            raise IngestError(self.source, "no data rows (header only)")
        if self.sep != ";":
            schema = {f"c{i}": pl.Float64() if i in wanted else pl.String() for i in range(len(self.labels))}
            try:
                df = pl.read_csv(
                    self.body,
                    has_header=False,
                    schema=schema,
                    separator=self.sep,
                    quote_char='"',
                    truncate_ragged_lines=False,
                )
            except Exception:  # any parse problem: let the slow path name it
                df = None
            if df is not None and df.height and df.null_count().sum_horizontal()[0] == 0:
                rows = self.first_line + np.arange(df.height, dtype=np.int64)
                return {p: df[f"c{p}"].to_numpy() for p in wanted}, rows
        df, rows = self.read(log)
        return self.floats(df, rows, wanted), rows

    def read(self, log: WarningLog) -> tuple[pl.DataFrame, np.ndarray]:
        """All cells as strings (blank lines dropped with a warning) and each row's file line."""
        names = [f"c{i}" for i in range(len(self.labels))]
        if not self.body.strip():
            raise IngestError(self.source, "no data rows (header only)")
        try:
            df = pl.read_csv(
                self.body,
                has_header=False,
                schema={n: pl.String() for n in names},
                separator=self.sep,
                encoding="utf8-lossy",
                quote_char='"',
                truncate_ragged_lines=False,
            )
        except Exception as exc:  # polars raises several types for malformed text
            ragged = self.first_ragged_line()
            if ragged is not None:
                raise ragged from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IngestError(self.source, f"not readable as CSV ({first})") from None
        rows = self.first_line + np.arange(df.height, dtype=np.int64)
        all_null = df.select(pl.all_horizontal(pl.all().is_null()).alias("x"))["x"].to_numpy()
        if all_null.any():
            for i in np.flatnonzero(all_null):
                if self.line(int(i)).strip(" \t\r"):
                    # separators only: every cell empty
                    raise IngestError(
                        self.source, "empty cells only", row=int(rows[i]), column=self.labels[0]
                    )
            # the body was stripped of trailing blank lines, so these sit between data lines
            for i in np.flatnonzero(all_null):
                log.add(BLANK_LINE, "blank line ignored", row=int(rows[i]))
            keep = ~all_null
            df = df.filter(pl.Series(keep))
            rows = rows[keep]
        return df, rows

    def floats(self, df: pl.DataFrame, rows: np.ndarray, wanted: dict[int, str]) -> dict[int, np.ndarray]:
        """Parse the wanted columns (position -> label) as float64; empty or non-numeric cells raise."""
        if df.height == 0:
            raise IngestError(self.source, "no data rows (header only)")
        cols = {pos: f"c{pos}" for pos in wanted}
        cleaned = [pl.col(c).str.strip_chars() for c in cols.values()]
        if self.sep == ";":  # decimal comma, as European spreadsheets write with `;` separators
            cleaned = [c.str.replace(",", ".", literal=True) for c in cleaned]
        parsed = df.select(
            *[c.alias(f"s{p}") for c, p in zip(cleaned, cols, strict=True)],
            *[c.cast(pl.Float64, strict=False).alias(f"f{p}") for c, p in zip(cleaned, cols, strict=True)],
        )
        bad = parsed.select(pl.sum_horizontal([pl.col(f"f{p}").is_null() for p in cols]).alias("n"))[
            "n"
        ].to_numpy()
        if bad.any():
            self._raise_bad_cell(parsed, rows, wanted, int(np.flatnonzero(bad)[0]))
        return {p: parsed[f"f{p}"].to_numpy() for p in cols}

    def _raise_bad_cell(self, parsed: pl.DataFrame, rows: np.ndarray, wanted: dict[int, str], i: int) -> None:
        line = self.line(int(rows[i]) - self.first_line)
        n_found = len(_cells(line, self.sep))
        if n_found != len(self.labels):
            raise self._field_count_error(int(rows[i]) - self.first_line, n_found)
        for p, label in wanted.items():
            if parsed[f"f{p}"][i] is None:
                text = parsed[f"s{p}"][i]
                problem = "empty cell" if not text else f"not a number ({text[:40]!r})"
                n_bad = int(parsed[f"f{p}"].is_null().sum())
                if n_bad > 1:
                    problem += f" ({n_bad} bad cells in this column)"
                raise IngestError(self.source, problem, row=int(rows[i]), column=label)


def _open(source: str, data: bytes, header_lines: int) -> tuple[list[list[str]], _Body]:
    if not data.strip():
        raise IngestError(source, "empty file")
    lines, offset, consumed = _split_lines(data, header_lines)
    if len(lines) < header_lines:
        raise IngestError(source, f"expected {header_lines} header row(s), found {len(lines)}", row=1)
    sep = sniff_separator(lines[0])
    headers = [_cells(line, sep) for line in lines]
    end = len(data)
    while end > offset and data[end - 1] in b"\r\n\t ":  # trailing blank lines carry nothing
        end -= 1
    body = data[offset:end]
    labels = [c.strip() for c in headers[-1]]
    if header_lines == 2 and len(headers[0]) != len(headers[1]):
        raise IngestError(
            source,
            f"the two header rows have {len(headers[0])} and {len(headers[1])} fields",
            row=consumed,
        )
    return headers, _Body(source, body, consumed + 1, sep, labels)


def _time_seconds(
    source: str, values: np.ndarray, scale_by_name: float, label: str, settings: ReadSettings, log: WarningLog
) -> np.ndarray:
    """Time column to seconds: the unit its name implies, unless the median step says otherwise."""
    steps = np.diff(values)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if steps.size == 0:
        return values * scale_by_name
    median = float(np.median(steps))

    def plausible(scale: float) -> bool:
        rate = 1.0 / (median * scale)
        return settings.min_rate_hz <= rate <= settings.max_rate_hz

    if plausible(scale_by_name):
        return values * scale_by_name
    names = {1.0: "s", 1e-3: "ms", 1e-6: "µs", 1e-9: "ns"}
    for scale in names:
        if plausible(scale):
            log.add(
                TIME_UNIT,
                f"read as {names[scale]}, not {names[scale_by_name]}: the median step {median:g} "
                f"would otherwise mean {1.0 / (median * scale_by_name):.4g} Hz",
                column=label,
            )
            return values * scale
    raise IngestError(
        source,
        f"median time step {median:g} gives no plausible sampling rate "
        f"({settings.min_rate_hz:g} to {settings.max_rate_hz:g} Hz) in s, ms, µs or ns",
        column=label,
    )


def _group_units(source: str, names: dict[str, ColumnName]) -> dict[str, str | None]:
    units: dict[str, str | None] = {}
    for group, axes in (("acc", ACC), ("gyr", GYR)):
        stated = {names[a].unit for a in axes if a in names and names[a].unit is not None}
        if len(stated) > 1:
            raise IngestError(source, f"the {group} columns state different units: {sorted(stated)}")
        units[group] = stated.pop() if stated else None
    return units


def _assign_axes(
    source: str,
    labels: list[tuple[int, str]],
    column_prefix: str,
    log: WarningLog,
    row: int,
    preset: dict[str, tuple[int, str]] | None = None,
) -> tuple[dict[str, int], dict[str, ColumnName], list[tuple[int, str]]]:
    """Map header cells to canonical axes; returns positions, parsed names and unrecognised cells.

    preset: canonical -> (position, label) chosen by the caller's column mapping; they win over names.
    """
    positions: dict[str, int] = {c: pos for c, (pos, _) in (preset or {}).items()}
    names: dict[str, ColumnName] = {c: parse_name(label) for c, (_, label) in (preset or {}).items()}
    unknown: list[tuple[int, str]] = []
    for pos, label in labels:
        name = parse_name(label)
        canonical = AXIS_KEYS.get(name.key)
        if canonical is None:
            unknown.append((pos, label))
            continue
        if preset and canonical in preset:
            log.add(
                IGNORED_COLUMN, f"{canonical} is mapped to {preset[canonical][1]!r}; ignored", column=label
            )
            continue
        if canonical in positions:
            first = names[canonical].label
            raise IngestError(
                source,
                f"columns {first!r} and {label!r} both name {canonical}",
                row=row,
                column=column_prefix + label,
            )
        positions[canonical] = pos
        names[canonical] = name
    missing = [c for c in REQUIRED if c not in positions]
    if missing:
        seen = [label for _, label in unknown]
        hint = suggest(missing[0], seen)
        more = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        near = {c: nearest_columns(c, seen) for c in missing}
        near_text = "; ".join(f"{c}: {', '.join(repr(n[:40]) for n in v)}" for c, v in near.items() if v)
        shown = ", ".join(repr(x[:40]) for x in seen[:30]) + (
            f" and {len(seen) - 30} more" if len(seen) > 30 else ""
        )
        raise IngestError(
            source,
            f"no column for {missing[0]}{hint}{more}. "
            f"Columns seen: {shown or 'none'}"
            + (f". Nearest matches: {near_text}" if near_text else "")
            + ". Name them with --columns acc_x=COL,... (upload and manifest field: columns)",
            row=row,
            column=column_prefix + missing[0],
        )
    present_mag = [c for c in MAG if c in positions]
    if 0 < len(present_mag) < 3:
        log.add(
            IGNORED_COLUMN,
            f"magnetometer columns ignored: only {', '.join(present_mag)} of mag_x, mag_y, mag_z present",
            row=row,
        )
        for c in present_mag:
            del positions[c]
    return positions, names, unknown


def _mapped_positions(
    source: str, labels: list[str], columns: dict[str, str], row: int
) -> dict[str, tuple[int, str]]:
    """canonical -> (position, label) of a user's column mapping; exact names first, then ignoring case."""
    exact = {label: pos for pos, label in enumerate(labels)}
    folded = {label.strip().lower(): pos for pos, label in enumerate(labels)}
    out = {}
    for canonical, column in columns.items():
        pos = exact.get(column, folded.get(column.strip().lower()))
        if pos is None:
            near = nearest_columns(column, labels)
            raise IngestError(
                source,
                f"--columns {canonical}={column!r}: no such column. Columns seen: "
                + ", ".join(repr(x) for x in labels)
                + (f". Nearest matches: {', '.join(repr(n) for n in near)}" if near else ""),
                row=row,
            )
        out[canonical] = (pos, labels[pos])
    return out


def read_generic_csv(
    source: str,
    data: bytes,
    *,
    foot: str | None,
    settings: ReadSettings,
    log: WarningLog,
    columns: dict[str, str] | None = None,
) -> RawTable:
    """One header row naming the axes; an optional time column; one foot.

    columns: the user's mapping (canonical channel or `t` -> column label); mapped columns are used
    whatever their names, the rest are found by name.
    """
    headers, body = _open(source, data, 1)
    header_row = body.first_line - 1
    labels = body.labels
    preset = _mapped_positions(source, labels, columns, header_row) if columns else {}
    time_pos: int | None = None
    time_scale_by_name = 1.0
    if TIME_KEY in preset:
        time_pos = preset.pop(TIME_KEY)[0]
        time_scale_by_name = time_scale(parse_name(labels[time_pos])) or 1.0
    taken = {pos for pos, _ in preset.values()} | ({time_pos} if time_pos is not None else set())
    candidates: list[tuple[int, str]] = []
    for pos, label in enumerate(labels):
        if pos in taken:
            continue
        name = parse_name(label)
        if name.key in INDEX_KEYS:
            continue  # a row number or a logger's sample counter: neither data nor time
        scale = time_scale(name)
        if scale is not None:
            if TIME_KEY in (columns or {}):
                log.add(IGNORED_COLUMN, f"time is mapped to {labels[time_pos]!r}; ignored", column=label)
            elif time_pos is None:
                time_pos, time_scale_by_name = pos, scale
            else:
                log.add(
                    IGNORED_COLUMN, f"second time column ignored (using {labels[time_pos]!r})", column=label
                )
            continue
        candidates.append((pos, label))
    positions, names, unknown = _assign_axes(source, candidates, "", log, header_row, preset)
    for _, label in unknown:
        log.add(IGNORED_COLUMN, "not an axis, time or index column; ignored", row=header_row, column=label)
    wanted = {pos: labels[pos] for pos in positions.values()}
    if time_pos is not None:
        wanted[time_pos] = labels[time_pos]
    values, rows = body.numbers(wanted, log)
    sensor = RawSensor(
        foot=foot,
        channels={c: values[p] for c, p in positions.items()},
        labels={c: labels[p] for c, p in positions.items()},
        units=_group_units(source, names),
    )
    table = RawTable(sensors=[sensor], rows=rows)
    if time_pos is not None:
        table.time_label = labels[time_pos]
        table.time_s = _time_seconds(
            source, values[time_pos], time_scale_by_name, labels[time_pos], settings, log
        )
    return table


def foot_from_name(name: str) -> str | None:
    """`left` or `right` when exactly one of them starts a word of the name (`left_sensor`, `ms_left`)."""
    tokens = [t for t in re.split(r"[^a-z]+", name.lower()) if t]
    found = {f for f in FEET for t in tokens if t.startswith(f)}
    return found.pop() if len(found) == 1 else None


def read_gaitmap_csv(
    source: str,
    data: bytes,
    *,
    foot: str | None,
    settings: ReadSettings,
    log: WarningLog,
    fallback_foot: str | None = None,
) -> RawTable:
    """Two header rows (sensor over axis), first column a sample index or time in s; one or two feet."""
    headers, body = _open(source, data, 2)
    sensor_row, axis_row = body.first_line - 2, body.first_line - 1
    sensors_line = [c.strip() for c in headers[0]]
    labels = body.labels
    by_sensor: dict[str, list[tuple[int, str]]] = {}
    for pos in range(1, len(labels)):
        by_sensor.setdefault(sensors_line[pos], []).append((pos, labels[pos]))
    feet: dict[str, str] = {}
    if len(by_sensor) == 1 and fallback_foot is not None and foot_from_name(next(iter(by_sensor))) is None:
        # a one-sensor file whose sensor name says no foot: the caller or the file name does
        feet[next(iter(by_sensor))] = fallback_foot
    for sensor in by_sensor:
        if sensor in feet:
            continue
        f = foot_from_name(sensor)
        if f is None or f in feet.values():
            log.add(IGNORED_SENSOR, "not a left or right foot sensor; ignored", row=sensor_row, column=sensor)
            continue
        if foot is not None and f != foot:
            log.add(
                IGNORED_SENSOR,
                f"{f} foot left out (foot={foot!r} was asked for)",
                row=sensor_row,
                column=sensor,
            )
            continue
        feet[sensor] = f
    if not feet:
        asked = f" for foot {foot!r}" if foot else ""
        raise IngestError(
            source,
            f"no left or right foot sensor{asked} in the first header row ({sorted(by_sensor)})",
            row=sensor_row,
        )
    wanted: dict[int, str] = {0: labels[0] or sensors_line[0] or "time/index"}
    parsed: list[tuple[str, str, dict[str, int], dict[str, ColumnName]]] = []
    for sensor, f in feet.items():
        positions, names, unknown = _assign_axes(source, by_sensor[sensor], f"{sensor}/", log, axis_row)
        for _, label in unknown:
            log.add(IGNORED_COLUMN, "not an axis column; ignored", row=axis_row, column=f"{sensor}/{label}")
        wanted.update({p: f"{sensor}/{labels[p]}" for p in positions.values()})
        parsed.append((sensor, f, positions, names))
    values, rows = body.numbers(wanted, log)
    table = RawTable(
        sensors=[
            RawSensor(
                foot=f,
                channels={c: values[p] for c, p in positions.items()},
                labels={c: wanted[p] for c, p in positions.items()},
                units=_group_units(source, names),
            )
            for sensor, f, positions, names in parsed
        ],
        rows=rows,
        time_label=wanted[0],
    )
    first = values[0]
    steps = np.diff(first)
    finite = np.isfinite(first)
    if finite.all() and np.all(first == np.round(first)) and (steps.size == 0 or np.median(steps) == 1):
        table.sample_index = first
    else:
        table.time_s = _time_seconds(source, first, 1.0, wanted[0], settings, log)
    return table
