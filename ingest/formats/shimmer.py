"""Shimmer3 CSV export from Consensys (calibrated data).

Layout (Shimmer "Consensys User Manual", export of calibrated data to CSV): line 1 names the
separator for spreadsheet programs (`"sep=,"` or `"sep=\t"`, tab by default; a file re-saved
without that line is read too), line 2 the signal
names prefixed with the device's name (`Shimmer_A1B2_Timestamp_Unix_CAL`,
`Shimmer_A1B2_Accel_LN_X_CAL`, `Shimmer_A1B2_Gyro_X_CAL`, ...), line 3 their units (`ms`,
`m/(s^2)`, `deg/s`, ...), then the data. The low-noise accelerometer (`Accel_LN`) is preferred over
the wide-range one (`Accel_WR`); `_RAW` columns and the magnetometer (`local_flux*`, not µT) are not
read. Units are taken from the unit row; the documented ones are ms, m/(s^2) and deg/s.
"""

from __future__ import annotations

import re
from pathlib import Path

from strideflow.hardware.schema import ACC, GYR
from strideflow.ingest.csvfile import RawTable, sniff_separator
from strideflow.ingest.errors import IGNORED_SENSOR, IngestError, WarningLog
from strideflow.ingest.formats import _table
from strideflow.ingest.formats.registry import DeviceFormat, register
from strideflow.ingest.settings import ReadSettings

_SEP = re.compile(r'^"?sep=(.)"?\s*$', re.IGNORECASE)
_SIGNAL = re.compile(
    r"^(?P<device>.*?)_?(?P<signal>Timestamp_Unix|Timestamp|Accel_LN|Accel_WR|Gyro)"
    r"(?:_(?P<axis>[XYZ]))?_CAL$"
)
_TIME_SIGNALS = ("Timestamp_Unix", "Timestamp")  # preference order


def _layout(head: list[str]) -> tuple[int, str] | None:
    """(0-based line of the names, separator): after a `sep=` line, or first when that line was
    removed (as spreadsheet programs do on re-saving); None when the names are not Shimmer's."""
    match = _SEP.match(head[0].strip()) if head else None
    names_at, sep = (1, match.group(1)) if match else (0, sniff_separator(head[0]) if head else ",")
    if len(head) <= names_at:
        return None
    signals = sum(1 for c in _table.cells(head[names_at], sep) if _SIGNAL.match(c))
    return (names_at, sep) if signals >= (1 if match else 3) else None


def detect(path: Path, head: bytes) -> bool:
    return _layout(_table.lines(head, 3)) is not None


def read(source: str, data: bytes, path: Path, settings: ReadSettings, log: WarningLog) -> list[RawTable]:
    head = _table.lines(data, 4)
    layout = _layout(head)
    if layout is None or len(head) < layout[0] + 3:
        raise IngestError(
            source, 'not a Consensys export: ("sep=," line,) a row of *_CAL names, a row of units, then data'
        )
    names_at, sep = layout
    labels = _table.cells(head[names_at], sep)
    unit_cells = _table.cells(head[names_at + 1], sep)
    parsed = {p: m for p, label in enumerate(labels) if (m := _SIGNAL.match(label))}
    devices = list(dict.fromkeys(m["device"] for m in parsed.values()))
    device = devices[0] if devices else ""
    for other in devices[1:]:
        log.add(IGNORED_SENSOR, f"device {other!r} ignored: one sensor per file is read", row=names_at + 1)
    mine = {(m["signal"], m["axis"]): p for p, m in parsed.items() if m["device"] == device}
    acc_signal = "Accel_LN" if all(("Accel_LN", a) in mine for a in "XYZ") else "Accel_WR"
    positions = {
        **{c: mine.get((acc_signal, a)) for a, c in zip("XYZ", ACC, strict=True)},
        **{c: mine.get(("Gyro", a)) for a, c in zip("XYZ", GYR, strict=True)},
    }
    missing = [c for c, p in positions.items() if p is None]
    time_signal = next((s for s in _TIME_SIGNALS if (s, None) in mine), None)
    if missing or time_signal is None:
        what = ", ".join(missing) + (", a Timestamp_CAL column" if time_signal is None else "")
        raise IngestError(source, f"no {what.strip(', ')} in the name row (seen: {labels})", row=names_at + 1)
    time_pos = mine[(time_signal, None)]
    found = {c: _table.unit_of(unit_cells[p]) if p < len(unit_cells) else None for c, p in positions.items()}
    units = {
        "acc": _table.group_unit(source, found, ACC, "accelerometer") or "mps2",
        "gyr": _table.group_unit(source, found, GYR, "gyroscope") or "dps",
    }
    time_unit = _table.unit_of(unit_cells[time_pos]) if time_pos < len(unit_cells) else None
    time_scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(time_unit or "ms", 1e-3)
    labels = _table.pad_labels(labels, head[names_at + 2], sep)
    wanted = {time_pos: labels[time_pos], **{p: labels[p] for p in positions.values()}}
    values, rows = _table.read_body(source, data, names_at + 2, labels, sep, wanted, log)
    return [
        _table.build_table(
            source,
            values,
            rows,
            channels=positions,
            labels={c: labels[p] for c, p in positions.items()},
            units=units,
            time_pos=time_pos,
            time_label=labels[time_pos],
            time_scale=time_scale,
            settings=settings,
            log=log,
        )
    ]


FORMAT = register(
    DeviceFormat(
        name="shimmer",
        maker="Shimmer (Shimmer3, Consensys)",
        document="Consensys User Manual: export of calibrated data to CSV",
        detect=detect,
        read=read,
    )
)
