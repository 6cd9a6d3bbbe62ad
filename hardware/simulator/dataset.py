"""A recorded dataset on disk: N athletes x K sessions x 2 feet of samples, a manifest and the truth.

Layout (DESIGN.md, `strideflow simulate`):
    DIR/ATHLETE/SESSION/FOOT.parquet   samples table, device frame
    DIR/manifest.csv                   path (relative to DIR), athlete_id, session_id, foot,
                                       sampling_rate_hz, activity, session_date, then
                                       mount_q_w..mount_q_z: the true mounting as a scalar-first
                                       quaternion of the rotation that maps foot-frame coordinates
                                       to device-frame coordinates (v_device = q v_foot q*), and
                                       profile (device profile name)
    DIR/truth_strides.parquet          true strides of every file (strides table + activity)
    DIR/truth_params.parquet           mean gait parameters per athlete, session, foot, activity:
                                       the known trend when sessions drift

With `calibration`, every session starts with a toe-tap field calibration (`simulator.calibration`)
and the manifest gains `calibration_s` (its length, s: the session proper starts there) and
`tap_axis_deg` (the true heading of that foot's tap axis from the shoe's y, deg, + lateral end
backward: the error a perfect calibration inherits). Each athlete's tap axis is drawn from
SeedSequence([seed, a, 0]), which no session uses, so the rest of the dataset is the same.

Athlete a's parameters come from SeedSequence([seed, a]); session s of athlete a is simulated
with SeedSequence([seed, a, s + 1]), so a file does not depend on how many athletes are made.
Sessions are spread over weeks (7 to 14 days apart) and the drifting parameters move linearly
from the first to the last session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from strideflow.hardware import schema as S
from strideflow.hardware.frames import wxyz_from_rotation
from strideflow.hardware.profiles import DEFAULT_PROFILE, DeviceProfile
from strideflow.hardware.simulator.imu import draw_gyr_gain, draw_mounting
from strideflow.hardware.simulator.params import sample_athlete, sample_drift, sample_tap_axis
from strideflow.hardware.simulator.simulator import ACTIVITY_CHOICES, SimulationSettings, Simulator

FIRST_SESSION_DATE = dt.date(2025, 1, 6)
MOUNT_QUAT = ("mount_q_w", "mount_q_x", "mount_q_y", "mount_q_z")
MANIFEST_COLUMNS = (
    "path",
    S.ATHLETE_ID,
    S.SESSION_ID,
    S.FOOT,
    "sampling_rate_hz",
    "activity",
    "session_date",
)


def write_dataset(
    out_dir: str | Path,
    athletes: int = 2,
    minutes: float = 1.0,
    seed: int = 0,
    activity: str = "walk",
    sampling_rate_hz: float = 200.0,
    sessions: int = 1,
    profile: DeviceProfile = DEFAULT_PROFILE,
    progress: Callable[[str], None] | None = None,
    toe_out_deg: float | None = None,
    calibration: bool = False,
) -> Path:
    """Simulate and write a dataset; returns the path of its manifest.csv.

    progress, if given, is called with "athlete/session" after each session is written.
    toe_out_deg: every foot toes out this much (deg, + outward); None: each athlete's own (0-20 deg).
    calibration: each session starts with a toe-tap calibration (module docstring).
    """
    if activity not in ACTIVITY_CHOICES:
        raise ValueError(f"activity must be one of {ACTIVITY_CHOICES}, got {activity!r}")
    if athletes < 1 or sessions < 1 or minutes <= 0 or sampling_rate_hz <= 0:
        raise ValueError("athletes and sessions must be >= 1, minutes and sampling_rate_hz > 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest, truths, params = [], [], []
    for a in range(athletes):
        arng = np.random.default_rng(np.random.SeedSequence([seed, a]))
        base = sample_athlete(arng)
        drift = sample_drift(arng, base)
        gaps = arng.integers(7, 15, size=sessions)
        start = FIRST_SESSION_DATE + dt.timedelta(days=int(arng.integers(0, 7)))
        # the athlete's two pods keep their gyro gain errors from session to session
        gains = {foot: draw_gyr_gain(arng, profile) for foot in S.FEET}
        # ... and stay mounted the same way (a remount is something to detect, not the default)
        mounts = {foot: draw_mounting(arng, foot) for foot in S.FEET}
        athlete_id = f"A{a + 1:03d}"
        if calibration:
            base = sample_tap_axis(np.random.default_rng(np.random.SeedSequence([seed, a, 0])), base)
        for k in range(sessions):
            fraction = k / (sessions - 1) if sessions > 1 else 0.0
            athlete = base.drifted(drift, fraction)
            session_id = f"S{k + 1:02d}"
            date = start + dt.timedelta(days=int(gaps[:k].sum()))
            sim = Simulator(
                SimulationSettings(
                    activity=activity,
                    duration_s=60.0 * minutes,
                    sampling_rate_hz=sampling_rate_hz,
                    seed=[seed, a, k + 1],
                    profile=profile,
                    athlete_id=athlete_id,
                    session_id=session_id,
                    athlete=athlete,
                    keep_orientation=False,
                    toe_out_deg=toe_out_deg,
                    gyr_gains=gains,
                    mounting_rotations=mounts,
                    calibration=calibration,
                )
            ).simulate()
            for foot in S.FEET:
                rel = Path(athlete_id) / session_id / f"{foot}.parquet"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                sim.samples_.filter(pl.col(S.FOOT) == foot).write_parquet(out / rel)
                q = wxyz_from_rotation(sim.mounting_[foot])
                manifest.append(
                    {
                        "path": rel.as_posix(),
                        S.ATHLETE_ID: athlete_id,
                        S.SESSION_ID: session_id,
                        S.FOOT: foot,
                        "sampling_rate_hz": float(sampling_rate_hz),
                        "activity": activity,
                        "session_date": date.isoformat(),
                        **{c: float(x) for c, x in zip(MOUNT_QUAT, q, strict=True)},
                        "profile": profile.name,
                        **(
                            {"calibration_s": sim.calibration_s_, "tap_axis_deg": athlete.tap_axis(foot)}
                            if calibration
                            else {}
                        ),
                    }
                )
                for row in athlete.as_rows(foot):
                    params.append({S.ATHLETE_ID: athlete_id, S.SESSION_ID: session_id, S.FOOT: foot} | row)
            truths.append(sim.truth_strides_)
            if progress is not None:
                progress(f"{athlete_id}/{session_id}")
    pl.DataFrame(manifest).write_csv(out / "manifest.csv")
    pl.concat(truths).write_parquet(out / "truth_strides.parquet")
    pl.DataFrame(params).write_parquet(out / "truth_params.parquet")
    return out / "manifest.csv"
