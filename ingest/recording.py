"""`read_recording`: any supported file to one validated `samples` table.

Formats: `csv` (generic, one header row naming the axes), `gaitmap` (two header rows, sensor over
axis), `parquet` (the samples schema). `auto` picks Parquet by extension or magic bytes and tells
the two CSV layouts apart by their header rows.

Ids: `athlete_id` and `session_id` default to the file stem with any `left`/`right` word removed
(`imu_sample_ms_left.csv` -> `imu_sample_ms`), so the two one-foot files of a session share them;
a Parquet file's own id columns win over that default, the caller's arguments over both.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from strideflow.hardware.profiles import DeviceProfile
from strideflow.hardware.schema import (
    ACC,
    ATHLETE_ID,
    FEET,
    FOOT,
    GYR,
    INTERPOLATED,
    MAG,
    SAMPLES_OPTIONAL_SCHEMA,
    SAMPLES_SCHEMA,
    SATURATED,
    SEGMENT,
    SESSION_ID,
    T,
)
from strideflow.ingest import condition
from strideflow.ingest.columns import suggest
from strideflow.ingest.csvfile import RawTable, foot_from_name, read_gaitmap_csv, read_generic_csv, sniff
from strideflow.ingest.errors import (
    FOOT_ASSUMED,
    IGNORED_COLUMN,
    IGNORED_SENSOR,
    KEYS_OVERRIDDEN,
    IngestError,
    IngestWarning,
    WarningLog,
)
from strideflow.ingest.formats import REGISTRY, detect_device
from strideflow.ingest.mapping import MappingError, parse_columns, parse_units
from strideflow.ingest.screen import refuse_known_binary
from strideflow.ingest.settings import ReadSettings
from strideflow.ingest.start_time import recording_start
from strideflow.ingest.store import load_parquet

FORMATS = ("auto", "csv", "gaitmap", "parquet", *REGISTRY)
DEFAULT_FOOT = "left"  # for one-sensor device files that name no foot; a FOOT_ASSUMED warning says so
_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
_PREVIOUS = {INTERPOLATED: "_previous_interpolated", SATURATED: "_previous_saturated"}


@dataclass(frozen=True, eq=False)
class Recording:
    """One session's samples from one file, validated and on a uniform grid.

    `samples` has the SAMPLES_SCHEMA columns, mag_* when the file has them, then `segment`,
    `interpolated` and `saturated`; rows are ordered by foot (left first), then time.
    """

    samples: pl.DataFrame
    sampling_rate_hz: float  # Hz, the same for every foot and segment
    source: str  # the path as given
    warnings: tuple[IngestWarning, ...] = field(default=())
    start_time: dt.datetime | None = None  # when the file states it (`ingest.start_time`), else None

    def feet(self) -> tuple[str, ...]:
        """Feet present, in (left, right) order."""
        present = set(self.samples.get_column(FOOT).unique().to_list())
        return tuple(f for f in FEET if f in present)

    @property
    def athlete_id(self) -> str:
        return str(self.samples.get_column(ATHLETE_ID)[0]) if self.samples.height else ""

    @property
    def session_id(self) -> str:
        return str(self.samples.get_column(SESSION_ID)[0]) if self.samples.height else ""

    @property
    def duration_s(self) -> float:
        """Time from the first to the last sample, s."""
        if self.samples.height == 0:
            return 0.0
        t = self.samples.get_column(T)
        return float(t.max() - t.min()) + 1.0 / self.sampling_rate_hz


def default_id(path: str | Path) -> str:
    """File stem without `left`/`right` words: the default athlete and session id."""
    stem = Path(path).stem
    stripped = re.sub(r"(?i)(^|[_\-. ]+)(left|right)(?=$|[_\-. ])", "", stem).strip("_-. ")
    return stripped or stem


def detect_format(path: str | Path, data: bytes) -> str:
    """parquet, a device format (`ingest.formats`), gaitmap or csv from the extension, magic bytes
    and header rows."""
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq") or data[:4] == _PARQUET_MAGIC:
        return "parquet"
    return detect_device(path, data) or sniff(data)


def _utf16_to_utf8(source: str, data: bytes) -> bytes:
    """A UTF-16 text export (byte-order mark first, as spreadsheet "Unicode text" writes) as UTF-8."""
    if data[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        return data
    try:
        return data.decode("utf-16").encode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(
            source, f"starts as UTF-16 text but is not ({exc.reason} at byte {exc.start})"
        ) from None


def _gunzip(source: str, data: bytes) -> bytes:
    """The contents of a gzip file (`.csv.gz`), or the bytes as they are when not gzip."""
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(source, f"not a readable gzip file ({exc})") from None


def _check_choice(source: str, name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise IngestError(source, f"{name}={value!r} is not one of {shown}")


def read_recording(
    path: str | Path,
    *,
    format: str = "auto",
    sampling_rate_hz: float | None = None,
    foot: str | None = None,
    athlete_id: str | None = None,
    session_id: str | None = None,
    gyr_unit: str | None = None,
    acc_unit: str | None = None,
    profile: DeviceProfile | None = None,
    settings: ReadSettings = ReadSettings(),
    columns: dict[str, str] | str | None = None,
    units: dict[str, str] | str | None = None,
) -> Recording:
    """Read, validate and repair one recording; raises IngestError naming file, row, column and problem.

    sampling_rate_hz: Hz; required when the file has no time column (a sample index counts as none);
    otherwise checked against the timestamps and used as the nominal rate.
    foot: for files of one foot whose name has no `left`/`right` word; on two-foot files it selects one.
    athlete_id, session_id: default to the file's own id columns (Parquet), else to the file stem
    without its `left`/`right` word (`default_id`).
    gyr_unit: None expects deg/s and rejects rad/s-looking data; "dps" or "rad/s" states it.
    acc_unit: None expects m/s² and rejects g-looking data; "mps2" or "g" states it.
    profile: device whose range defines saturation; without one, flat runs at a plausible full
    scale are flagged.
    columns: a column mapping for a one-header CSV no reader understands, `{"acc_x": "COL", ...}` or
    the text `acc_x=COL,...` (`ingest.mapping`); it makes `auto` read the file as `csv`.
    units: `{"acc": "g", "gyr": "rad/s"}` or the text `acc=g,gyr=rad/s`; the same as acc_unit/gyr_unit.
    """
    source = str(path)
    try:
        columns = parse_columns(columns) if isinstance(columns, str) else (columns or None)
        stated = parse_units(units) if isinstance(units, str) else dict(units or {})
    except MappingError as exc:
        raise IngestError(source, str(exc)) from None
    for group, given in (("acc", acc_unit), ("gyr", gyr_unit)):
        if group in stated and given is not None and stated[group] != given:
            raise IngestError(source, f"{group} unit given twice: {given!r} and {stated[group]!r}")
    acc_unit = acc_unit or stated.get("acc")
    gyr_unit = gyr_unit or stated.get("gyr")
    _check_choice(source, "format", format, FORMATS)
    _check_choice(source, "foot", foot, (None, *FEET))
    _check_choice(source, "gyr_unit", gyr_unit, tuple(condition.GYR_UNITS))
    _check_choice(source, "acc_unit", acc_unit, tuple(condition.ACC_UNITS))
    log = WarningLog(source, settings.max_warnings_per_kind)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise IngestError(source, f"cannot read the file ({exc.strerror or exc})") from None
    data = _utf16_to_utf8(source, _gunzip(source, data))
    name_path = Path(path).with_suffix("") if Path(path).suffix.lower() == ".gz" else Path(path)
    refuse_known_binary(source, data)  # an image or document under a recording's name
    fmt = detect_format(name_path, data) if format == "auto" else format
    if format == "auto" and fmt in ("csv", "gaitmap") and b"\x00" in data[:65536]:
        raise IngestError(
            source,
            f"a binary file, not text: not CSV, nor a known binary format (Parquet, APDM HDF5); "
            f"first bytes {data[:8]!r}",
        )
    if columns:
        if format not in ("auto", "csv") or fmt == "parquet":
            raise IngestError(
                source, f"a column mapping is for one-header CSV files; this is read as {fmt!r}"
            )
        fmt = "csv"
    name_foot = foot_from_name(Path(path).stem)
    if foot is not None and name_foot is not None and foot != name_foot and fmt == "csv":
        log.add(KEYS_OVERRIDDEN, f"the file name says {name_foot}; foot={foot!r} was given and is used")
    ids = {ATHLETE_ID: athlete_id, SESSION_ID: session_id}
    if fmt == "parquet":
        series, stored_ids = _parquet_series(source, data, foot, name_foot, log)
        for key, value in stored_ids.items():
            if ids[key] is None:
                ids[key] = value
            elif value is not None and value != ids[key]:
                log.add(
                    KEYS_OVERRIDDEN, f"file says {value!r}, {ids[key]!r} was given and is used", column=key
                )
    elif fmt in REGISTRY:
        tables = REGISTRY[fmt].read(source, data, Path(path), settings, log)
        series = []
        for table in tables:
            _assign_device_feet(source, table, foot, name_foot, log)
            series.extend(_csv_series(source, table, sampling_rate_hz, settings))
        if not series:
            raise IngestError(source, f"no sensor of the {foot} foot in this file")
    else:
        if fmt == "gaitmap":
            table = read_gaitmap_csv(
                source, data, foot=foot, settings=settings, log=log, fallback_foot=foot or name_foot
            )
        else:
            table = read_generic_csv(
                source, data, foot=foot or name_foot, settings=settings, log=log, columns=columns
            )
        series = _csv_series(source, table, sampling_rate_hz, settings)
    for key in ids:
        if ids[key] is None:
            ids[key] = default_id(path)

    for s in series:
        condition.check_finite(source, s)
    t0 = min(float(np.min(s.t)) for s in series)
    for s in series:
        s.t = s.t - t0
        if not np.all(np.isfinite(s.t)):
            raise IngestError(source, "time values too large to subtract the start", column=s.time_label)
        condition.check_time_order(source, s)
    rate = condition.infer_rate(source, series, sampling_rate_hz, settings)

    with_mag = all(all(c in s.channels for c in MAG) for s in series)
    frames = []
    for s in series:
        if not with_mag and any(c in s.channels for c in MAG):
            log.add(IGNORED_COLUMN, f"magnetometer of the {s.foot} foot dropped: the other foot has none")
            for c in MAG:
                s.channels.pop(c, None)
        condition.convert_units(source, s, gyr_unit, acc_unit, settings, log)
        saturated = condition.saturation_flags(s, profile, settings, log)
        columns = condition.to_uniform_grid(source, s, saturated, rate, settings, log)
        for flag, previous in _PREVIOUS.items():
            if previous in columns:
                columns[flag] = columns[flag] | (columns.pop(previous) > 0)
        frames.append(_frame(columns, ids, s.foot, with_mag))
    samples = pl.concat(frames, how="vertical")
    return Recording(
        samples=samples,
        sampling_rate_hz=rate,
        source=source,
        warnings=log.result(),
        start_time=recording_start(data),
    )


def _frame(
    columns: dict[str, np.ndarray], ids: dict[str, str | None], foot: str, with_mag: bool
) -> pl.DataFrame:
    n = columns[T].size
    data = {
        name: pl.repeat(value, n, dtype=pl.String, eager=True).rename(name)
        for name, value in ((ATHLETE_ID, ids[ATHLETE_ID]), (SESSION_ID, ids[SESSION_ID]), (FOOT, foot))
    }
    names = [T, *ACC, *GYR, *(MAG if with_mag else ()), SEGMENT, INTERPOLATED, SATURATED]
    schema = {**SAMPLES_SCHEMA, **SAMPLES_OPTIONAL_SCHEMA}
    for name in names:
        data[name] = pl.Series(name, columns[name]).cast(schema[name])
    return pl.DataFrame(data)


def _assign_device_feet(
    source: str, table: RawTable, foot: str | None, name_foot: str | None, log: WarningLog
) -> None:
    """Feet of a device file's sensors: the file's own label, else the caller's, else the file name's,
    else DEFAULT_FOOT with a FOOT_ASSUMED warning. With `foot` given, other feet are left out."""
    known = [s for s in table.sensors if s.foot is not None]
    if len(table.sensors) == 1 and known and foot is not None and known[0].foot != foot:
        log.add(KEYS_OVERRIDDEN, f"the file says {known[0].foot}; foot={foot!r} was given and is used")
        known[0].foot = foot
    if known:
        if foot is not None:
            for s in known:
                if s.foot != foot:
                    log.add(IGNORED_SENSOR, f"{s.foot} foot left out (foot={foot!r} was asked for)")
            table.sensors = [s for s in known if s.foot == foot]
        else:
            table.sensors = known
        return
    if len(table.sensors) != 1:
        raise IngestError(source, "several sensors and none says its foot: cannot tell left from right")
    chosen = foot or name_foot
    if chosen is None:
        chosen = DEFAULT_FOOT
        log.add(
            FOOT_ASSUMED,
            f"the file does not say which foot the sensor was on: taken as {DEFAULT_FOOT} "
            "(give --foot left|right, upload field foot; pronation signs depend on it)",
        )
    table.sensors[0].foot = chosen


def _csv_series(
    source: str, table: RawTable, rate: float | None, settings: ReadSettings
) -> list[condition.FootSeries]:
    n = table.rows.size
    if table.time_s is not None:
        t = table.time_s
        label = table.time_label or "time"
    else:
        if rate is None:
            what = (
                "its first column is a sample index"
                if table.sample_index is not None
                else "it has no time column"
            )
            raise IngestError(source, f"{what}: pass sampling_rate_hz (CLI: --rate HZ)")
        condition.infer_rate(source, [], rate, settings)  # range check of the given rate
        if table.sample_index is not None:
            t = (table.sample_index - table.sample_index[0]) / rate
            label = table.time_label or "index"
        else:
            t = np.arange(n, dtype=float) / rate
            label = "sample"
    series = []
    for sensor in table.sensors:
        if sensor.foot is None:
            raise IngestError(
                source,
                "cannot tell which foot this is: give --foot left|right (upload field foot), "
                "or put _left or _right in the file name",
            )
        series.append(
            condition.FootSeries(
                foot=sensor.foot,
                t=t.copy(),
                channels=dict(sensor.channels),
                labels=dict(sensor.labels),
                rows=table.rows,
                time_label=label,
                units=dict(sensor.units),
            )
        )
    return series


def _distinct_strings(column: pl.Series) -> list[str | None]:
    """Distinct values of a column as strings (null as None), fast when it holds one value."""
    as_text = column.cast(pl.String, strict=False)
    if as_text.len() and as_text.null_count() == 0:
        first = as_text[0]
        if (as_text == first).all():
            return [first]
    return as_text.unique().to_list()


def _parquet_series(
    source: str, data: bytes, foot: str | None, name_foot: str | None, log: WarningLog
) -> tuple[list[condition.FootSeries], dict[str, str | None]]:
    df = load_parquet(source, data)
    required = (T, *ACC, *GYR)
    missing = [c for c in required if c not in df.columns]
    if missing:
        extras = [c for c in df.columns if c not in SAMPLES_SCHEMA]
        raise IngestError(source, f"no column {missing[0]}{suggest(missing[0], extras)}", column=missing[0])
    if df.height == 0:
        raise IngestError(source, "no rows")
    numeric = [c for c in (*required, *MAG, *_PREVIOUS) if c in df.columns]
    casted: dict[str, np.ndarray] = {}
    for c in numeric:
        raw = df.get_column(c)
        if raw.dtype == pl.Float64 and raw.null_count() == 0:
            # Already what the cast below gives: nothing can fail, so skip the checks.
            casted[c] = raw.to_numpy().astype(float, copy=False)
            continue
        try:
            col = raw.cast(pl.Float64, strict=False)
        except Exception:  # polars: InvalidOperationError for types with no numeric meaning
            raise IngestError(source, f"not numeric (stored as {df.schema[c]})", column=c) from None
        failed = col.is_null() & raw.is_not_null()
        if failed.any():
            i = int(failed.arg_max())
            raise IngestError(source, f"not a number ({str(raw[i])[:40]!r})", row=i + 1, column=c)
        nulls = col.is_null()
        if nulls.any():
            raise IngestError(source, "empty cell", row=int(nulls.arg_max()) + 1, column=c)
        casted[c] = col.to_numpy().astype(float, copy=False)
    ids: dict[str, str | None] = {}
    for key in (ATHLETE_ID, SESSION_ID):
        if key not in df.columns:
            ids[key] = None
            continue
        values = _distinct_strings(df.get_column(key))
        if len(values) != 1 or values[0] is None:
            raise IngestError(
                source, f"one recording is one session, but this holds {values[:5]}", column=key
            )
        ids[key] = values[0]
    rows = np.arange(1, df.height + 1, dtype=np.int64)
    single_foot = None
    if FOOT in df.columns:
        values = _distinct_strings(df.get_column(FOOT))
        if len(values) == 1 and values[0] in FEET:
            single_foot = values[0]
    else:
        single_foot = foot or name_foot
    if single_foot is not None and (foot is None or foot == single_foot):
        # One foot in the whole file (every simulated or stored recording): no per-row masks.
        channels = {c: casted[c] for c in (*ACC, *GYR, *MAG) if c in casted}
        for flag, previous in _PREVIOUS.items():
            if flag in casted:
                channels[previous] = casted[flag]
        series = [
            condition.FootSeries(
                foot=single_foot,
                t=casted[T],
                channels=channels,
                labels={c: c for c in channels},
                rows=rows,
                time_label=T,
                units={},
            )
        ]
        return series, ids
    if FOOT in df.columns:
        feet = df.get_column(FOOT).cast(pl.String, strict=False).to_numpy()
        bad = np.flatnonzero(~np.isin(feet, FEET))
        if bad.size:
            raise IngestError(
                source, f"foot {feet[bad[0]]!r} is not left or right", row=int(bad[0]) + 1, column=FOOT
            )
    else:
        which = foot or name_foot
        if which is None:
            raise IngestError(
                source,
                "no foot column and no left/right in the file name: "
                "give --foot left|right (upload field foot)",
            )
        feet = np.full(df.height, which, dtype=object)
    series = []
    for f in FEET:
        mask = feet == f
        if not mask.any():
            continue
        if foot is not None and f != foot:
            log.add(IGNORED_SENSOR, f"{f} foot left out (foot={foot!r} was asked for)", column=FOOT)
            continue
        channels = {c: casted[c][mask] for c in (*ACC, *GYR, *MAG) if c in casted}
        for flag, previous in _PREVIOUS.items():
            if flag in casted:
                channels[previous] = casted[flag][mask]
        series.append(
            condition.FootSeries(
                foot=f,
                t=casted[T][mask],
                channels=channels,
                labels={c: c for c in channels},
                rows=rows[mask],
                time_label=T,
                units={},
            )
        )
    if not series:
        raise IngestError(source, f"no samples of the {foot} foot", column=FOOT)
    return series, ids
