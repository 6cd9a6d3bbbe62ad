"""Simulated walking against the healthy real recording (gaitmap imu_sample.csv).

Method, applied identically to the recording and to the simulation:
- strides run from one peak plantarflexion rate (max gyr_y, near toe-off) to the next; for the
  recording these are its hand-labelled stride borders (they sit on gyr_y maxima), for the
  simulation the gyr_y maximum within 60 ms of each true toe-off;
- IC is the sample of peak |acc| in the stride (the heel-strike impact);
- swing = IC - stride start, stance = stride end - IC (toe-off is taken at the gyr_y peak);
- per-stride peaks: max |gyr| of each axis and max |acc|, over all straight strides of both feet.
The recording's sensors sit laterally, tilted about 15 deg in roll at rest. The simulation uses a
comparable mounting: per foot, the rotation taking +z to the recording's mean resting gravity
direction, so axis mixing is the same. The simulated walker walks at the recording's cadence
(from its stride borders); its other parameters are AthleteParams() defaults.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy.spatial.transform import Rotation

from strideflow.hardware import schema as S
from strideflow.hardware.simulator import AthleteParams, SimulationSettings, Simulator
from strideflow.hardware.simulator.params import GaitParams

RATE_HZ = 204.8
STILL_SAMPLES = 100  # the recording starts standing


def _stride_features(acc: np.ndarray, gyr: np.ndarray, borders: list[tuple[int, int]]) -> pd.DataFrame:
    rows = []
    for b0, b1 in borders:
        a = np.linalg.norm(acc[b0 : b1 + 1], axis=1)
        g = np.abs(gyr[b0 : b1 + 1])
        ic = int(np.argmax(a))
        rows.append(
            {
                "gyr_x": g[:, 0].max(),
                "gyr_y": g[:, 1].max(),
                "gyr_z": g[:, 2].max(),
                "acc": a.max(),
                "swing_s": ic / RATE_HZ,
                "stance_s": (b1 - b0 - ic) / RATE_HZ,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def recording(real_data):
    data = pd.read_csv(real_data / "imu_sample.csv", header=[0, 1], index_col=0)
    labels = pd.read_csv(real_data / "stride_borders_sample.csv")
    feats, mounts, stride_s = [], {}, []
    for foot in S.FEET:
        x = data[f"{foot}_sensor"]
        acc, gyr = x[list(S.ACC)].to_numpy(), x[list(S.GYR)].to_numpy()
        lab = labels[labels["foot"] == foot]
        feats.append(_stride_features(acc, gyr, list(zip(lab["start"], lab["end"], strict=True))))
        stride_s.extend((lab["end"] - lab["start"]) / RATE_HZ)
        g = acc[:STILL_SAMPLES].mean(axis=0)
        mounts[foot] = Rotation.align_vectors([g / np.linalg.norm(g)], [[0.0, 0.0, 1.0]])[0]
    cadence_spm = 120.0 / float(np.median(stride_s))
    return pd.concat(feats), mounts, cadence_spm


@pytest.fixture(scope="module")
def simulated(recording):
    _, mounts, cadence = recording
    athlete = AthleteParams(walk=GaitParams(cadence_spm=cadence))
    sim = Simulator(
        SimulationSettings(
            activity="walk",
            duration_s=90.0,
            sampling_rate_hz=RATE_HZ,
            seed=11,
            athlete=athlete,
            mounting_rotations=mounts,
            turns=False,
        )
    ).simulate()
    feats = []
    for foot in S.FEET:
        smp = sim.samples_.filter(pl.col(S.FOOT) == foot)
        t = smp[S.T].to_numpy()
        acc, gyr = smp.select(S.ACC).to_numpy(), smp.select(S.GYR).to_numpy()
        tr = sim.truth_strides_.filter((pl.col(S.FOOT) == foot) & pl.col(S.VALID))
        half = int(0.060 * RATE_HZ)
        peaks = []
        for to in tr[S.TOE_OFF_T]:
            i = int(np.searchsorted(t, to))
            peaks.append(i - half + int(np.argmax(gyr[i - half : i + half + 1, 1])))
        borders = [(a, b) for a, b in zip(peaks[:-1], peaks[1:], strict=True) if b - a < 2.0 * RATE_HZ]
        feats.append(_stride_features(acc, gyr, borders))
    return pd.concat(feats), sim


def test_recording_cadence(recording):
    _, _, cadence = recording
    assert 105.0 < cadence < 116.0  # 2 steps per ~1.085 s stride


@pytest.mark.parametrize("feature", ["gyr_x", "gyr_y", "gyr_z", "acc"])
def test_peaks_within_25_percent(recording, simulated, feature):
    real, sim = recording[0][feature].median(), simulated[0][feature].median()
    assert len(simulated[0]) > 40
    assert sim == pytest.approx(real, rel=0.25), f"{feature}: simulated {sim:.0f}, recording {real:.0f}"


@pytest.mark.parametrize("feature", ["stance_s", "swing_s"])
def test_stance_and_swing_within_10_percent(recording, simulated, feature):
    real = recording[0][feature].median()
    sim_signal = simulated[0][feature].median()
    assert sim_signal == pytest.approx(real, rel=0.10)
    # the simulator's true stance and swing times agree with the signal-based ones too
    truth = simulated[1].truth_strides_.filter(pl.col(S.VALID))
    column = S.STANCE_TIME_S if feature == "stance_s" else S.SWING_TIME_S
    assert truth[column].median() == pytest.approx(real, rel=0.10)
