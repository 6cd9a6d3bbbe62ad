"""Xsens / Movella DOT CSV export (and the same columns from Xsens MT Manager's text export).

Layout (Movella "Xsens DOT User Manual", sections on data export and output data, and the "Xsens
DOT BLE Services Specifications" for the quantities): optional preamble lines (MT Manager writes
`// ...` lines), then a header row with `PacketCounter`, `SampleTimeFine`, and per quantity
`Acc_X,Acc_Y,Acc_Z` (m/s², gravity included), `Gyr_X,Gyr_Y,Gyr_Z` (deg/s), optionally
`Euler_*`/`Quat_*`, `FreeAcc_*` (gravity removed; not used) and `Mag_*` (arbitrary units; not used),
comma separated (DOT app) or tab separated (MT Manager). `SampleTimeFine` is the sensor's clock, a
uint32 that wraps at 2^32: µs on the DOT, 1/10 000 s on MTi/MTw devices (MT Manager); it is unwrapped
here. Units are not in the file; they are the documented ones above.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strideflow.hardware.schema import ACC, GYR
from strideflow.ingest.csvfile import RawTable, sniff_separator
from strideflow.ingest.errors import IngestError, WarningLog
from strideflow.ingest.formats import _table
from strideflow.ingest.formats.registry import DeviceFormat, register
from strideflow.ingest.settings import ReadSettings

_NAMES = {
    **{f"Acc_{a}": c for a, c in zip("XYZ", ACC, strict=True)},
    **{f"Gyr_{a}": c for a, c in zip("XYZ", GYR, strict=True)},
}
_WRAP = 2.0**32


def _is_header(line: str) -> bool:
    cells = set(_table.cells(line, sniff_separator(line)))
    return {"PacketCounter", "SampleTimeFine"} <= cells and "Acc_X" in cells


def detect(path: Path, head: bytes) -> bool:
    return any(_is_header(line) for line in _table.lines(head, 40))


def read(source: str, data: bytes, path: Path, settings: ReadSettings, log: WarningLog) -> list[RawTable]:
    head = _table.lines(data, 40)
    h = _table.find_line(head, _is_header, "header row with PacketCounter, SampleTimeFine, Acc_X", source)
    sep = sniff_separator(head[h])
    labels = _table.cells(head[h], sep)
    positions = {_NAMES[n]: p for p, n in enumerate(labels) if n in _NAMES}
    missing = [c for c in (*ACC, *GYR) if c not in positions]
    if missing:
        raise IngestError(
            source, f"no column for {', '.join(missing)}: export Acc and Gyr (seen: {labels})", row=h + 1
        )
    time_pos = labels.index("SampleTimeFine")
    mt_manager = any(line.startswith("//") for line in head[:h])
    wanted = {time_pos: "SampleTimeFine", **{p: labels[p] for p in positions.values()}}
    values, rows = _table.read_body(source, data, h + 1, labels, sep, wanted, log)
    ticks = values[time_pos]
    wraps = np.concatenate(([0.0], np.cumsum(np.diff(ticks) < -_WRAP / 2)))
    return [
        _table.build_table(
            source,
            values,
            rows,
            channels=positions,
            labels={c: labels[p] for c, p in positions.items()},
            units={"acc": "mps2", "gyr": "dps"},
            time_pos=time_pos,
            time_label="SampleTimeFine",
            time_scale=1e-4 if mt_manager else 1e-6,
            settings=settings,
            log=log,
            time_values=ticks + wraps * _WRAP,
        )
    ]


FORMAT = register(
    DeviceFormat(
        name="xsens",
        maker="Xsens / Movella (DOT; MT Manager text export)",
        document="Xsens DOT User Manual (data export, output data) and DOT BLE Services Specifications",
        detect=detect,
        read=read,
    )
)
