"""Device export readers: header detection, units, valid flags, preambles, trailing commas, sparse columns.

Real files where they exist (the LORD SensorConnect footprint walks); otherwise files built here from
each maker's documented layout (see the docstring of each `ingest/formats/<maker>.py`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from support.formats import fmt, motion, physilog_file
from support.paths import SHARED_DATA

from strideflow.hardware.schema import ACC, GYR, STANDARD_GRAVITY_MPS2
from strideflow.ingest import IngestError, detect_format, read_recording
from strideflow.ingest.errors import FOOT_ASSUMED, GYRO_CLIPPED, GYRO_DELAY, INVALID_SAMPLES
from strideflow.ingest.formats.lord import GYR_DELAY_S, GYR_RANGE_RPS

WALKS = SHARED_DATA / "footprints_walks"
needs_walks = pytest.mark.skipif(
    not WALKS.is_dir(), reason=f"footprint walks not found at {WALKS} (../shared/data/footprints_walks)"
)
NODE = "inertial-6253.76535"


# --- LORD SensorConnect ------------------------------------------------------------------------


@needs_walks
@pytest.mark.parametrize("trial", [31, 32, 33, 34, 35, 36, 42, 43, 44, 45])
def test_lord_footprint_walks_read_without_options(trial):
    path = WALKS / f"SensorConnectData_{trial}.csv"
    assert detect_format(path, path.read_bytes()[:65536]) == "lord"
    rec = read_recording(path)
    assert rec.sampling_rate_hz == (200.0 if trial < 40 else 250.0)
    assert rec.feet() == ("left",)
    assert any(w.kind == FOOT_ASSUMED for w in rec.warnings)
    s = rec.samples
    # converted to m/s² (raw files are in g) and deg/s (both layouts are rad/s): standing still at
    # the start, |acc| is 1 g
    norm = np.linalg.norm(s.select(ACC).to_numpy()[:50], axis=1)
    assert abs(np.median(norm) - STANDARD_GRAVITY_MPS2) < 0.2
    assert np.abs(s.select(GYR).to_numpy()).max() > 100.0  # deg/s in a walk, never in rad/s
    # every line of the file is a sample (nothing dropped; the grid may add one at most)
    n_lines = sum(1 for _ in path.open()) - 1
    assert abs(s.height - n_lines) <= 2
    t = s["t"].to_numpy()
    assert np.allclose(np.diff(t), 1.0 / rec.sampling_rate_hz)


@needs_walks
def test_lord_foot_from_caller_wins_without_warning():
    rec = read_recording(WALKS / "SensorConnectData_34.csv", foot="right")
    assert rec.feet() == ("right",)
    assert not any(w.kind == FOOT_ASSUMED for w in rec.warnings)


def lord_filter_file(tmp_path: Path, invalid_rows: slice | None, preamble: bool) -> Path:
    m = motion(250.0)
    acc = m["acc_g"] * STANDARD_GRAVITY_MPS2
    names = [f"estCompensatedAccel{a}" for a in "XYZ"] + [f"estAngularRate{a}" for a in "XYZ"]
    header = ["Time"] + [c for n in names for c in (f"{NODE}:{n}", f"{NODE}:{n}:valid")]
    valid = np.ones(m["t"].size, dtype=int)
    if invalid_rows is not None:
        valid[invalid_rows] = 0
    lines = []
    if preamble:
        lines += ["Sensor Connect export", "Node,6253.76535", "DATA_START"]
    lines.append(",".join(header))
    for i, t in enumerate(m["t"]):
        vals = [*acc[:, i], *m["gyr_rad"][:, i]]
        lines.append(",".join([fmt(t)] + [c for v in vals for c in (fmt(v), str(valid[i]))]))
    path = tmp_path / "SensorConnectData_99.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lord_valid_flags_become_a_flagged_gap(tmp_path):
    path = lord_filter_file(tmp_path, slice(500, 505), preamble=True)
    rec = read_recording(path, foot="left")
    kinds = [w.kind for w in rec.warnings]
    assert INVALID_SAMPLES in kinds
    invalid = next(w for w in rec.warnings if w.kind == INVALID_SAMPLES)
    assert invalid.row == 4 + 1 + 500  # preamble 3 lines + header, then data row 500 (0-based)
    s = rec.samples
    assert s.height == 1500  # the 5 invalid samples come back as interpolated grid points
    assert s["interpolated"].sum() == 5
    assert s["interpolated"].to_numpy()[500:505].all()
    # units: m/s² kept, rad/s converted
    m = motion(250.0)
    assert np.isclose(s["acc_z"].to_numpy()[0], m["acc_g"][2, 0] * STANDARD_GRAVITY_MPS2, atol=1e-6)
    gyr_y = np.degrees(np.interp(m["t"][0] + GYR_DELAY_S, m["t"], m["gyr_rad"][1]))
    assert np.isclose(s["gyr_y"].to_numpy()[0], gyr_y, atol=1e-6)


def test_lord_gyro_lag_is_undone_and_said(tmp_path):
    # The device's gyro samples lag its accelerometer's by GYR_DELAY_S: the reader reads the gyro
    # that much later (linear interpolation on the file's time) and says so; acc is untouched.
    m = motion(250.0)
    rec = read_recording(lord_filter_file(tmp_path, None, preamble=False), foot="left")
    assert [w for w in rec.warnings if w.kind == GYRO_DELAY]
    assert 0.003 <= GYR_DELAY_S <= 0.008
    t = rec.samples["t"].to_numpy()
    for k, c in enumerate(GYR):
        want = np.degrees(np.interp(t + GYR_DELAY_S, m["t"], m["gyr_rad"][k]))
        assert np.allclose(rec.samples[c].to_numpy(), want, atol=1e-5)
    assert np.allclose(rec.samples["acc_x"].to_numpy(), m["acc_g"][0] * STANDARD_GRAVITY_MPS2, atol=1e-6)


def test_lord_gyro_clipped_at_its_range_is_rebuilt_and_said(tmp_path):
    # The pod's gyro clips at its range (about 500 deg/s): a swing of 860 deg/s written as the
    # device gives it (clipped) is read back rebuilt, much closer to the true rate, with a warning
    # naming the channel and the file line of the first rebuilt sample.
    m = motion(250.0)
    true = 2.5 * m["gyr_rad"][1]
    clipped = np.clip(true, -GYR_RANGE_RPS, GYR_RANGE_RPS)
    names = [f"scaledAccel{a}" for a in "XYZ"] + [f"scaledGyro{a}" for a in "XYZ"]
    lines = [",".join(["Time"] + [f"{NODE}:{n}" for n in names])]
    for i, t in enumerate(m["t"]):
        vals = [*m["acc_g"][:, i], m["gyr_rad"][0, i], clipped[i], m["gyr_rad"][2, i]]
        lines.append(",".join(fmt(v) for v in [t, *vals]))
    path = tmp_path / "SensorConnectData_98.csv"
    path.write_text("\n".join(lines) + "\n")
    rec = read_recording(path, foot="left")
    warning = next(w for w in rec.warnings if w.kind == GYRO_CLIPPED)
    assert "scaledGyroY" in warning.problem and "scaledGyroX" not in warning.problem
    assert warning.row == 2 + int(np.argmax(np.abs(clipped) >= 0.97 * GYR_RANGE_RPS))
    t = rec.samples["t"].to_numpy()
    want = np.degrees(np.interp(t + GYR_DELAY_S, m["t"], true))
    got = rec.samples["gyr_y"].to_numpy()
    as_clipped = np.degrees(np.interp(t + GYR_DELAY_S, m["t"], clipped))
    assert np.abs(got).max() > 1.3 * np.degrees(GYR_RANGE_RPS)
    # the angle lost to the clipping: at least 60 % of it comes back (87 % here)
    assert np.abs(got - want).sum() < 0.4 * np.abs(as_clipped - want).sum()


def test_lord_long_invalid_run_splits_segments(tmp_path):
    path = lord_filter_file(tmp_path, slice(400, 450), preamble=False)
    rec = read_recording(path, foot="right")
    assert rec.samples["segment"].max() == 1


def test_lord_all_invalid_is_a_clear_error(tmp_path):
    path = lord_filter_file(tmp_path, slice(0, None), preamble=False)
    with pytest.raises(IngestError, match="every sample is flagged invalid"):
        read_recording(path)


def test_lord_missing_gyro_names_what_was_seen(tmp_path):
    path = tmp_path / "lord.csv"
    path.write_text(f"Time,{NODE}:scaledAccelX,{NODE}:scaledAccelY,{NODE}:scaledAccelZ\n0,0,0,1\n")
    with pytest.raises(IngestError, match="no node with all of"):
        read_recording(path, format="lord")


def test_csv_gz_reads_like_the_csv(tmp_path):
    path = lord_filter_file(tmp_path, None, preamble=False)
    gz = tmp_path / "SensorConnectData_99.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    a, b = read_recording(path, foot="left"), read_recording(gz, foot="left")
    assert a.samples.drop("athlete_id", "session_id").equals(b.samples.drop("athlete_id", "session_id"))
    bad = tmp_path / "broken.csv.gz"
    bad.write_bytes(gzip.compress(path.read_bytes())[:200])
    with pytest.raises(IngestError, match="gzip"):
        read_recording(bad)


# --- GaitUp Physilog ---------------------------------------------------------------------------


def test_physilog_detected_units_trailing_comma_sparse_columns(tmp_path):
    path = physilog_file(tmp_path)
    assert detect_format(path, path.read_bytes()) == "physilog"
    rec = read_recording(path)
    assert rec.feet() == ("left",)  # LF = left foot in GaitUp's naming
    assert rec.sampling_rate_hz == 128.0
    m = motion(128.0)
    s = rec.samples
    assert s.height == m["t"].size
    assert np.allclose(s["acc_z"].to_numpy(), m["acc_g"][2] * STANDARD_GRAVITY_MPS2, atol=1e-5)
    assert np.allclose(s["gyr_y"].to_numpy(), np.degrees(m["gyr_rad"][1]), atol=1e-5)
    assert not any(w.kind == FOOT_ASSUMED for w in rec.warnings)


def test_physilog_right_foot_and_bad_cell(tmp_path):
    path = physilog_file(tmp_path, "RF.csv")
    assert read_recording(path).feet() == ("right",)
    text = path.read_bytes().decode().split("\r\n")
    text[20] = text[20].replace(text[20].split(",")[4], "abc", 1)
    path.write_bytes("\r\n".join(text).encode())
    with pytest.raises(IngestError, match=r"row 21, column Accel X: not a number"):
        read_recording(path)


# --- Xsens / Movella DOT -----------------------------------------------------------------------


def xsens_file(tmp_path: Path, mt_manager: bool = False, start_ticks: int = 2**32 - 3_000_000) -> Path:
    rate = 60.0 if not mt_manager else 100.0
    m = motion(rate)
    tick = 1e6 if not mt_manager else 1e4
    ticks = (start_ticks + np.round(m["t"] * tick).astype(np.int64)) % 2**32  # wraps mid-file
    sep = "\t" if mt_manager else ","
    header = ["PacketCounter", "SampleTimeFine", "Quat_W", "Quat_X", "Quat_Y", "Quat_Z"]
    header += ["Acc_X", "Acc_Y", "Acc_Z", "Gyr_X", "Gyr_Y", "Gyr_Z", "Mag_X", "Mag_Y", "Mag_Z"]
    lines = ["// General information:", "//  MT Manager version: 2022.2.0"] if mt_manager else []
    lines.append(sep.join(header))
    acc = m["acc_g"] * STANDARD_GRAVITY_MPS2
    gyr = np.degrees(m["gyr_rad"])
    for i in range(m["t"].size):
        row = [str(i), str(ticks[i]), "1", "0", "0", "0", *map(fmt, acc[:, i]), *map(fmt, gyr[:, i])]
        lines.append(sep.join(row + ["0.1", "0.2", "0.9"]))
    path = tmp_path / ("mtw.txt" if mt_manager else "dot_left.csv")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("mt_manager", [False, True])
def test_xsens_clock_wrap_units_and_separator(tmp_path, mt_manager):
    path = xsens_file(tmp_path, mt_manager)
    assert detect_format(path, path.read_bytes()) == "xsens"
    rec = read_recording(path, foot="left")
    rate = 100.0 if mt_manager else 60.0
    assert rec.sampling_rate_hz == rate
    m = motion(rate)
    s = rec.samples
    assert s.height == m["t"].size  # the uint32 wrap is unwrapped, no backwards step
    assert np.allclose(s["t"].to_numpy(), m["t"], atol=1e-6)
    assert np.allclose(s["gyr_y"].to_numpy(), np.degrees(m["gyr_rad"][1]), atol=1e-5)  # deg/s kept
    assert np.allclose(s["acc_z"].to_numpy(), m["acc_g"][2] * STANDARD_GRAVITY_MPS2, atol=1e-5)


def test_xsens_without_gyro_is_a_clear_error(tmp_path):
    path = tmp_path / "dot.csv"
    path.write_text("PacketCounter,SampleTimeFine,Acc_X,Acc_Y,Acc_Z\n0,0,0,0,9.8\n")
    with pytest.raises(IngestError, match="no column for gyr_x, gyr_y, gyr_z"):
        read_recording(path)


# --- Shimmer Consensys -------------------------------------------------------------------------


def shimmer_file(tmp_path: Path, sep: str = "\t") -> Path:
    m = motion(51.2 * 2)
    dev = "Shimmer_8E5C"
    names = [f"{dev}_Timestamp_Unix_CAL", f"{dev}_Accel_LN_X_CAL", f"{dev}_Accel_LN_Y_CAL"]
    names += [f"{dev}_Accel_LN_Z_CAL", f"{dev}_Accel_WR_X_CAL", f"{dev}_Accel_WR_Y_CAL"]
    names += [f"{dev}_Accel_WR_Z_CAL", f"{dev}_Gyro_X_CAL", f"{dev}_Gyro_Y_CAL", f"{dev}_Gyro_Z_CAL"]
    names += [f"{dev}_Mag_X_CAL", f"{dev}_Mag_Y_CAL", f"{dev}_Mag_Z_CAL"]
    units = ["ms"] + ["m/(s^2)"] * 6 + ["deg/s"] * 3 + ["local_flux*"] * 3
    lines = [f'"sep={sep}"', sep.join(names), sep.join(units)]
    acc = m["acc_g"] * STANDARD_GRAVITY_MPS2
    gyr = np.degrees(m["gyr_rad"])
    t_ms = 1.7e12 + m["t"] * 1000.0
    for i in range(m["t"].size):
        row = [f"{t_ms[i]:.3f}", *map(fmt, acc[:, i]), *map(fmt, acc[:, i] * 1.01), *map(fmt, gyr[:, i])]
        lines.append(sep.join(row + ["0.3", "0.1", "-0.4"]) + sep)  # Consensys ends rows with a separator
    path = tmp_path / "session_Session1_Shimmer_8E5C_Calibrated_SD.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("sep", "sep_line"), [("\t", True), (",", True), (",", False)])
def test_shimmer_units_low_noise_accel_and_trailing_separator(tmp_path, sep, sep_line):
    path = shimmer_file(tmp_path, sep)
    if not sep_line:
        path.write_text(path.read_text().split("\n", 1)[1])
    assert detect_format(path, path.read_bytes()) == "shimmer"
    rec = read_recording(path, foot="right")
    assert rec.sampling_rate_hz == 102.4
    m = motion(102.4)
    s = rec.samples
    assert np.allclose(s["acc_x"].to_numpy(), m["acc_g"][0] * STANDARD_GRAVITY_MPS2, atol=1e-5)  # LN, not WR
    assert np.allclose(s["gyr_y"].to_numpy(), np.degrees(m["gyr_rad"][1]), atol=1e-5)


# --- MbientLab MetaWear ------------------------------------------------------------------------


def metawear_files(tmp_path: Path) -> tuple[Path, Path]:
    m_acc, m_gyr = motion(100.0), motion(100.0)
    stem = "MetaWear_2024-03-05T10.12.00.000_C8D1E2F3A4B5"
    epoch0 = 1_709_633_520_000.0
    acc_lines = ["epoch (ms),time (+01:00),elapsed (s),x-axis (g),y-axis (g),z-axis (g)"]
    for i, t in enumerate(m_acc["t"]):
        acc_lines.append(
            f"{epoch0 + t * 1000:.0f},2024-03-05T10.12.00.000,{t:.3f},"
            + ",".join(map(fmt, m_acc["acc_g"][:, i]))
        )
    gyr_lines = ["epoch (ms),time (+01:00),elapsed (s),x-axis (deg/s),y-axis (deg/s),z-axis (deg/s)"]
    gyr = np.degrees(m_gyr["gyr_rad"])
    for i, t in enumerate(m_gyr["t"]):  # gyroscope clock 4 ms later: interpolated onto the accel times
        gyr_lines.append(f"{epoch0 + 4 + t * 1000:.0f},x,{t:.3f}," + ",".join(map(fmt, gyr[:, i])))
    a = tmp_path / f"{stem}_Accelerometer.csv"
    g = tmp_path / f"{stem}_Gyroscope.csv"
    a.write_text("\n".join(acc_lines) + "\n")
    g.write_text("\n".join(gyr_lines) + "\n")
    return a, g


def test_metawear_pairs_accelerometer_and_gyroscope_files(tmp_path):
    a, g = metawear_files(tmp_path)
    assert detect_format(a, a.read_bytes()) == "metawear"
    rec_a = read_recording(a, foot="left")
    rec_g = read_recording(g, foot="left")
    assert rec_a.samples.drop("athlete_id", "session_id").equals(
        rec_g.samples.drop("athlete_id", "session_id")
    )
    m = motion(100.0)
    s = rec_a.samples
    assert s.height == m["t"].size - 1  # the first accel sample precedes the gyroscope's first
    assert np.allclose(s["acc_z"].to_numpy(), m["acc_g"][2, 1:] * STANDARD_GRAVITY_MPS2, atol=1e-5)
    expected = np.interp(m["t"][1:], m["t"] + 0.004, np.degrees(m["gyr_rad"][1]))
    assert np.allclose(s["gyr_y"].to_numpy(), expected, atol=1e-4)


def test_metawear_without_partner_says_so(tmp_path):
    a, g = metawear_files(tmp_path)
    g.unlink()
    with pytest.raises(IngestError, match="needs its gyroscope file"):
        read_recording(a)


# --- APDM Opal HDF5 ----------------------------------------------------------------------------


def apdm_file(tmp_path: Path, labels: dict[str, str]) -> Path:
    h5py = pytest.importorskip("h5py")
    m = motion(128.0)
    path = tmp_path / "20240305-101200_Walk.h5"
    with h5py.File(path, "w") as f:
        for k, (case_id, label) in enumerate(labels.items()):
            g = f.create_group(f"Sensors/{case_id}")
            g.create_dataset("Accelerometer", data=(m["acc_g"] * STANDARD_GRAVITY_MPS2).T)
            g.create_dataset("Gyroscope", data=m["gyr_rad"].T * (1 if k == 0 else -1))
            g.create_dataset("Magnetometer", data=np.tile([20.0, 5.0, -40.0], (m["t"].size, 1)))
            t_us = 1_709_633_520_000_000 + k * 2000 + np.round(m["t"] * 1e6).astype(np.uint64)
            g.create_dataset("Time", data=t_us.astype(np.uint64))
            g.create_group("Configuration").attrs["Label 0"] = np.bytes_(label)
        f.create_group("Processed")
    return path


def test_apdm_reads_both_foot_sensors_and_skips_lumbar(tmp_path):
    path = apdm_file(tmp_path, {"XI-001": "Left Foot", "XI-002": "Right Foot", "XI-003": "Lumbar"})
    assert detect_format(path, path.read_bytes()[:64]) == "apdm"
    rec = read_recording(path)
    assert rec.feet() == ("left", "right")
    assert any("Lumbar" in w.problem for w in rec.warnings)
    m = motion(128.0)
    left = rec.samples.filter(rec.samples["foot"] == "left")
    right = rec.samples.filter(rec.samples["foot"] == "right")
    assert np.allclose(left["gyr_y"].to_numpy(), np.degrees(m["gyr_rad"][1]), atol=1e-6)  # rad/s -> deg/s
    assert np.allclose(right["gyr_y"].to_numpy(), -np.degrees(m["gyr_rad"][1]), atol=1e-6)
    assert np.isclose(right["t"][0] - left["t"][0], 0.002)  # one clock origin for both sensors
    assert "mag_x" in rec.samples.columns


def test_apdm_single_sensor_and_broken_file(tmp_path):
    path = apdm_file(tmp_path, {"XI-001": "Shoe"})
    assert read_recording(path, foot="right").feet() == ("right",)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(IngestError, match="HDF5"):
        read_recording(broken)


def test_binary_junk_and_utf16_text(tmp_path):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(IngestError, match="a binary file, not text"):
        read_recording(junk)
    path = physilog_file(tmp_path)
    utf16 = tmp_path / "LF16.csv"
    utf16.write_bytes(path.read_text().encode("utf-16"))
    a, b = read_recording(path), read_recording(utf16)
    assert a.samples.drop("athlete_id", "session_id").equals(b.samples.drop("athlete_id", "session_id"))
