"""MbientLab MetaWear CSV export (MetaBase app), one file per sensor.

Layout (MbientLab "MetaBase" app documentation, CSV output; the same header as MbientLab's
MetaWear SDK examples): header `epoch (ms),time (<UTC offset>),elapsed (s),x-axis (<unit>),
y-axis (<unit>),z-axis (<unit>)`, then one row per sample; the accelerometer file has units `(g)`,
the gyroscope file `(deg/s)`. MetaBase names the files `<device>_<date>_<MAC>_Accelerometer.csv`
and `..._Gyroscope.csv` (the sensor's name last), so giving either file reads both: the partner is
the same name with the sensor word swapped, else the only file of the other sensor in the folder.
The two sensors are sampled on their own clocks; the gyroscope is interpolated linearly onto the
accelerometer's `epoch (ms)` times, and accelerometer samples outside the gyroscope's span are
left out (with a warning).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strideflow.hardware.schema import ACC, GYR
from strideflow.ingest.csvfile import RawTable
from strideflow.ingest.errors import IGNORED_COLUMN, IngestError, WarningLog
from strideflow.ingest.formats import _table
from strideflow.ingest.formats.registry import DeviceFormat, register
from strideflow.ingest.settings import ReadSettings

_SENSORS = {"accelerometer": "acc", "gyroscope": "gyr"}


def _is_header(line: str) -> bool:
    cells = [c.lower() for c in _table.cells(line)]
    return len(cells) >= 6 and cells[0] == "epoch (ms)" and cells[3].startswith("x-axis (")


def detect(path: Path, head: bytes) -> bool:
    lines = _table.lines(head, 2)
    return bool(lines) and _is_header(lines[0])


def _read_one(
    source: str, data: bytes, settings: ReadSettings, log: WarningLog
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], str]:
    """epoch (ms), values (3, n), file lines, the axis labels and the unit of one sensor file."""
    head = _table.lines(data, 2)
    if not head or not _is_header(head[0]):
        raise IngestError(
            source, "not a MetaBase CSV: line 1 should be 'epoch (ms),time (...),elapsed (s),x-axis (...)'"
        )
    labels = _table.cells(head[0])
    units = {_table.unit_of(labels[p]) for p in (3, 4, 5)}
    if len(units) != 1 or None in units:
        raise IngestError(source, f"axis columns state no single known unit ({labels[3:6]})", row=1)
    values, rows = _table.read_body(source, data, 1, labels, ",", {p: labels[p] for p in (0, 3, 4, 5)}, log)
    return values[0], np.stack([values[p] for p in (3, 4, 5)]), rows, labels[3:6], units.pop()


def _partner(path: Path, sensor: str, other: str) -> Path:
    name = path.name
    lower = name.lower()
    i = lower.rfind(sensor)
    if i >= 0:
        candidate = path.with_name(name[:i] + other.capitalize() + name[i + len(sensor) :])
        if candidate.is_file():
            return candidate
    found = sorted(p for p in path.parent.glob("*.csv") if other in p.name.lower())
    if len(found) == 1:
        return found[0]
    raise IngestError(
        str(path),
        f"a MetaBase {sensor} file needs its {other} file beside it (same name with {other.capitalize()}); "
        f"found {len(found)} candidates",
    )


def read(source: str, data: bytes, path: Path, settings: ReadSettings, log: WarningLog) -> list[RawTable]:
    epoch, xyz, rows, labels, unit = _read_one(source, data, settings, log)
    group = "gyr" if unit in ("dps", "rad/s") else "acc"
    sensor = "gyroscope" if group == "gyr" else "accelerometer"
    other = "accelerometer" if group == "gyr" else "gyroscope"
    other_path = _partner(path, sensor, other)
    try:
        other_data = other_path.read_bytes()
    except OSError as exc:
        raise IngestError(str(other_path), f"cannot read the file ({exc.strerror or exc})") from None
    o_epoch, o_xyz, _, o_labels, o_unit = _read_one(str(other_path), other_data, settings, log)
    if group == "acc":
        acc = (epoch, xyz, rows, labels, unit)
        gyr = (o_epoch, o_xyz, None, [f"{other_path.name}:{x}" for x in o_labels], o_unit)
    else:
        gyr = (epoch, xyz, rows, labels, unit)
        acc = (o_epoch, o_xyz, None, [f"{other_path.name}:{x}" for x in o_labels], o_unit)
    t_acc, t_gyr = acc[0], gyr[0]
    if np.any(np.diff(t_gyr) <= 0):
        raise IngestError(str(other_path if group == "acc" else source), "epoch (ms) does not increase")
    inside = (t_acc >= t_gyr[0]) & (t_acc <= t_gyr[-1])
    if not inside.any():
        raise IngestError(source, "the accelerometer and gyroscope files do not overlap in time")
    if not inside.all():
        log.add(
            IGNORED_COLUMN,
            f"{int((~inside).sum())} accelerometer samples outside the gyroscope's time span left out",
        )
    t = t_acc[inside]
    channels = {c: acc[1][i][inside] for i, c in enumerate(ACC)}
    channels.update({c: np.interp(t, t_gyr, gyr[1][i]) for i, c in enumerate(GYR)})
    acc_rows = acc[2] if acc[2] is not None else np.arange(1, t_acc.size + 1) + 1
    names = {**dict(zip(ACC, acc[3], strict=True)), **dict(zip(GYR, gyr[3], strict=True))}
    values = {i: v for i, v in enumerate([t, *channels.values()])}
    return [
        _table.build_table(
            source,
            values,
            acc_rows[inside],
            channels={c: i + 1 for i, c in enumerate(channels)},
            labels=names,
            units={"acc": acc[4], "gyr": gyr[4]},
            time_pos=0,
            time_label="epoch (ms)",
            time_scale=1e-3,
            settings=settings,
            log=log,
        )
    ]


FORMAT = register(
    DeviceFormat(
        name="metawear",
        maker="MbientLab (MetaWear, MetaBase app)",
        document="MetaBase app documentation: CSV output (one file per sensor)",
        detect=detect,
        read=read,
    )
)
