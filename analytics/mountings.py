"""One mounting per athlete, device and foot, kept across sessions, and the remounts that end one.

A mounting is the device -> foot rotation of a pod on a shoe (`hardware.mounting`). Re-estimated
from every recording it would follow each day's gait; kept, trends are measured in one fixed
frame. So:

- `MountingTracker` (per foot of one recording, called by `analytics.pipeline`): finds remounts
  within the recording (`hardware.remount.RemountDetector`: a jump of the foot-flat up direction
  or of the swing axis in the device frame), estimates a mounting per piece, and compares the
  first piece with the prior mounting the caller passes (the athlete's stored mounting of that
  device and foot): within tolerance the prior is used unchanged (the same rotation, so the
  same frame), beyond it a new mounting starts with the reason stated.
- The store: one JSON file per athlete in the results tree, `OUT/_mountings/<athlete_id>.json`,
  written with `ingest.durable.write_atomic` under a lock, shared by the team batch and the
  service's upload jobs (`read_mountings`, `prior_mountings`, `record_mountings`). The analysis
  itself never reads it: callers pass the prior in.

A device id is what the caller knows (a stream's device id; `DEFAULT_DEVICE` for files, which
carry none): files of one athlete's foot without a device id are taken as one device.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from strideflow.analytics.segment import estimate_mounting_details
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.frames import rotation_from_wxyz, wxyz_from_rotation
from strideflow.hardware.mounting import MountingEstimator
from strideflow.hardware.remount import (
    RemountDetector,
    direction_scatter_deg,
    jump_deg,
    stride_swing_axes,
)

__all__ = [
    "DEFAULT_DEVICE",
    "Mounting",
    "MountingPiece",
    "MountingTracker",
    "mountings_path",
    "prior_mountings",
    "read_mountings",
    "mountings_used",
    "record_mountings",
    "same_device",
]

DEFAULT_DEVICE = "default"
FIRST = "first"  # Mounting.started: the athlete's first mounting of this device and foot
REMOUNT_BETWEEN = "remount_between_sessions"  # the prior mounting did not fit this session
REMOUNT_WITHIN = "remount_within_recording"  # a jump part-way through a recording


@dataclass(frozen=True)
class Mounting:
    """One mounting of a device on an athlete's foot (units in the names).

    mounting_id: unique per athlete, device and foot ("<foot>-<first session>-<piece>").
    q_wxyz: device -> foot rotation, scalar first. shoe_axis_source, uncertainty_deg: how the
        heading of x was found and its 1-sigma uncertainty (`hardware.shoe_axis`; None: given).
    up_dev, swing_axis_dev: unit foot-flat up and median swing axis in the device frame; their
        per-stride scatters (`hardware.remount.direction_scatter_deg`) set the remount tolerance.
    gravity_spread_deg: quality, the RMS spread of the foot-flat gravity directions used.
    started: "first", "remount_between_sessions" or "remount_within_recording"; reason: in words.
    first_session_id, last_session_id: where it was used; start_t_s: where in its first session it
        began (s); session_strides: (session_id, strides measured in it) per session it was used in.
    """

    mounting_id: str
    foot: str
    q_wxyz: tuple[float, float, float, float]
    shoe_axis_source: str | None
    uncertainty_deg: float | None
    up_dev: tuple[float, float, float]
    swing_axis_dev: tuple[float, float, float]
    up_scatter_deg: float
    swing_scatter_deg: float
    gravity_spread_deg: float
    started: str
    reason: str
    first_session_id: str
    last_session_id: str
    start_t_s: float = 0.0
    session_strides: tuple[tuple[str, int], ...] = ()
    athlete_id: str | None = None
    device_id: str | None = None

    @property
    def n_strides(self) -> int:
        return sum(n for _, n in self.session_strides)

    @property
    def sessions(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.session_strides)

    @property
    def rotation(self) -> Rotation:
        return rotation_from_wxyz(np.asarray(self.q_wxyz, dtype=float))

    def to_dict(self) -> dict:
        """JSON-ready fields, with `n_strides` and `sessions` added for readers."""
        return asdict(self) | {"n_strides": self.n_strides, "sessions": list(self.sessions)}

    @classmethod
    def from_dict(cls, row: Mapping) -> Mounting:
        names = cls.__dataclass_fields__
        values = {k: v for k, v in row.items() if k in names}
        for k in ("q_wxyz", "up_dev", "swing_axis_dev"):
            values[k] = tuple(float(x) if x is not None else float("nan") for x in values[k])
        values["session_strides"] = tuple((str(a), int(b)) for a, b in values.get("session_strides", ()))
        return cls(**values)


@dataclass(frozen=True)
class MountingPiece:
    """A stretch of one foot's recording in one mounting: rows [start_row, stop_row), its rotation,
    warnings and the mounting."""

    start_row: int
    stop_row: int
    mounting: Mounting
    warnings: tuple[str, ...] = ()


def _tuple(v: np.ndarray) -> tuple:
    return tuple(float(x) for x in np.asarray(v, dtype=float))


def _median_direction(d: np.ndarray) -> np.ndarray:
    d = d[np.isfinite(d[:, 0])]
    m = np.median(d, axis=0) if len(d) else np.full(3, np.nan)
    return m / np.linalg.norm(m)


class MountingTracker:
    """The mountings of one foot of one recording, given the prior one (see the module docstring).

    Parameters
    ----------
    settings
        The analysis settings: `mounting`, `mounting_fallback`, `mounting_window_s` as
        `analytics.segment.estimate_mounting`; `remount` (None: no detection within the
        recording, and a prior is used as it is).

    Attributes
    ----------
    pieces_ : list[MountingPiece]
        The mountings in time order, covering all rows.
    warnings_, remounts_ : tuple[str, ...]
        Warnings, and one line per remount, in words.

    Notes
    -----
    strideflow's own heuristic over `hardware.mounting` and `hardware.remount`.
    """

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings

    def estimate(
        self,
        acc_mps2: np.ndarray,
        gyr_dps: np.ndarray,
        t_s: np.ndarray,
        sampling_rate_hz: float,
        keys: tuple[str, str, str],
        where: str,
        prior: Mounting | None = None,
    ) -> MountingTracker:
        """Estimate from one foot's (N, 3) device-frame acc (m/s²) and gyr (deg/s) and times (s)."""
        s = self.settings
        fs = float(sampling_rate_hz)
        n = len(acc_mps2)
        detector = RemountDetector(s.remount) if s.remount is not None else None
        bounds = [0, n]
        within: list[str] = []
        if detector is not None:
            bounds, within = self._split(acc_mps2, gyr_dps, t_s, fs, detector, where)
        pieces: list[MountingPiece] = []
        remounts: list[str] = []
        warnings: list[str] = []
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            mounting, notes, remount = self.piece(
                acc_mps2[lo:hi],
                gyr_dps[lo:hi],
                float(t_s[lo]) if n else 0.0,
                fs,
                keys,
                where,
                i,
                prior=prior if i == 0 else None,
                within=within[i - 1] if i > 0 else None,
            )
            if remount is not None:
                remounts.append(remount)
            warnings.extend(notes)
            pieces.append(MountingPiece(lo, hi, mounting, notes))
        self.pieces_ = pieces
        self.warnings_ = tuple(warnings) + tuple(remounts)
        self.remounts_ = tuple(remounts)
        return self

    def piece(
        self,
        acc_mps2: np.ndarray,
        gyr_dps: np.ndarray,
        start_t_s: float,
        sampling_rate_hz: float,
        keys: tuple[str, str, str],
        where: str,
        index: int,
        prior: Mounting | None = None,
        within: str | None = None,
    ) -> tuple[Mounting, tuple[str, ...], str | None]:
        """The mounting of one piece of a foot's data (device frame, m/s² and deg/s, starting at
        `start_t_s` s): (mounting, warnings, the remount line or None).

        `index` numbers the piece in its session (0: the first); `within` is the reason of a remount
        within the recording that began it; the first piece is compared with `prior`. `estimate`
        runs it per piece; a live stream (`analytics.live_mountings`) at its warm-up and at each
        remount it finds. Raises `analytics.segment.MountingFailed` as `estimate_mounting` does.
        """
        s = self.settings
        fs = float(sampling_rate_hz)
        est, notes = estimate_mounting_details(acc_mps2, gyr_dps, fs, s, where)
        mounting = self._mounting(est, gyr_dps, keys, index, start_t_s)
        if within is not None:
            return replace(mounting, started=REMOUNT_WITHIN, reason=within), notes, f"{where}: {within}"
        if prior is None:
            return mounting, notes, None
        detector = RemountDetector(s.remount) if s.remount is not None else None
        fits, why = self.fits(prior, mounting, detector)
        if not fits:
            mounting = replace(
                mounting, started=REMOUNT_BETWEEN, reason=f"since mounting {prior.mounting_id}: {why}"
            )
            return mounting, notes, f"{where}: remount since mounting {prior.mounting_id}: {why}"
        notes = tuple(x for x in notes if "walking direction stands in" not in x)
        if prior.shoe_axis_source == "walking":
            notes += (
                f"{where}: the kept mounting {prior.mounting_id} takes the walking direction "
                f"for the shoe axis (uncertainty {prior.uncertainty_deg:.0f} deg)",
            )
        return replace(prior, last_session_id=keys[1]), notes, None

    def fits(self, prior: Mounting, new: Mounting, detector: RemountDetector | None) -> tuple[bool, str]:
        """(does `new`, this session's estimate, fit the `prior` mounting, why not in words)."""
        if detector is None:
            return True, ""
        problems = []
        for name, a, b, sa, sb in (
            ("foot-flat up", prior.up_dev, new.up_dev, prior.up_scatter_deg, new.up_scatter_deg),
            (
                "swing axis",
                prior.swing_axis_dev,
                new.swing_axis_dev,
                prior.swing_scatter_deg,
                new.swing_scatter_deg,
            ),
        ):
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                continue
            moved = jump_deg(np.asarray(a), np.asarray(b))
            tol = detector.tolerance_deg(float(np.hypot(sa, sb)), within=False, swing=name == "swing axis")
            if moved > tol:
                problems.append(f"{name} moved {moved:.1f} deg in the device frame (tolerance {tol:.1f} deg)")
        return not problems, "; ".join(problems)

    def _split(self, acc, gyr, t_s, fs, detector: RemountDetector, where: str) -> tuple[list[int], list[str]]:
        """Row bounds of the pieces (first 0, last N) and the reason of each inner bound."""
        n = len(acc)
        est, up, swing = stride_directions(acc, gyr, fs, self.settings)
        if est is None:
            return [0, n], []  # too little walking to look for a jump; estimate_mounting reports it
        det = detector.detect(up, swing)
        bounds, reasons = [0], []
        for k, jumps in zip(det.remounts_, det.jumps_, strict=True):
            row = int(est.strides_[k - 1, 1])  # the still period before the first stride in the new mount
            bounds.append(row)
            reasons.append(remount_reason(float(t_s[row]), jumps, det.tolerance_deg_))
        bounds.append(n)
        return bounds, reasons

    def _mounting(
        self,
        est: MountingEstimator,
        gyr: np.ndarray,
        keys: tuple[str, str, str],
        piece: int,
        start_t_s: float,
    ) -> Mounting:
        athlete, session, foot = keys
        swing = moving_only(est, stride_swing_axes(gyr, est.strides_, est.axis_dev_, self._swing_gyr_dps()))
        shoe = getattr(est, "shoe_axis_", None)
        return Mounting(
            mounting_id=f"{foot}-{session}-{piece + 1}",
            foot=foot,
            q_wxyz=_tuple(wxyz_from_rotation(est.rotation_)),
            shoe_axis_source=None if shoe is None else shoe.source_,
            uncertainty_deg=None if shoe is None else float(shoe.uncertainty_deg_),
            up_dev=_tuple(est.rotation_.inv().apply([0.0, 0.0, 1.0])),
            swing_axis_dev=_tuple(_median_direction(swing)),
            up_scatter_deg=direction_scatter_deg(moving_only(est, est.stride_up_dev_)),
            swing_scatter_deg=direction_scatter_deg(swing),
            gravity_spread_deg=float(est.quality_.gravity_spread_deg),
            started=FIRST,
            reason="",
            first_session_id=session,
            last_session_id=session,
            start_t_s=start_t_s,
            athlete_id=athlete,
        )

    def _swing_gyr_dps(self) -> float:
        r = self.settings.remount
        return r.swing_gyr_dps if r is not None else self.settings.mounting.swing_gyr_dps


