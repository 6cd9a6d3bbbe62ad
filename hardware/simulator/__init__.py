"""Ground-truth shoe-IMU simulator: physically consistent signals of both feet and their true strides.

    from strideflow.hardware.simulator import SimulationSettings, Simulator, write_dataset
    sim = Simulator(SimulationSettings(activity="walk", duration_s=60, seed=1)).simulate()
    sim.samples_, sim.truth_strides_, sim.truth_orientation_, sim.mounting_, sim.params_

Modules: params (athlete gait and its sampling), schedule (bouts, turns, stance timelines),
kinematics (exact orientation, angular rate, specific force, position), imu (sensor errors),
calibration (an optional toe-tap field calibration before the session), truth (true strides
table), simulator (one session), dataset (a recorded dataset on disk).
"""

from strideflow.hardware.simulator.dataset import write_dataset
from strideflow.hardware.simulator.params import AthleteParams, GaitParams, sample_athlete
from strideflow.hardware.simulator.simulator import SimulationSettings, Simulator

__all__ = [
    "AthleteParams",
    "GaitParams",
    "SimulationSettings",
    "Simulator",
    "sample_athlete",
    "write_dataset",
]
