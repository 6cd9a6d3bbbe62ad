"""Property tests: malformed files give a valid samples table or IngestError, never another exception."""

from __future__ import annotations

import io
import os

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.ingest import HEADER, assert_valid_samples, csv_lines, walking_signals

from strideflow.hardware.schema import ACC, ATHLETE_ID, FOOT, GYR, SESSION_ID, T
from strideflow.ingest import IngestError, read_recording

FORMATS = ("auto", "csv", "gaitmap", "parquet")
RATES = (None, 200.0)
CHECKS = settings(
    max_examples=int(os.environ.get("STRIDEFLOW_INGEST_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("malformed")


def _read_or_reject(path, **kwargs) -> None:
    try:
        rec = read_recording(path, **kwargs)
    except IngestError as exc:
        assert str(path) in str(exc)
        event("rejected: " + exc.problem[:28])
        return
    event("accepted")
    assert_valid_samples(rec.samples, rec.sampling_rate_hz)
    assert all(w.source == str(path) for w in rec.warnings)


def _generic_rows(n: int = 40) -> list[list[str]]:
    t, acc, gyr = walking_signals(n)
    return [HEADER.split(",")] + [line.split(",") for line in csv_lines(t, acc, gyr)]


def _gaitmap_rows(n: int = 40) -> list[list[str]]:
    _, acc, gyr = walking_signals(n)
    sensors = ["sensor"] + ["left_sensor"] * 6 + ["right_sensor"] * 6
    axes = ["axis"] + [*ACC, *GYR] * 2
    data = [[str(i)] + [f"{v:.6g}" for v in (*acc[i], *gyr[i], *acc[i], *gyr[i])] for i in range(n)]
    return [sensors, axes, *data]


_TEXT = st.sampled_from(
    ["abc", "", " ", "nan", "inf", "-inf", "1e999", "0x1F", '"', "1,5", "--", "\x00", "é", "1e-320"]
)


@st.composite
def mutated_rows(draw, base):
    rows = [list(r) for r in base]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(
            st.sampled_from(
                [
                    "delete_cell",
                    "swap_cols",
                    "text",
                    "truncate",
                    "nan",
                    "shuffle_time",
                    "duplicate_line",
                    "delete_line",
                    "blank_line",
                    "rename",
                    "extra_cell",
                    "big",
                ]
            )
        )
        i = draw(st.integers(0, len(rows) - 1))
        if not rows[i]:
            continue
        j = draw(st.integers(0, len(rows[i]) - 1))
        if op == "delete_cell":
            del rows[i][j]
        elif op == "swap_cols":
            k = draw(st.integers(0, len(rows[i]) - 1))
            for r in rows:
                if j < len(r) and k < len(r):
                    r[j], r[k] = r[k], r[j]
        elif op == "text":
            rows[i][j] = draw(_TEXT)
        elif op == "truncate":
            rows[i] = rows[i][: draw(st.integers(0, len(rows[i])))]
        elif op == "nan":
            rows[i][j] = "nan"
        elif op == "shuffle_time":
            lines = [r for r in rows[2:] if r]
            order = draw(st.permutations(range(len(lines))))
            firsts = [r[0] for r in lines]
            for r, k in zip(lines, order, strict=True):
                r[0] = firsts[k]
        elif op == "duplicate_line":
            rows.insert(i, list(rows[i]))
        elif op == "delete_line":
            del rows[i]
        elif op == "blank_line":
            rows.insert(i, [])
        elif op == "rename" and rows[min(i, 1)]:
            header = rows[min(i, 1)]
            header[min(j, len(header) - 1)] = draw(
                st.sampled_from(["acc_q", "Gyro X", "time_ms", "index", "", "left", "t"])
            )
        elif op == "extra_cell":
            rows[i].append("7")
        elif op == "jitter":  # move timestamps by up to +-40 % of an interval
            for r in rows[2:]:
                try:
                    r[0] = repr(float(r[0]) + draw(st.floats(-0.002, 0.002)))
                except (ValueError, IndexError):
                    pass
        elif op == "clip":  # a run of samples pinned at a plausible full scale
            value = draw(st.sampled_from(["2000", "-2000", "156.9", "245"]))
            for r in rows[i : i + draw(st.integers(1, 6))]:
                if j < len(r):
                    r[j] = value
        elif op == "big":
            rows[i][j] = draw(st.sampled_from(["1e300", "-1e300", "3000", "-2000", "0"]))
        if not rows:
            break
    return "\n".join(",".join(r) for r in rows) + draw(st.sampled_from(["\n", "", "\n\n", "\r\n"]))


@CHECKS
@given(data=st.binary(max_size=400), fmt=st.sampled_from(FORMATS), rate=st.sampled_from(RATES))
def test_garbage_bytes(folder, data, fmt, rate):
    path = folder / "garbage_left.csv"
    path.write_bytes(data)
    _read_or_reject(path, format=fmt, sampling_rate_hz=rate)


@CHECKS
@given(text=mutated_rows(_generic_rows()), fmt=st.sampled_from(("auto", "csv")), rate=st.sampled_from(RATES))
def test_mutated_generic_csv(folder, text, fmt, rate):
    path = folder / "generic_left.csv"
    path.write_text(text)
    _read_or_reject(path, format=fmt, sampling_rate_hz=rate)


@CHECKS
@given(
    text=mutated_rows(_gaitmap_rows()), fmt=st.sampled_from(("auto", "gaitmap")), rate=st.sampled_from(RATES)
)
def test_mutated_gaitmap_csv(folder, text, fmt, rate):
    path = folder / "gaitmap.csv"
    path.write_text(text)
    _read_or_reject(path, format=fmt, sampling_rate_hz=rate)


@st.composite
def mutated_parquet(draw):
    n = 40
    t, acc, gyr = walking_signals(n)
    cols = {ATHLETE_ID: ["a"] * n, SESSION_ID: ["s"] * n, FOOT: ["left"] * n, T: t}
    cols |= {c: acc[:, i] for i, c in enumerate(ACC)} | {c: gyr[:, i] for i, c in enumerate(GYR)}
    df = pl.DataFrame(cols)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "nan", "null", "shuffle", "text", "foot", "ids", "dup", "empty"]))
        name = draw(st.sampled_from(df.columns)) if df.columns else None
        i = draw(st.integers(0, max(df.height - 1, 0)))
        pick = pl.int_range(pl.len()) == i
        if name is None or df.height == 0:
            break
        if op == "drop":
            df = df.drop(name)
        elif op == "nan" and df.schema[name] == pl.Float64:
            df = df.with_columns(pl.when(pick).then(float("nan")).otherwise(pl.col(name)).alias(name))
        elif op == "null":
            df = df.with_columns(pl.when(pick).then(None).otherwise(pl.col(name)).alias(name))
        elif op == "shuffle":
            df = df.with_columns(pl.col(name).shuffle(seed=draw(st.integers(0, 9))))
        elif op == "text":
            df = df.with_columns(
                pl.when(pick).then(pl.lit(draw(_TEXT))).otherwise(pl.col(name).cast(pl.String)).alias(name)
            )
        elif op == "foot" and FOOT in df.columns:
            df = df.with_columns(
                pl.when(pick)
                .then(pl.lit(draw(st.sampled_from(["right", "middle", ""]))))
                .otherwise(pl.col(FOOT))
                .alias(FOOT)
            )
        elif op == "ids" and ATHLETE_ID in df.columns:
            df = df.with_columns(
                pl.when(pick).then(pl.lit("b")).otherwise(pl.col(ATHLETE_ID)).alias(ATHLETE_ID)
            )
        elif op == "dup":
            df = pl.concat([df, df.slice(i, 1)])
        elif op == "empty":
            df = df.head(0)
    buf = io.BytesIO()
    df.write_parquet(buf)
    data = buf.getvalue()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut]
    return data


@CHECKS
@given(data=mutated_parquet(), fmt=st.sampled_from(("auto", "parquet")), foot=st.sampled_from((None, "left")))
def test_mutated_parquet(folder, data, fmt, foot):
    path = folder / "samples.parquet"
    path.write_bytes(data)
    _read_or_reject(path, format=fmt, foot=foot)


def test_the_unmutated_bases_read(folder):
    """The property tests start from valid files (so their mutations are what breaks them)."""
    path = folder / "base_left.csv"
    path.write_text("\n".join(",".join(r) for r in _generic_rows()) + "\n")
    assert read_recording(path).samples.height == 40
    path = folder / "base.csv"
    path.write_text("\n".join(",".join(r) for r in _gaitmap_rows()) + "\n")
    rec = read_recording(path, sampling_rate_hz=200.0)
    assert rec.feet() == ("left", "right") and rec.samples.height == 80
    assert np.all(rec.samples[T].to_numpy()[:40] == np.arange(40) / 200.0)