def stride_directions(
    acc_mps2: np.ndarray, gyr_dps: np.ndarray, sampling_rate_hz: float, settings: AnalysisSettings
) -> tuple[MountingEstimator | None, np.ndarray, np.ndarray]:
    """The strides of device-frame data (m/s², deg/s) and their directions for remount detection:
    (the `MountingEstimator` with the walking heading, holding `strides_` (directions only: no
    rotation); the (n, 3) foot-flat ups and swing axes, NaN for strides that did not move the
    foot, `moving_only`), walking settings first, then running; (None, empty, empty) without
    walking."""
    for mounting in (settings.mounting, settings.mounting_fallback):
        if mounting is None:
            continue
        try:
            est = MountingEstimator(replace(mounting, heading="walking")).estimate(
                acc_mps2, gyr_dps, sampling_rate_hz, directions_only=True
            )
        except StrideflowError:
            continue
        swing_gyr = settings.remount.swing_gyr_dps if settings.remount is not None else mounting.swing_gyr_dps
        swing = stride_swing_axes(gyr_dps, est.strides_, est.axis_dev_, swing_gyr)
        return est, moving_only(est, est.stride_up_dev_), moving_only(est, swing)
    return None, np.zeros((0, 3)), np.zeros((0, 3))


def moving_only(est: MountingEstimator, directions: np.ndarray) -> np.ndarray:
    """Per-stride (n, 3) directions, NaN for the "strides" before the first one that moved the foot
    (by `min_stride_length_m`, dead-reckoned): a field calibration's toe taps, or fidgeting before
    walking off. They are no strides for remount detection: a tap turns about its own axis (15-25
    deg from the walking swing axis: the toe-out and the leg's axis), and a tap held at its top
    leaves a "foot-flat" tilted by the tap; either read as a remount (the simulator's calibration,
    `hardware.simulator.calibration`, did: 17 deg of foot-flat up). Later strides that did not move
    are kept: on imu_sample_ic_stride.csv the heel-rise plateaus split strides that way, and their
    scatter is part of the tolerance the recording needs (without them it found a false remount).
    """
    moved = np.isfinite(est.stride_walk_dev_[:, 0])
    before_walking = np.arange(len(moved)) < (int(np.argmax(moved)) if moved.any() else len(moved))
    return np.where(before_walking[:, None], np.nan, directions)


