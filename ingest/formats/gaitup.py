"""GaitUp Physilog (Physilog 5/6) CSV export, as written by GaitUp's Research Analysis Toolkit.

Layout (Gait Up "Physilog 5 user manual", section on the CSV export of RTK): line 1
`Gait Up - Physilog data export`, then `Created on: ...` and `Total data points: N`, a blank line,
a group row naming each sensor over its columns with its rate (`Time [128 hz],Gyro [128 hz],,,
Accel [128 hz],,,Baro [1 hz],,...`), a name row (`Time,Gyro X,Gyro Y,Gyro Z,Accel X,...`), a unit
row (`[s],[deg/s],[deg/s],[deg/s],[g],[g],[g],[mBar],...`), then the data. Every data row ends with
a separator (one empty field more than the names), and the slower sensors' columns (barometer at
1 Hz) are empty on most rows; only time, gyro and accel are read. Units come from the unit row
(documented: time s, gyro deg/s, accel g). A file named `LF`/`RF` (GaitUp's left/right foot
naming) gives the foot.
"""

from __future__ import annotations

import re
from pathlib import Path

from strideflow.hardware.schema import ACC, FEET, GYR
from strideflow.ingest.csvfile import RawTable
from strideflow.ingest.errors import IngestError, WarningLog
from strideflow.ingest.formats import _table
from strideflow.ingest.formats.registry import DeviceFormat, register
from strideflow.ingest.settings import ReadSettings

_MAGIC = "gait up - physilog"
_NAMES = {
    **{f"gyro {a}": c for a, c in zip("xyz", GYR, strict=True)},
    **{f"accel {a}": c for a, c in zip("xyz", ACC, strict=True)},
}
_FOOT_WORDS = {"lf": "left", "rf": "right", "leftfoot": "left", "rightfoot": "right"}


def detect(path: Path, head: bytes) -> bool:
    first = next((line for line in _table.lines(head, 5) if line.strip()), "")
    return first.strip().lower().startswith(_MAGIC)


def foot_from_stem(stem: str) -> str | None:
    tokens = [t for t in re.split(r"[^a-z]+", stem.lower()) if t]
    found = {_FOOT_WORDS[t] for t in tokens if t in _FOOT_WORDS}
    return found.pop() if len(found) == 1 and found <= set(FEET) else None


def read(source: str, data: bytes, path: Path, settings: ReadSettings, log: WarningLog) -> list[RawTable]:
    head = _table.lines(data, 30)
    h = _table.find_line(
        head,
        lambda line: (c := [x.lower() for x in _table.cells(line)])[:1] == ["time"] and "gyro x" in c,
        "name row (Time,Gyro X,...,Accel X,...)",
        source,
    )
    if h + 2 >= len(head):
        raise IngestError(source, "no unit row and data after the name row", row=h + 1)
    names = _table.cells(head[h])
    unit_cells = _table.cells(head[h + 1])
    positions = {_NAMES[n.lower()]: p for p, n in enumerate(names) if n.lower() in _NAMES}
    missing = [c for c in (*ACC, *GYR) if c not in positions]
    if missing:
        raise IngestError(
            source, f"no column for {', '.join(missing)} in the name row (seen: {names})", row=h + 1
        )
    found = {c: _table.unit_of(unit_cells[p]) if p < len(unit_cells) else None for c, p in positions.items()}
    units = {
        "acc": _table.group_unit(source, found, ACC, "Accel") or "g",
        "gyr": _table.group_unit(source, found, GYR, "Gyro") or "dps",
    }
    labels = _table.pad_labels(names, head[h + 2], ",")
    wanted = {0: names[0], **{p: names[p] for p in positions.values()}}
    values, rows = _table.read_body(source, data, h + 2, labels, ",", wanted, log)
    time_unit = _table.unit_of(unit_cells[0]) if unit_cells else None
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(time_unit or "s", 1.0)
    return [
        _table.build_table(
            source,
            values,
            rows,
            channels=positions,
            labels={c: names[p] for c, p in positions.items()},
            units=units,
            time_pos=0,
            time_label=names[0],
            time_scale=scale,
            settings=settings,
            log=log,
            foot=foot_from_stem(path.stem),
        )
    ]


FORMAT = register(
    DeviceFormat(
        name="physilog",
        maker="Gait Up (Physilog 5/6)",
        document="Physilog 5 user manual: CSV export of the Research Analysis Toolkit",
        detect=detect,
        read=read,
    )
)
