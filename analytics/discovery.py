"""Find the recordings of a dataset directory: which file holds which athlete, session and foot.

`find_recordings(dataset_dir)` answers one table, one row per file, sorted by athlete, session
and foot, with the columns of `RECORDINGS_SCHEMA`:

- `path`: absolute path of the file (str);
- `athlete_id`, `session_id`: ids, checked with `analytics.partitions.check_id`;
- `foot`: "left" or "right", or null when the file holds both feet;
- `format`: an ingest format (`ingest.FORMATS`), "auto" unless the manifest names one;
- `sampling_rate_hz`: nullable float, Hz (needed only for files without a time column);
- `columns`, `units`: nullable str, a column mapping (`acc_x=COL,...`) and units (`acc=g,gyr=rad/s`)
  for files no reader understands (`ingest.mapping`);
- `session_date`: nullable ISO date (yyyy-mm-dd) of the session.

Two sources, tried in this order:

1. **Manifest.** `DATASET_DIR/manifest.csv` (DESIGN.md; what `strideflow simulate` writes) with
   the columns `path` (relative to the dataset directory, or absolute), `athlete_id`,
   `session_id`, and optionally `foot` (left/right, empty = both feet), `sampling_rate_hz`,
   `session_date` (yyyy-mm-dd), `format`, `columns` and `units`. Other columns are ignored. Every
   row must name an existing file; errors name the manifest's line (the header is line 1).
2. **Folder layout** `DATASET_DIR/ATHLETE/SESSION/FOOT.<ext>`, used when there is no manifest.
   `<ext>` is one that ingest reads (.parquet, .pq, .csv, .txt). `FOOT` is `left` or `right`
   (any case), or `both` for a file that holds both feet. The session date is the session
   folder's name when that starts with an ISO date (`2025-03-14` or `2025-03-14_am`), else
   null. Files directly in the dataset directory (a README, `truth_strides.parquet`), files
   with other extensions, and names starting with `.` or `_` are ignored; a readable
   extension with any other stem is an error (rather than a silently skipped recording).

In both cases a session may hold one file per foot, or a single file with both feet; two files
for the same foot of a session, or a both-feet file next to another file of the same session,
are an error. Every error is a `DiscoveryError` naming the manifest line or the path.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import polars as pl

from strideflow.analytics.partitions import PartitionError, check_id
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import ATHLETE_ID, FEET, FOOT, SESSION_DATE, SESSION_ID
from strideflow.ingest import FORMATS
from strideflow.ingest.mapping import MappingError, parse_columns, parse_units

MANIFEST = "manifest.csv"
PATH = "path"
FORMAT = "format"
SAMPLING_RATE_HZ = "sampling_rate_hz"
COLUMNS = "columns"
UNITS = "units"
READABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".txt", ".h5", ".gz")
BOTH_FEET_STEM = "both"
RECORDINGS_SCHEMA: dict[str, pl.DataType] = {
    PATH: pl.String(),
    ATHLETE_ID: pl.String(),
    SESSION_ID: pl.String(),
    FOOT: pl.String(),
    FORMAT: pl.String(),
    SAMPLING_RATE_HZ: pl.Float64(),
    SESSION_DATE: pl.String(),
    COLUMNS: pl.String(),
    UNITS: pl.String(),
}
_REQUIRED = (PATH, ATHLETE_ID, SESSION_ID)
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:$|[^0-9])")


class DiscoveryError(StrideflowError):
    """A dataset directory whose recordings cannot be listed; the message names line or path."""


def _iso_date(text: str, where: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise DiscoveryError(f"{where}: {SESSION_DATE} {text!r} is not an ISO date (yyyy-mm-dd)") from None


def _check_ids(athlete_id: str, session_id: str, where: str) -> None:
    try:
        check_id(ATHLETE_ID, athlete_id)
        check_id(SESSION_ID, session_id)
    except PartitionError as exc:
        raise DiscoveryError(f"{where}: {exc}") from None


def _blank(value: str | None) -> bool:
    return value is None or value.strip() == ""


def _from_manifest(root: Path, manifest: Path) -> list[dict]:
    try:
        table = pl.read_csv(manifest, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DiscoveryError(f"{manifest}: cannot read the manifest ({exc})") from None
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise DiscoveryError(
            f"{manifest}: missing column(s) {', '.join(missing)} (needs {', '.join(_REQUIRED)})"
        )
    rows = []
    for line, rec in enumerate(table.iter_rows(named=True), start=2):
        where = f"{manifest}, line {line}"
        for c in _REQUIRED:
            if _blank(rec.get(c)):
                raise DiscoveryError(f"{where}: {c} is empty")
        athlete_id, session_id = rec[ATHLETE_ID].strip(), rec[SESSION_ID].strip()
        _check_ids(athlete_id, session_id, where)
        path = Path(rec[PATH].strip())
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DiscoveryError(f"{where}: file {path} does not exist")
        foot = None if _blank(rec.get(FOOT)) else rec[FOOT].strip().lower()
        if foot is not None and foot not in FEET:
            raise DiscoveryError(f"{where}: {FOOT} {rec[FOOT]!r} is not left, right or empty (both feet)")
        fmt = "auto" if _blank(rec.get(FORMAT)) else rec[FORMAT].strip().lower()
        if fmt not in FORMATS:
            raise DiscoveryError(f"{where}: {FORMAT} {rec[FORMAT]!r} is not one of {', '.join(FORMATS)}")
        rate = None
        if not _blank(rec.get(SAMPLING_RATE_HZ)):
            try:
                rate = float(rec[SAMPLING_RATE_HZ])
            except ValueError:
                rate = math.nan
            if not (math.isfinite(rate) and rate > 0):
                raise DiscoveryError(
                    f"{where}: {SAMPLING_RATE_HZ} {rec[SAMPLING_RATE_HZ]!r} is not a positive number"
                )
        date = None if _blank(rec.get(SESSION_DATE)) else _iso_date(rec[SESSION_DATE].strip(), where)
        mapping = {k: None if _blank(rec.get(k)) else rec[k].strip() for k in (COLUMNS, UNITS)}
        try:
            parse_columns(mapping[COLUMNS])
            parse_units(mapping[UNITS])
        except MappingError as exc:
            raise DiscoveryError(f"{where}: {exc}") from None
        rows.append(
            {
                PATH: str(path.resolve()),
                ATHLETE_ID: athlete_id,
                SESSION_ID: session_id,
                FOOT: foot,
                FORMAT: fmt,
                SAMPLING_RATE_HZ: rate,
                SESSION_DATE: date,
                **mapping,
                "_where": where,
            }
        )
    return rows


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _from_layout(root: Path) -> list[dict]:
    rows = []
    for athlete_dir in sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p.name)):
        for session_dir in sorted(p for p in athlete_dir.iterdir() if p.is_dir() and not _hidden(p.name)):
            for path in sorted(p for p in session_dir.iterdir() if p.is_file() and not _hidden(p.name)):
                if path.suffix.lower() not in READABLE_SUFFIXES:
                    continue
                where = str(path)
                stem = (Path(path.stem) if path.suffix.lower() == ".gz" else path).stem.lower()
                if stem not in (*FEET, BOTH_FEET_STEM):
                    raise DiscoveryError(
                        f"{where}: cannot tell the foot from the file name: name it left, right or "
                        f"{BOTH_FEET_STEM} (both feet in one file), e.g. left{path.suffix}"
                    )
                _check_ids(athlete_dir.name, session_dir.name, where)
                match = _DATE_PREFIX.match(session_dir.name)
                rows.append(
                    {
                        PATH: str(path.resolve()),
                        ATHLETE_ID: athlete_dir.name,
                        SESSION_ID: session_dir.name,
                        FOOT: None if stem == BOTH_FEET_STEM else stem,
                        FORMAT: "auto",
                        SAMPLING_RATE_HZ: None,
                        SESSION_DATE: None if match is None else _iso_date(match.group(1), where),
                        COLUMNS: None,
                        UNITS: None,
                        "_where": where,
                    }
                )
    return rows


def _check_sessions(rows: list[dict]) -> None:
    """One file per foot per session, or one both-feet file alone; one date per session."""
    seen: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r[ATHLETE_ID], r[SESSION_ID])
        prev = seen.setdefault(key, {"feet": {}, "date": r[SESSION_DATE], "where": r["_where"]})
        slot = r[FOOT] or BOTH_FEET_STEM
        feet = prev["feet"]
        clash = feet.get(slot) or feet.get(BOTH_FEET_STEM)
        if clash is None and slot == BOTH_FEET_STEM and feet:
            clash = next(iter(feet.values()))
        if clash is not None:
            what = "both feet" if slot == BOTH_FEET_STEM or BOTH_FEET_STEM in feet else f"the {slot} foot"
            raise DiscoveryError(
                f"{r['_where']}: athlete {key[0]}, session {key[1]} already has a file for {what} "
                f"({clash}); give each foot of a session one file, or one file with both feet"
            )
        prev["feet"][slot] = r["_where"]
        if r[SESSION_DATE] != prev["date"]:
            raise DiscoveryError(
                f"{r['_where']}: athlete {key[0]}, session {key[1]} has {SESSION_DATE} {r[SESSION_DATE]} "
                f"but {prev['where']} says {prev['date']}"
            )


def find_recordings(dataset_dir: str | Path) -> pl.DataFrame:
    """Every recording of a dataset directory (manifest.csv, else the folder layout); see module doc."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DiscoveryError(f"{root}: dataset directory does not exist")
    root = root.resolve()
    manifest = root / MANIFEST
    rows = _from_manifest(root, manifest) if manifest.is_file() else _from_layout(root)
    if not rows:
        raise DiscoveryError(
            f"{root}: no recordings found (an empty {MANIFEST}, or no "
            f"ATHLETE/SESSION/FOOT{{{','.join(READABLE_SUFFIXES)}}} files)"
        )
    _check_sessions(rows)
    return pl.DataFrame(
        [{k: v for k, v in r.items() if k != "_where"} for r in rows], schema=RECORDINGS_SCHEMA
    ).sort(ATHLETE_ID, SESSION_ID, FOOT, nulls_last=True)
