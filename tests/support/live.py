"""Feeding a live analyzer a recording in blocks, and the batch mounting/bias it may start from."""

from __future__ import annotations

import polars as pl

from strideflow.analytics.live_analyzer import LiveSettings, LiveStrideAnalyzer
from strideflow.fusion.zero_velocity import ZeroVelocityDetector
from strideflow.fusion.zupt import LevelledStrapdown
from strideflow.hardware import schema as S
from strideflow.hardware.frames import wxyz_from_rotation
from strideflow.hardware.mounting import apply_mounting
from strideflow.ingest.stream_receiver import SampleBlock


def stream(samples: pl.DataFrame, foot: str, fs: float, settings: LiveSettings, block: int = 200, prior=None):
    """The foot's samples pushed in blocks of `block`, then finish(); the analyzer (`prior`: its
    `prior_mounting`)."""
    part = samples.filter(pl.col(S.FOOT) == foot).sort(S.T)
    t = part[S.T].to_numpy()
    acc, gyr = part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()
    live = LiveStrideAnalyzer(
        part[S.ATHLETE_ID][0], part[S.SESSION_ID][0], foot, fs, settings, prior_mounting=prior
    )
    emitted = [
        live.push(SampleBlock(t[i : i + block], acc[i : i + block], gyr[i : i + block])).strides
        for i in range(0, len(t), block)
    ]
    emitted.append(live.finish().strides)
    assert pl.concat(emitted).equals(live.strides_)
    return live


def walk_by_foot(duration_s: float, seed: int) -> dict[str, tuple]:
    """foot -> (strides, curves, mountings) of a simulated walk (athlete A1, session S1) run through
    the live analyzer: what a live store gets of each foot's stream."""
    from strideflow.hardware.simulator import SimulationSettings, Simulator

    sim = Simulator(
        SimulationSettings(
            duration_s=duration_s, seed=seed, athlete_id="A1", session_id="S1", keep_orientation=False
        )
    ).simulate()
    out = {}
    for foot in ("left", "right"):
        live = stream(sim.samples_, foot, sim.settings.sampling_rate_hz, LiveSettings(), block=200)
        out[foot] = (live.strides_, live.curves_, tuple(live.mountings_.pieces_))
    return out


def batch_settings_for(samples, foot, fs, result) -> LiveSettings:
    """Live settings with batch's mounting rotation, gyro bias and levelling anchor SD of that foot."""
    rotation = result.mounting[foot]
    part = apply_mounting(samples.filter(pl.col(S.FOOT) == foot).sort(S.T), {foot: rotation})
    acc, gyr = part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()
    zv = ZeroVelocityDetector().detect(acc, gyr, fs).zero_velocity_
    levelled = LevelledStrapdown().estimate(acc, gyr, zv, fs, part[S.T].to_numpy())
    return LiveSettings(
        mounting_wxyz=tuple(wxyz_from_rotation(rotation)),
        gyr_bias_dps=tuple(levelled.gyr_bias_dps_),
        anchor_tilt_sd_deg=levelled.anchor_tilt_sd_deg_,
    )
