"""Column and unit mappings for CSV files no reader understands, and the unit plausibility warnings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.formats import fmt, motion

from strideflow.hardware.schema import ACC, GYR, MAG, STANDARD_GRAVITY_MPS2
from strideflow.ingest import IngestError, read_recording
from strideflow.ingest.errors import UNIT
from strideflow.ingest.mapping import CHANNEL_KEYS, MappingError, parse_columns, parse_units

FEW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ODD_HEADER = [
    "Zeit",
    "Beschl. vorne",
    "Beschl. links",
    "Beschl. oben",
    "Dreh vorne",
    "Dreh links",
    "Dreh oben",
]


def odd_csv(
    tmp_path: Path, acc_scale: float = 1.0, gyr_rad: bool = True, name: str = "walk_left.csv"
) -> Path:
    """A CSV whose header no reader understands; acc in g * acc_scale, gyr in rad/s (or deg/s)."""
    m = motion(100.0)
    gyr = m["gyr_rad"] if gyr_rad else np.degrees(m["gyr_rad"])
    lines = [",".join(f'"{h}"' if "," in h else h for h in ODD_HEADER)]
    for i, t in enumerate(m["t"]):
        lines.append(",".join([fmt(t), *map(fmt, m["acc_g"][:, i] * acc_scale), *map(fmt, gyr[:, i])]))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


MAPPING = ",".join(f"{k}={v}" for k, v in zip(("t", *ACC, *GYR), ODD_HEADER, strict=True))


def test_mapping_reads_an_unknown_layout(tmp_path):
    path = odd_csv(tmp_path)
    rec = read_recording(path, columns=MAPPING, units="acc=g,gyr=rad/s")
    m = motion(100.0)
    assert rec.sampling_rate_hz == 100.0
    assert np.allclose(rec.samples["acc_z"].to_numpy(), m["acc_g"][2] * STANDARD_GRAVITY_MPS2, atol=1e-6)
    assert np.allclose(rec.samples["gyr_y"].to_numpy(), np.degrees(m["gyr_rad"][1]), atol=1e-5)
    assert not [w for w in rec.warnings if w.kind == UNIT and "probably wrong" in w.problem]


def test_without_mapping_the_error_lists_columns_seen_and_nearest(tmp_path):
    path = tmp_path / "walk_left.csv"
    path.write_text("time,accel_forward,accel_left,accel_up,gyro_x,gyro_y,gyro_z\n0,0,0,1,0,0,0\n")
    with pytest.raises(IngestError) as info:
        read_recording(path)
    msg = str(info.value)
    assert "no column for acc_x" in msg
    assert "Columns seen: 'accel_forward', 'accel_left', 'accel_up'" in msg
    assert "Nearest matches: acc_x: 'accel_" in msg
    assert "--columns" in msg


def test_mapping_to_a_missing_column_names_the_nearest(tmp_path):
    path = odd_csv(tmp_path)
    with pytest.raises(
        IngestError, match=r"--columns acc_x='Beschl vorne': no such column.*Nearest matches: 'Beschl. vorne'"
    ):
        read_recording(
            path, columns=MAPPING.replace("Beschl. vorne", "Beschl vorne"), units="acc=g,gyr=rad/s"
        )


def test_partial_mapping_finds_the_rest_by_name(tmp_path):
    path = tmp_path / "walk_right.csv"
    m = motion(100.0)
    lines = ["t,vorne,acc_y,acc_z,gyr_x,gyr_y,gyr_z"]
    acc = m["acc_g"] * STANDARD_GRAVITY_MPS2
    gyr = np.degrees(m["gyr_rad"])
    lines += [",".join(map(fmt, [t, *acc[:, i], *gyr[:, i]])) for i, t in enumerate(m["t"])]
    path.write_text("\n".join(lines) + "\n")
    rec = read_recording(path, columns="acc_x=vorne")
    assert np.allclose(rec.samples["acc_x"].to_numpy(), acc[0], atol=1e-6)


def test_wrong_stated_units_warn_naming_the_column(tmp_path):
    # ft/s² stated as m/s²: passes the coarse range check but not gravity at rest
    path = odd_csv(tmp_path, acc_scale=STANDARD_GRAVITY_MPS2 * 3.28084)
    rec = read_recording(path, columns=MAPPING, units="acc=m/s^2,gyr=rad/s")
    warned = [w for w in rec.warnings if w.kind == UNIT and "at rest" in w.problem]
    assert warned and warned[0].column == "Beschl. vorne"
    assert "32.1" in warned[0].problem or "32.2" in warned[0].problem
    # deg/s data stated as rad/s: beyond any shoe IMU's range after conversion
    path = odd_csv(tmp_path, gyr_rad=False, name="dps_left.csv")
    rec = read_recording(path, columns=MAPPING, units="acc=g,gyr=rad/s")
    warned = [w for w in rec.warnings if w.kind == UNIT and "probably wrong" in w.problem]
    assert warned and warned[0].column == "Dreh vorne"


def test_mapping_on_parquet_or_a_device_format_is_refused(tmp_path):
    path = odd_csv(tmp_path)
    with pytest.raises(IngestError, match="column mapping is for one-header CSV"):
        read_recording(path, format="lord", columns=MAPPING)


# --- the parser: any text gives a mapping or a MappingError naming the item -----------------------


@given(st.text(max_size=60))
@FEW
def test_any_text_parses_or_raises_mapping_error(text):
    for parse in (parse_columns, parse_units):
        try:
            out = parse(text)
        except MappingError as exc:
            assert str(exc).startswith(("--columns", "--units"))
            continue
        if parse is parse_columns and out is not None:
            assert set(out) <= set(CHANNEL_KEYS)
            assert len(set(out.values())) == len(out)
        if parse is parse_units:
            assert set(out) <= {"acc", "gyr"}


labels = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s.strip('"') == s
)


@given(st.dictionaries(st.sampled_from(CHANNEL_KEYS), labels, min_size=1, max_size=len(CHANNEL_KEYS)))
@FEW
def test_round_trip_with_quoting(mapping):
    if len(set(mapping.values())) != len(mapping):
        with pytest.raises(MappingError, match="given for both"):
            parse_columns(",".join(f'"{k}={v}"' for k, v in mapping.items()))
        return
    text = ",".join('"' + f"{k}={v}".replace('"', '""') + '"' for k, v in mapping.items())
    assert parse_columns(text) == mapping


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("acc_q=A", "unknown channel 'acc_q' \\(did you mean"),
        ("acc_x", "is not KEY=VALUE"),
        ("acc_x=", "empty value"),
        ("acc_x=A,acc_x=B", "acc_x given twice"),
        ("acc_x=A,acc_y=A", "column 'A' given for both acc_x and acc_y"),
    ],
)
def test_bad_column_mappings(text, match):
    with pytest.raises(MappingError, match=match):
        parse_columns(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acc=g,gyr=rad/s", {"acc": "g", "gyr": "rad/s"}),
        ("gyro=deg/s, accel=m/s^2", {"acc": "mps2", "gyr": "dps"}),
    ],
)
def test_units(text, expected):
    assert parse_units(text) == expected


@pytest.mark.parametrize(
    ("text", "match"), [("acc=furlong", "not a known unit"), ("mag=ut", "unknown group")]
)
def test_bad_units(text, match):
    with pytest.raises(MappingError, match=match):
        parse_units(text)


def test_mag_keys_accepted():
    assert parse_columns("mag_x=a,mag_y=b,mag_z=c") == dict(zip(MAG, "abc", strict=True))


# --- the CLI ------------------------------------------------------------------------------------

STRIDEFLOW = shutil.which("strideflow", path=str(Path(sys.executable).parent)) or shutil.which("strideflow")


def test_cli_bad_mapping_is_one_line_without_traceback(tmp_path):
    path = odd_csv(tmp_path)
    p = subprocess.run(
        [STRIDEFLOW, "analyze", str(path), "--out", str(tmp_path / "o"), "--columns", "acc_q=x"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert p.returncode == 1
    assert "unknown channel 'acc_q'" in p.stderr and "Traceback" not in p.stderr + p.stdout


@pytest.fixture(scope="module")
def odd_path(tmp_path_factory) -> Path:
    return odd_csv(tmp_path_factory.mktemp("odd"))


mapping_items = st.lists(
    st.tuples(
        st.sampled_from([*CHANNEL_KEYS, "time", "acc_q", "gyr", ""]),
        st.sampled_from([*ODD_HEADER, "Zeit ", "beschl. vorne", "nope", ""]),
    ),
    max_size=9,
)


@given(mapping_items, st.sampled_from(["", "acc=g,gyr=rad/s", "acc=g", "gyr=deg/s", "acc=parsec"]))
@FEW
def test_any_mapping_reads_or_names_the_problem(odd_path, items, units):
    text = ",".join(f"{k}={v}" for k, v in items)
    try:
        rec = read_recording(odd_path, foot="left", columns=text, units=units)
    except IngestError as exc:
        assert str(odd_path) in str(exc)
        return
    assert rec.samples.height == motion(100.0)["t"].size
