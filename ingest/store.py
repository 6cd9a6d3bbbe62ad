"""The canonical sample store: `samples` tables as Parquet files."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from strideflow.hardware.schema import SAMPLES_OPTIONAL_SCHEMA, SAMPLES_SCHEMA
from strideflow.ingest.columns import suggest
from strideflow.ingest.errors import IngestError


def conform(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """Columns of the samples schema in schema order, cast to their dtypes; extra columns kept after them."""
    missing = [c for c in SAMPLES_SCHEMA if c not in df.columns]
    if missing:
        extras = [c for c in df.columns if c not in SAMPLES_SCHEMA]
        raise IngestError(
            source,
            f"not a samples table: no column {missing[0]}{suggest(missing[0], extras)}",
            column=missing[0],
        )
    known = {**SAMPLES_SCHEMA, **SAMPLES_OPTIONAL_SCHEMA}
    order = [c for c in known if c in df.columns] + [c for c in df.columns if c not in known]
    casts = []
    for name in order:
        if name in known:
            try:
                casts.append(df.get_column(name).cast(known[name], strict=True))
            except Exception:  # polars raises InvalidOperationError or ComputeError on bad casts
                raise IngestError(
                    source, f"cannot be read as {known[name]} (stored as {df.schema[name]})", column=name
                ) from None
        else:
            casts.append(df.get_column(name))
    return pl.DataFrame(casts)


def write_samples(df: pl.DataFrame, path: str | Path) -> Path:
    """Write a samples table (schema checked and cast) to Parquet; parent folders are created."""
    path = Path(path)
    table = conform(df, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(path, compression="zstd", statistics=True)
    return path


def load_parquet(source: str, data: bytes) -> pl.DataFrame:
    """A Parquet file's table, or IngestError when it is not one."""
    try:
        return pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow/polars raise several types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IngestError(source, f"not a readable Parquet file ({first[:200]})") from None


def read_samples(path: str | Path) -> pl.DataFrame:
    """A samples table written by `write_samples`, schema checked and cast.

    The store's files are trusted to have passed ingest already; to validate a Parquet file from
    elsewhere use `read_recording(path, format="parquet")`.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(str(path), f"cannot read the file ({exc.strerror or exc})") from None
    return conform(load_parquet(str(path), data), str(path))
