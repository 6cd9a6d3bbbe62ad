"""One crafted file per validation rule: the error or warning names the file, row and column."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from support.ingest import HEADER, assert_valid_samples, csv_lines, walking_signals, write_text

from strideflow.hardware.profiles import PROFILES
from strideflow.hardware.schema import (
    ACC,
    ATHLETE_ID,
    FOOT,
    GYR,
    INTERPOLATED,
    SATURATED,
    SEGMENT,
    SESSION_ID,
    STANDARD_GRAVITY_MPS2,
    T,
)
from strideflow.ingest import IngestError, ReadSettings, read_recording, read_samples, write_samples


@pytest.fixture
def walk():
    return walking_signals()


def _raises(path, *, row=None, column=None, match="", **kwargs) -> IngestError:
    with pytest.raises(IngestError) as info:
        read_recording(path, **kwargs)
    err = info.value
    assert str(path) in str(err)
    assert err.row == row
    assert err.column == column
    assert match in err.problem, err.problem
    return err


# --- header -------------------------------------------------------------------------------------


def test_missing_axis_column_suggests_the_closest_header(tmp_path, walk):
    path = write_text(tmp_path / "w_left.csv", HEADER.replace("gyr_z", "gyr_zz"), csv_lines(*walk))
    err = _raises(path, row=1, column="gyr_z", match="no column for gyr_z")
    assert "did you mean 'gyr_zz'" in str(err)


def test_misspelt_axis_column_is_named_with_a_suggestion(tmp_path, walk):
    path = write_text(tmp_path / "w_left.csv", HEADER.replace("gyr_y", "gryo_y"), csv_lines(*walk))
    err = _raises(path, row=1, column="gyr_y", match="did you mean 'gryo_y'")
    assert f"{path}, row 1, column gyr_y: no column for gyr_y" in str(err)


def test_header_spelling_variants_and_units_are_understood(tmp_path, walk):
    t, acc, gyr = walk
    header = "Time [ms],Acc X (g),accY,acc_z (m/s^2),Gyro_X,gyroscope y,GYR-Z"
    lines = csv_lines(t * 1000, acc, gyr)
    with pytest.raises(IngestError, match="different units"):
        read_recording(write_text(tmp_path / "a_left.csv", header, lines))
    header = "Time [ms],Acc X (g),accY [g],acc_z_g,Gyro_X (rad/s),gyroscope y [rad/s],GYR-Z(rad/s)"
    rec = read_recording(
        write_text(tmp_path / "b_left.csv", header, csv_lines(t * 1000, acc / 9.81, np.radians(gyr)))
    )
    np.testing.assert_allclose(rec.samples["acc_z"].to_numpy(), acc[:, 2] * STANDARD_GRAVITY_MPS2 / 9.81)
    np.testing.assert_allclose(rec.samples["gyr_y"].to_numpy(), gyr[:, 1], rtol=1e-7)
    np.testing.assert_allclose(rec.samples[T].to_numpy(), t, atol=1e-12)
    assert rec.sampling_rate_hz == 200.0
    assert {w.kind for w in rec.warnings} == {"unit"}


def test_other_columns_are_ignored_with_a_warning_index_columns_silently(tmp_path, walk):
    lines = [f"{i},{i + 23000},{line},21.5" for i, line in enumerate(csv_lines(*walk))]
    rec = read_recording(write_text(tmp_path / "w_right.csv", f",index,{HEADER},temperature", lines))
    assert [(w.kind, w.column, w.row) for w in rec.warnings] == [("ignored_column", "temperature", 1)]
    assert rec.feet() == ("right",)


def test_foot_must_be_known(tmp_path, walk):
    path = write_text(tmp_path / "walk.csv", HEADER, csv_lines(*walk))
    _raises(path, match="cannot tell which foot")
    assert read_recording(path, foot="left").feet() == ("left",)


# --- cells ---------------------------------------------------------------------------------------


def test_non_numeric_cell_names_row_and_column(tmp_path, walk):
    lines = csv_lines(*walk)
    lines[10] = lines[10].split(",", 1)[0] + ",1,2,abc,4,5,6"
    path = write_text(tmp_path / "w_left.csv", HEADER, lines)
    _raises(path, row=12, column="acc_z", match="not a number ('abc')")


def test_empty_cell_names_row_and_column(tmp_path, walk):
    lines = csv_lines(*walk)
    lines[20] = lines[20].split(",", 1)[0] + ",1,2,3,,5,6"
    _raises(write_text(tmp_path / "w_left.csv", HEADER, lines), row=22, column="gyr_x", match="empty cell")


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf"])
def test_nan_and_inf_are_rejected(tmp_path, walk, bad):
    lines = csv_lines(*walk)
    lines[30] = lines[30].rsplit(",", 1)[0] + f",{bad}"
    _raises(
        write_text(tmp_path / "w_left.csv", HEADER, lines),
        row=32,
        column="gyr_z",
        match="not a finite number",
    )


def test_empty_file(tmp_path):
    path = tmp_path / "w_left.csv"
    path.write_text("")
    _raises(path, match="empty file")


def test_header_only(tmp_path):
    _raises(write_text(tmp_path / "w_left.csv", HEADER, []), match="header only")


def test_truncated_last_line(tmp_path, walk):
    lines = csv_lines(*walk)
    lines[-1] = ",".join(lines[-1].split(",")[:3])
    _raises(
        write_text(tmp_path / "w_left.csv", HEADER, lines),
        row=401,
        match="truncated last line: 3 of 7 fields",
    )


def test_short_line_in_the_middle(tmp_path, walk):
    lines = csv_lines(*walk)
    lines[5] = ",".join(lines[5].split(",")[:6])
    _raises(write_text(tmp_path / "w_left.csv", HEADER, lines), row=7, match="6 of 7 fields")


def test_blank_line_is_dropped_with_a_warning(tmp_path, walk):
    lines = csv_lines(*walk)
    rec = read_recording(write_text(tmp_path / "w_left.csv", HEADER, lines[:50] + [""] + lines[50:]))
    assert rec.samples.height == 400
    assert [(w.kind, w.row) for w in rec.warnings] == [("blank_line", 52)]


# --- time ----------------------------------------------------------------------------------------


def test_timestamp_going_backwards(tmp_path, walk):
    lines = csv_lines(*walk)
    lines[10] = lines[4]
    _raises(write_text(tmp_path / "w_left.csv", HEADER, lines), row=12, column="time", match="goes backwards")


def test_duplicate_timestamp(tmp_path, walk):
    lines = csv_lines(*walk)
    lines[10] = lines[9]
    _raises(
        write_text(tmp_path / "w_left.csv", HEADER, lines), row=12, column="time", match="duplicate timestamp"
    )


def test_time_in_ms_by_name_and_by_magnitude(tmp_path, walk):
    t, acc, gyr = walk
    rec = read_recording(
        write_text(tmp_path / "a_left.csv", HEADER.replace("time", "t_ms"), csv_lines(t * 1e3, acc, gyr))
    )
    assert rec.sampling_rate_hz == 200.0 and rec.warnings == ()
    # epoch milliseconds under a plain `timestamp` name: the median step says ms
    epoch = 1.7e12 + t * 1e3
    rec = read_recording(
        write_text(
            tmp_path / "b_left.csv",
            HEADER.replace("time", "timestamp"),
            csv_lines(epoch, acc, gyr, digits=17),
        )
    )
    assert rec.sampling_rate_hz == 200.0
    np.testing.assert_allclose(rec.samples[T].to_numpy(), t, atol=1e-3)
    assert [(w.kind, w.column) for w in rec.warnings] == [
        ("time_unit", "timestamp"),
        ("resampled", "timestamp"),
    ]
    assert "snapped" in rec.warnings[1].problem  # float64 epoch ms carry ~1e-4 ms rounding


def test_rate_is_required_without_a_time_column(tmp_path, walk):
    t, acc, gyr = walk
    path = write_text(tmp_path / "w_left.csv", HEADER.replace("time,", ""), csv_lines(None, acc, gyr))
    _raises(path, match="no time column: pass sampling_rate_hz")
    rec = read_recording(path, sampling_rate_hz=200.0)
    np.testing.assert_allclose(rec.samples[T].to_numpy(), t)


def test_short_gap_is_interpolated_and_flagged(tmp_path, walk):
    t, acc, gyr = walk
    keep = np.r_[0:100, 105:400]  # 5 samples (25 ms) missing
    path = write_text(tmp_path / "w_left.csv", HEADER, csv_lines(t[keep], acc[keep], gyr[keep]))
    rec = read_recording(path)
    s = rec.samples
    assert s.height == 400 and s[SEGMENT].max() == 0
    np.testing.assert_array_equal(np.flatnonzero(s[INTERPOLATED].to_numpy()), np.arange(100, 105))
    # linear between the samples around the gap
    expected = np.interp(t[100:105], t[[99, 105]], gyr[[99, 105], 1])
    np.testing.assert_allclose(s["gyr_y"].to_numpy()[100:105], expected, rtol=1e-9)
    [w] = rec.warnings
    assert (w.kind, w.row, w.column) == ("gap_interpolated", 102, "time")
    assert "gap of 0.025 s" in w.problem and "after t = 0.495 s" in w.problem


def test_long_gap_starts_a_new_segment(tmp_path, walk):
    t, acc, gyr = walk
    keep = np.r_[0:100, 150:400]  # 250 ms missing
    rec = read_recording(
        write_text(tmp_path / "w_left.csv", HEADER, csv_lines(t[keep], acc[keep], gyr[keep]))
    )
    s = rec.samples
    assert s.height == 350
    np.testing.assert_array_equal(s[SEGMENT].to_numpy(), np.r_[np.zeros(100), np.ones(250)])
    assert not s[INTERPOLATED].any()
    np.testing.assert_allclose(s[T].to_numpy(), t[keep], atol=1e-12)
    [w] = rec.warnings
    assert (w.kind, w.row) == ("gap_split", 102) and "gap of 0.25 s" in w.problem
    assert_valid_samples(s, rec.sampling_rate_hz)


def test_gap_threshold_comes_from_settings(tmp_path, walk):
    t, acc, gyr = walk
    keep = np.r_[0:100, 105:400]
    path = write_text(tmp_path / "w_left.csv", HEADER, csv_lines(t[keep], acc[keep], gyr[keep]))
    rec = read_recording(path, settings=ReadSettings(max_interpolated_gap_s=0.01))
    assert rec.samples[SEGMENT].max() == 1 and rec.warnings[0].kind == "gap_split"


def test_jittered_timestamps_are_resampled_to_the_nominal_rate(tmp_path):
    rng = np.random.default_rng(3)
    n, rate = 2000, 200.0
    t = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / rate
    t[0] = 0.0
    w = 2 * np.pi * 2 * t
    acc = np.c_[3 * np.sin(w), np.cos(w), 9.81 + 8 * np.sin(w)]
    gyr = np.c_[100 * np.sin(w), 300 * np.cos(w), 50 * np.sin(w)]
    rec = read_recording(write_text(tmp_path / "j_left.csv", HEADER, csv_lines(t, acc, gyr)))
    assert rec.sampling_rate_hz == 200.0
    s = rec.samples
    grid = s[T].to_numpy()
    np.testing.assert_allclose(np.diff(grid), 1 / rate, rtol=1e-9)
    assert grid[-1] <= t[-1]
    # linear interpolation of a 2 Hz sine, intervals <= 1.6 samples: error <= h²/8 * |x''| < 1 deg/s
    np.testing.assert_allclose(s["gyr_y"].to_numpy(), 300 * np.cos(2 * np.pi * 2 * grid), atol=1.0)
    assert [w.kind for w in rec.warnings] == ["resampled"]
    assert "linear interpolation" in rec.warnings[0].problem
    assert not s[INTERPOLATED].any()  # jitter is not a gap


# --- values --------------------------------------------------------------------------------------


def test_saturation_is_flagged_per_sample_without_a_profile(tmp_path):
    n, rate = 1000, 200.0
    t = np.arange(n) / rate
    w = 2 * np.pi * t
    gyr = np.c_[100 * np.sin(w), np.clip(3000 * np.sin(w), -2000, 2000), 50 * np.cos(w)]
    acc = np.c_[np.zeros(n), np.zeros(n), 9.81 + 5 * np.sin(w)]
    rec = read_recording(write_text(tmp_path / "s_left.csv", HEADER, csv_lines(t, acc, gyr)))
    clipped = np.abs(gyr[:, 1]) >= 2000
    np.testing.assert_array_equal(rec.samples[SATURATED].to_numpy(), clipped)
    [w] = rec.warnings
    assert (w.kind, w.column, w.row) == ("saturation", "gyr_y", 2 + int(np.argmax(clipped)))
    assert f"{clipped.sum()} samples" in w.problem


def test_saturation_from_a_profile_range(tmp_path, walk):
    t, acc, gyr = walk
    budget = PROFILES["budget-8g-1000dps"]
    gyr = gyr.copy()
    gyr[:, 1] = np.clip(gyr[:, 1] * 4, -budget.gyr_range_dps, budget.gyr_range_dps)
    path = write_text(tmp_path / "s_left.csv", HEADER, csv_lines(t, acc, gyr))
    clipped = np.abs(gyr[:, 1]) >= budget.gyr_range_dps
    rec = read_recording(path, profile=budget)
    np.testing.assert_array_equal(rec.samples[SATURATED].to_numpy(), clipped)
    # a 2000 deg/s device never reaches 1000: nothing flagged
    assert not read_recording(path, profile=PROFILES["nilspod"]).samples[SATURATED].any()


def test_real_peaks_are_not_saturation(tmp_path, walk):
    t, acc, gyr = walk
    rec = read_recording(write_text(tmp_path / "p_left.csv", HEADER, csv_lines(t, acc, gyr * 2)))
    assert not rec.samples[SATURATED].any() and rec.warnings == ()


def test_rad_per_s_is_rejected_unless_stated(tmp_path, walk):
    t, acc, gyr = walk
    path = write_text(tmp_path / "r_left.csv", HEADER, csv_lines(t, acc, np.radians(gyr)))
    err = _raises(path, column="gyr_x", match="looks like rad/s")
    assert "--units gyr=rad/s" in str(err) and "units=gyr=rad/s" in str(err)  # advice the user can follow
    rec = read_recording(path, gyr_unit="rad/s")
    np.testing.assert_allclose(rec.samples.select(GYR).to_numpy(), gyr, rtol=1e-8, atol=1e-9)
    kept = read_recording(path, gyr_unit="dps")
    np.testing.assert_allclose(kept.samples["gyr_x"].to_numpy(), np.radians(gyr[:, 0]), rtol=1e-8)
    assert [w.kind for w in kept.warnings] == ["unit"]


def test_still_foot_with_small_rates_is_not_called_rad_per_s(tmp_path):
    n = 400
    acc = np.tile([0.1, 0.2, 9.81], (n, 1))
    gyr = np.tile([0.3, -0.2, 0.1], (n, 1)) + np.arange(n)[:, None] * 1e-4
    rec = read_recording(write_text(tmp_path / "q_left.csv", HEADER, csv_lines(np.arange(n) / 200, acc, gyr)))
    assert rec.warnings == ()


def test_acceleration_in_g_is_rejected_unless_stated(tmp_path, walk):
    t, acc, gyr = walk
    path = write_text(tmp_path / "g_left.csv", HEADER, csv_lines(t, acc / STANDARD_GRAVITY_MPS2, gyr))
    err = _raises(path, column="acc_x", match="looks like g")
    assert "--units acc=g" in str(err) and "acc_x [g]" in str(err)
    rec = read_recording(path, acc_unit="g")
    np.testing.assert_allclose(rec.samples.select(ACC).to_numpy(), acc, rtol=1e-8, atol=1e-8)


# --- gaitmap and parquet ------------------------------------------------------------------------


def _gaitmap(path, first_col, acc, gyr, feet=("left", "right")):
    sensors = ["sensor"] + [f"{f}_sensor" for f in feet for _ in range(6)]
    axes = ["axis"] + [a for _ in feet for a in (*ACC, *GYR)]
    rows = [
        ",".join([f"{x:.10g}" for x in [first_col[i]] + [v for _ in feet for v in (*acc[i], *gyr[i])]])
        for i in range(len(first_col))
    ]
    path.write_text(",".join(sensors) + "\n" + ",".join(axes) + "\n" + "\n".join(rows) + "\n")
    return path


def test_gaitmap_index_needs_a_rate_and_time_column_does_not(tmp_path, walk):
    t, acc, gyr = walk
    indexed = _gaitmap(tmp_path / "g.csv", np.arange(400), acc, gyr)
    _raises(indexed, match="first column is a sample index: pass sampling_rate_hz")
    rec = read_recording(indexed, sampling_rate_hz=200.0)
    assert rec.feet() == ("left", "right") and rec.samples.height == 800
    timed = _gaitmap(tmp_path / "h.csv", t, acc, gyr, feet=("right",))
    rec = read_recording(timed)
    assert rec.feet() == ("right",) and rec.sampling_rate_hz == 200.0


def test_gaitmap_missing_axis_names_sensor_and_axis(tmp_path, walk):
    t, acc, gyr = walk
    path = _gaitmap(tmp_path / "g.csv", t, acc, gyr)
    text = path.read_text().splitlines()
    axes = text[1].split(",")
    axes[11] = "gyr_q"  # right_sensor's gyr_y
    path.write_text("\n".join([text[0], ",".join(axes), *text[2:]]) + "\n")
    err = _raises(path, row=2, column="right_sensor/gyr_y", match="no column for gyr_y")
    assert "did you mean 'gyr_q'" in str(err)


def test_gaitmap_non_monotonic_index_names_the_row(tmp_path, walk):
    _, acc, gyr = walk
    index = np.arange(400)
    index[50] = 40
    path = _gaitmap(tmp_path / "g.csv", index, acc, gyr)
    _raises(path, row=53, column="axis", match="goes backwards", sampling_rate_hz=200.0)


def _samples_frame(walk, foot="left"):
    t, acc, gyr = walk
    return pl.DataFrame(
        {
            ATHLETE_ID: ["a1"] * t.size,
            SESSION_ID: ["s1"] * t.size,
            FOOT: [foot] * t.size,
            T: t,
            **{c: acc[:, i] for i, c in enumerate(ACC)},
            **{c: gyr[:, i] for i, c in enumerate(GYR)},
        }
    )


def test_parquet_store_round_trip_and_validated_read(tmp_path, walk):
    df = pl.concat([_samples_frame(walk, "left"), _samples_frame(walk, "right")])
    path = write_samples(df, tmp_path / "store" / "a1.parquet")
    back = read_samples(path)
    assert back.equals(df)
    rec = read_recording(path)
    assert rec.feet() == ("left", "right") and rec.athlete_id == "a1" and rec.session_id == "s1"
    assert rec.sampling_rate_hz == 200.0 and rec.warnings == ()
    assert rec.samples.select(back.columns).equals(back)
    # a re-read of an ingested table keeps its flags
    t, acc, gyr = walk
    keep = np.r_[0:100, 103:400]
    gappy = _samples_frame((t[keep], acc[keep], gyr[keep]))
    once = read_recording(write_samples(gappy, tmp_path / "gappy.parquet"))
    twice = read_recording(write_samples(once.samples, tmp_path / "again.parquet"))
    assert twice.samples[INTERPOLATED].sum() == 3 and twice.samples.equals(once.samples)


def test_parquet_problems_name_row_and_column(tmp_path, walk):
    df = _samples_frame(walk)
    bad = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise(pl.col("gyr_x")).alias("gyr_x")
    )
    bad.write_parquet(tmp_path / "null.parquet")
    _raises(tmp_path / "null.parquet", row=8, column="gyr_x", match="empty cell")
    df.drop("acc_y").write_parquet(tmp_path / "drop.parquet")
    _raises(tmp_path / "drop.parquet", column="acc_y", match="no column acc_y")
    text_t = df.with_columns(pl.col("t").cast(pl.String))
    text_t.write_parquet(tmp_path / "str.parquet")
    assert read_recording(tmp_path / "str.parquet").samples.height == 400  # numbers stored as text
    later = pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("later")).otherwise(pl.col("t"))
    text_t.with_columns(later.alias("t")).write_parquet(tmp_path / "txt.parquet")
    _raises(tmp_path / "txt.parquet", row=5, column="t", match="not a number ('later')")
    df.with_columns(pl.concat_list("t", "t").alias("acc_x")).write_parquet(tmp_path / "list.parquet")
    _raises(tmp_path / "list.parquet", column="acc_x", match="not numeric")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    _raises(tmp_path / "junk.parquet", match="not a readable Parquet file")
    with pytest.raises(IngestError, match="no column gyr_z"):
        write_samples(df.drop("gyr_z"), tmp_path / "x.parquet")


def test_unknown_arguments_are_rejected(tmp_path, walk):
    path = write_text(tmp_path / "w_left.csv", HEADER, csv_lines(*walk))
    _raises(path, match="format='xml' is not one of", format="xml")
    _raises(path, match="gyr_unit='rpm'", gyr_unit="rpm")
    _raises(path, match="foot='middle'", foot="middle")
    _raises(tmp_path / "absent.csv", match="cannot read the file")


# --- more layouts and the CLI --------------------------------------------------------------------


def test_semicolons_decimal_commas_comments_and_magnetometer(tmp_path, walk):
    t, acc, gyr = walk
    mag = np.c_[20 * np.cos(t), 20 * np.sin(t), -40 * np.ones_like(t)]
    lines = [
        ";".join(f"{v:.6f}".replace(".", ",") for v in row) for row in np.hstack([t[:, None], acc, gyr, mag])
    ]
    header = "# logger v1.2, exported 2024-05-01\ntime;acc_x;acc_y;acc_z;gyr_x;gyr_y;gyr_z;mag_x;mag_y;mag_z"
    rec = read_recording(write_text(tmp_path / "m_left.csv", header, lines))
    np.testing.assert_allclose(rec.samples["mag_y"].to_numpy(), mag[:, 1], atol=1e-6)
    np.testing.assert_allclose(rec.samples["gyr_y"].to_numpy(), gyr[:, 1], atol=1e-6)
    assert rec.sampling_rate_hz == 200.0 and rec.warnings == ()
    lines[7] = lines[7].replace(",", "x", 1)
    _raises(write_text(tmp_path / "n_left.csv", header, lines), row=10, column="time", match="not a number")


def test_partial_magnetometer_is_dropped_with_a_warning(tmp_path, walk):
    t, acc, gyr = walk
    lines = [f"{line},1.5" for line in csv_lines(t, acc, gyr)]
    rec = read_recording(write_text(tmp_path / "m_left.csv", HEADER + ",mag_x", lines))
    assert "mag_x" not in rec.samples.columns
    assert [w.kind for w in rec.warnings] == ["ignored_column"] and "mag_x" in rec.warnings[0].problem


def test_many_gaps_are_capped_and_summarised(tmp_path):
    t, acc, gyr = walking_signals(2000)
    keep = np.ones(t.size, bool)
    keep[10::20] = False  # 100 one-sample gaps
    path = write_text(tmp_path / "c_left.csv", HEADER, csv_lines(t[keep], acc[keep], gyr[keep]))
    rec = read_recording(path, settings=ReadSettings(max_warnings_per_kind=5))
    kinds = [w.kind for w in rec.warnings]
    assert kinds == ["gap_interpolated"] * 5 + ["summary"]
    assert "(100 in total)" in rec.warnings[-1].problem
    assert rec.samples[INTERPOLATED].sum() == 100 and rec.samples.height == 2000


def test_jitter_with_a_short_gap_flags_only_the_gap(tmp_path):
    rng = np.random.default_rng(5)
    n = 1000
    k = np.r_[0:500, 506:n]
    t = (k + rng.uniform(-0.25, 0.25, k.size)) / 200.0
    t[0] = 0
    acc = np.c_[np.zeros(k.size), np.zeros(k.size), 9.81 + 6 * np.sin(2 * np.pi * t)]
    gyr = np.c_[100 * np.sin(2 * np.pi * t), 200 * np.cos(2 * np.pi * t), np.zeros(k.size)]
    rec = read_recording(write_text(tmp_path / "jg_left.csv", HEADER, csv_lines(t, acc, gyr)))
    s = rec.samples
    assert_valid_samples(s, 200.0)
    flagged = s.filter(pl.col(INTERPOLATED))[T].to_numpy()
    assert flagged.size in (5, 6, 7) and np.all((flagged > t[499]) & (flagged < t[500]))
    assert {w.kind for w in rec.warnings} == {"gap_interpolated", "resampled"}


def test_inspect_command_prints_a_summary(tmp_path, walk):
    from typer.testing import CliRunner

    import strideflow.service.cli.inspect  # noqa: F401  registers the command
    from strideflow.service.cli import app

    t, acc, gyr = walk
    keep = np.r_[0:100, 103:400]
    path = write_text(tmp_path / "w_left.csv", HEADER, csv_lines(t[keep], acc[keep], gyr[keep]))
    # the app has a root callback, so it is a command group however many commands are registered
    name = ["inspect"]
    result = CliRunner().invoke(app, [*name, str(path)])
    assert result.exit_code == 0, result.output
    assert "200 Hz" in result.output and "400" in result.output and "gap_interpolated" in result.output
    result = CliRunner().invoke(app, [*name, str(tmp_path / "absent_left.csv")])
    assert result.exit_code != 0 and isinstance(result.exception, IngestError)


def test_implausible_rates_are_rejected(tmp_path, walk):
    t, acc, gyr = walk
    _raises(
        write_text(tmp_path / "slow_left.csv", HEADER, csv_lines(t * 1e-3, acc, gyr)),
        column="time",
        match="no plausible sampling rate",
    )
    no_time = write_text(tmp_path / "n_left.csv", HEADER.replace("time,", ""), csv_lines(None, acc, gyr))
    _raises(no_time, match="outside 10 to 10000 Hz", sampling_rate_hz=1.0)


def test_values_no_shoe_imu_produces_are_rejected(tmp_path, walk):
    t, acc, gyr = walk
    gyr = gyr.copy()
    gyr[17, 2] = 5e6
    _raises(
        write_text(tmp_path / "b_left.csv", HEADER, csv_lines(t, acc, gyr)),
        row=19,
        column="gyr_z",
        match="beyond any shoe IMU's range",
    )
    _raises(
        write_text(tmp_path / "mg_left.csv", HEADER, csv_lines(t, acc * 102, walk[2])),
        column="acc_x",
        match="far from gravity",
    )


def test_format_can_be_forced_and_auto_detects_each_layout(tmp_path, walk):
    from strideflow.ingest import detect_format

    t, acc, gyr = walk
    generic = write_text(tmp_path / "w_left.csv", HEADER, csv_lines(t, acc, gyr))
    gaitmap = _gaitmap(tmp_path / "g.csv", t, acc, gyr)
    stored = write_samples(_samples_frame(walk), tmp_path / "s.bin")
    assert [detect_format(p, p.read_bytes()) for p in (generic, gaitmap, stored)] == [
        "csv",
        "gaitmap",
        "parquet",
    ]
    _raises(gaitmap, row=1, column="acc_x", match="no column for acc_x", format="csv")
    _raises(stored, row=1, column="acc_x", match="no column for acc_x", format="csv")