def remount_reason(t_s: float, jumps_deg: tuple[float, float], tolerance_deg: tuple[float, float]) -> str:
    """A remount within a recording at `t_s` s, in words: (foot-flat up, swing axis) jumps and tolerances."""
    (up, sw), (tol_up, tol_swing) = jumps_deg, tolerance_deg
    return (
        f"remount within the recording at t = {t_s:.1f} s: foot-flat up moved {up:.1f} deg "
        f"(tolerance {tol_up:.1f}), swing axis {sw:.1f} deg (tolerance {tol_swing:.1f})"
    )


# --- the store: OUT/_mountings/<athlete>.json --------------------------------------------------

MOUNTINGS_DIR = "_mountings"


def mountings_path(out_dir: str | Path, athlete_id: str) -> Path:
    """The athlete's mountings file in a results tree."""
    from strideflow.analytics.partitions import check_id

    return Path(out_dir) / MOUNTINGS_DIR / f"{check_id('athlete_id', athlete_id)}.json"


def read_mountings(out_dir: str | Path, athlete_id: str) -> list[Mounting]:
    """The athlete's mountings in the order they were recorded (empty when none)."""
    path = mountings_path(out_dir, athlete_id)
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise StrideflowError(f"{path}: not a mountings file ({exc})") from exc
    return [Mounting.from_dict(r) for r in rows.get("mountings", [])]


