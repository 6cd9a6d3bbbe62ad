"""APDM Opal HDF5 recordings (Mobility Lab / Motion Studio, file format version 5).

Layout (APDM "HDF5 File Format" documentation, version 5): group `/Sensors/<case id>` per sensor
with datasets `Accelerometer` (n x 3, m/s²), `Gyroscope` (n x 3, rad/s), `Magnetometer` (n x 3,
µT) and `Time` (n, uint64 µs since 1970-01-01 UTC), and a `Configuration` group whose attribute
`Label 0` is the body location chosen at setup (`Left Foot`, `Right Foot`, `Lumbar`, ...).
Every sensor whose label names a foot is read (on its own clock); sensors on other body parts are
left out with a warning. A file holding a single sensor with another label is one foot's sensor
whose foot the caller (or the default) gives.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from strideflow.hardware.schema import ACC, GYR, MAG
from strideflow.ingest.csvfile import RawSensor, RawTable, _time_seconds, foot_from_name
from strideflow.ingest.errors import IGNORED_SENSOR, IngestError, WarningLog
from strideflow.ingest.formats.registry import DeviceFormat, register
from strideflow.ingest.settings import ReadSettings

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def detect(path: Path, head: bytes) -> bool:
    return head[:8] == HDF5_MAGIC


def _label(group) -> str:
    config = group.get("Configuration")
    value = config.attrs.get("Label 0") if config is not None else None
    if isinstance(value, np.ndarray):
        value = value.flat[0] if value.size else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip("\x00 ") if value is not None else ""


def _array(source: str, group, name: str, sensor: str, shape: int | None) -> np.ndarray:
    where = f"/Sensors/{sensor}/{name}"
    if name not in group:
        raise IngestError(source, f"no dataset {where}")
    try:
        values = np.asarray(group[name][()], dtype=float)
    except (TypeError, ValueError, OSError) as exc:
        raise IngestError(source, f"dataset {where} is not numeric ({exc})") from None
    if shape is not None and (values.ndim != 2 or values.shape[1] != shape):
        raise IngestError(source, f"dataset {where} has shape {values.shape}, expected (n, {shape})")
    return values


_DATASET = {"acc": "Accelerometer", "gyr": "Gyroscope", "mag": "Magnetometer"}


def _sensor_table(
    source: str, group, name: str, foot: str | None, t0_us: float, settings: ReadSettings, log: WarningLog
) -> RawTable:
    acc = _array(source, group, "Accelerometer", name, 3)
    gyr = _array(source, group, "Gyroscope", name, 3)
    time_us = _array(source, group, "Time", name, None).reshape(-1)
    if not acc.shape[0] == gyr.shape[0] == time_us.size:
        raise IngestError(
            source,
            f"/Sensors/{name}: Accelerometer, Gyroscope and Time have {acc.shape[0]}, "
            f"{gyr.shape[0]} and {time_us.size} samples",
        )
    if time_us.size == 0:
        raise IngestError(source, f"/Sensors/{name}: no samples")
    channels = {c: acc[:, i] for i, c in enumerate(ACC)} | {c: gyr[:, i] for i, c in enumerate(GYR)}
    if "Magnetometer" in group:
        mag = _array(source, group, "Magnetometer", name, 3)
        if mag.shape[0] == time_us.size:
            channels |= {c: mag[:, i] for i, c in enumerate(MAG)}
    labels = {c: f"/Sensors/{name}/{_DATASET[c[:3]]}[{c[-1]}]" for c in channels}
    time_label = f"/Sensors/{name}/Time"
    sensor = RawSensor(foot=foot, channels=channels, labels=labels, units={"acc": "mps2", "gyr": "rad/s"})
    table = RawTable(
        sensors=[sensor], rows=np.arange(1, time_us.size + 1, dtype=np.int64), time_label=time_label
    )
    # µs since 1970 relative to the file's first sample: small numbers, exact in float64
    table.time_s = _time_seconds(source, time_us - t0_us, 1e-6, time_label, settings, log)
    return table


def read(source: str, data: bytes, path: Path, settings: ReadSettings, log: WarningLog) -> list[RawTable]:
    import h5py  # optional at import time: only APDM files need it

    try:
        h5 = h5py.File(io.BytesIO(data), "r")
    except OSError as exc:
        raise IngestError(source, f"not a readable HDF5 file ({exc})") from None
    with h5:
        sensors = h5.get("Sensors")
        if sensors is None or not isinstance(sensors, h5py.Group) or not len(sensors):
            raise IngestError(
                source, f"no /Sensors group: not an APDM v5 file (top level: {sorted(h5.keys())})"
            )
        labelled = {name: _label(sensors[name]) for name in sensors}
        feet = {name: foot_from_name(label) for name, label in labelled.items()}
        if len(labelled) == 1:
            chosen = list(labelled)
        else:
            chosen = [name for name, f in feet.items() if f is not None]
            if not chosen or len({feet[n] for n in chosen}) < len(chosen):
                raise IngestError(
                    source, f"cannot tell one left and one right foot sensor apart by label: {labelled}"
                )
        for name in labelled:
            if name not in chosen:
                log.add(IGNORED_SENSOR, f"sensor {name} ({labelled[name]!r}) is not on a foot; ignored")
        t0 = min(
            float(_array(source, sensors[n], "Time", n, None).reshape(-1)[:1].min(initial=np.inf))
            for n in chosen
        )
        tables = [
            _sensor_table(source, sensors[name], name, feet[name], t0, settings, log) for name in chosen
        ]
    return tables


FORMAT = register(
    DeviceFormat(
        name="apdm",
        maker="APDM (Opal; Mobility Lab / Motion Studio)",
        document="APDM HDF5 File Format documentation, version 5",
        detect=detect,
        read=read,
    )
)