def same_device(stored_device_id: str | None, device_id: str) -> bool:
    """Whether a mounting stored for `stored_device_id` may be the one of `device_id`: the same
    device, or either is `DEFAULT_DEVICE` (files carry no device id, so a file's pod may be any
    stream's device, and a stream's pod the one the files were recorded with)."""
    return stored_device_id == device_id or DEFAULT_DEVICE in (stored_device_id, device_id)


def prior_mountings(
    stored: Iterable[Mounting], device_id: str, session_id: str, feet: Iterable[str] = ("left", "right")
) -> dict[str, Mounting]:
    """Per foot, the latest stored mounting of `device_id` (`same_device`: files and streams of one
    athlete's foot share their mountings, whichever way a session arrives), leaving out one that
    `session_id` itself began and no other session used (a session analysed again is decided
    afresh, unless later sessions were measured in the mounting it began: then that mounting is
    kept for it too). "Latest": the last begun (the store keeps them in the order they began)."""
    out: dict[str, Mounting] = {}
    feet = tuple(feet)
    for m in stored:
        own = m.first_session_id == session_id and set(m.sessions) <= {session_id}
        if same_device(m.device_id, device_id) and m.foot in feet and not own:
            out[m.foot] = m
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.stem}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def record_mountings(
    out_dir: str | Path,
    athlete_id: str,
    session_id: str,
    device_id: str,
    used: Iterable[tuple[Mounting, int]],
) -> list[Mounting]:
    """Store the mountings a session of `device_id` used, each with its number of strides in that
    session.

    A kept one is updated (last session, strides per session) under the device it was stored for
    (a stream that kept the files' mounting adds its session to that one); a new one is stored
    for `device_id`. What an earlier analysis of this session began and this one did not use is
    removed. Returns the athlete's mountings after the update. Callers: the team batch, the
    service's upload jobs and its live store (`service.live.store`), in any process: the
    read-modify-write holds an exclusive `flock` on the athlete's lock file.
    """
    from strideflow.ingest.durable import write_atomic

    path = mountings_path(out_dir, athlete_id)
    with _locked(path):
        # Under the lock nobody else is writing this file: a temporary one beside it is what a
        # killed writer left (the session it belonged to has no marker, so it is analysed again).
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
        stored = read_mountings(out_dir, athlete_id)
        index = {(m.device_id, m.foot, m.mounting_id): i for i, m in enumerate(stored)}
        now = set()
        for m, n_strides in used:
            device = m.device_id if m.device_id is not None else device_id
            key = (device, m.foot, m.mounting_id)
            now.add(key)
            old = stored[index[key]].session_strides if key in index else ()
            counts = dict(old) | {session_id: int(n_strides)}  # a session analysed again counts once
            m = replace(m, athlete_id=athlete_id, device_id=device, session_strides=tuple(counts.items()))
            if key in index:
                stored[index[key]] = m
            else:
                index[key] = len(stored)
                stored.append(m)
        # what an earlier analysis of this session began and this one did not use is gone
        stored = [
            m
            for m in stored
            if (m.device_id, m.foot, m.mounting_id) in now
            or not (m.device_id == device_id and m.first_session_id == session_id)
        ]
        body = {"athlete_id": athlete_id, "mountings": [m.to_dict() for m in stored]}
        write_atomic(path, json.dumps(body, indent=1).encode())
    return stored


def session_mountings(pieces: Mapping[str, list[Mounting]], strides_per_mounting: Mapping[str, int]) -> list:
    """(mounting, strides) pairs of a session's pieces, for `record_mountings`."""
    return [(m, int(strides_per_mounting.get(m.mounting_id, 0))) for ms in pieces.values() for m in ms]


def mountings_used(
    strides_parts: Iterable, pieces: Iterable[Mapping[str, list[Mounting]]]
) -> list[tuple[Mounting, int]]:
    """(mounting, strides measured in it) of a session, for `record_mountings`: `strides_parts`, its
    strides tables (with `mounting_id`); `pieces`, per part the mountings used per foot. The upload
    jobs, the team batch (`SessionOutcome.mountings_used`) and the live store count with it."""
    from strideflow.hardware.schema import MOUNTING_ID

    counts: dict[str, int] = {}
    for strides in strides_parts:
        if MOUNTING_ID in strides.columns:
            for mid, n in strides.group_by(MOUNTING_ID).len().iter_rows():
                if mid is not None:
                    counts[mid] = counts.get(mid, 0) + n
    seen: dict[tuple[str, str], Mounting] = {}
    for per_foot in pieces:
        for foot, ms in per_foot.items():
            for m in ms:
                seen[(foot, m.mounting_id)] = m
    return [(m, counts.get(m.mounting_id, 0)) for m in seen.values()]
