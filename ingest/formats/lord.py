"""LORD MicroStrain SensorConnect CSV export (3DM-GX5 and other inertial nodes).

Layout, as SensorConnect writes it: an optional preamble ending in a `DATA_START` line, then one
header row `Time,<node>:<channel>,...` where `<node>` is the device's node name
(`inertial-6253.76535`), then one row per sample. Estimation-filter channels come in pairs, the
value and `<node>:<channel>:valid` (1 valid, 0 not).

Units are not in the file; they are the MIP data quantities' units from LORD's "3DM-GX5-25 Data
Communications Protocol" manual (sensor data set 0x80 and estimation filter data set 0x82):
`scaledAccelX/Y/Z` (0x80,0x04) in g, `scaledGyroX/Y/Z` (0x80,0x05) in rad/s, `scaledMagX/Y/Z`
(0x80,0x06) in Gauss, `estCompensatedAccelX/Y/Z` (0x82,0x1C) in m/s² (gravity included, biases
removed), `estAngularRateX/Y/Z` (0x82,0x0E) in rad/s. The device's own angles are not used.
`Time` is in seconds. The raw scaled channels are preferred when a file has both.

Gyro lag (`GYR_DELAY_S`, the `lord-3dm-gx5-25` device profile's `gyr_delay_s`): the
3DM-GX5-25's angular-rate samples lag its acceleration samples by about 5 ms, in the scaled
(0x80) and the filter (0x82) channels alike, so the gyro channels are read 5 ms later
(`_table.build_table`, warning kind `gyro_delay`). LORD's manual states no such figure; it was
measured on the footprint walks of `../shared/data/footprints_walks` (one 3DM-GX5-25, issue 17):
with the gyro read d ms later, the mean stride-length error of the normal-speed walks (reference
median stride < 1.5 m) crosses zero at d = 5-6 ms on both channel sets, 200 Hz and 250 Hz, so a
lag in time, not in samples (d = 0: -1.6...-2.8 cm; 3 ms: -0.6...-1.5; 4.5 ms: -0.1...-0.9;
5.5 ms: -0.6...+0.3; 7 ms: -0.3...+0.8), the spread halves (median abs 1.6-2.6 -> 0.7-1.7 cm) and
the fast walks, not used to choose it, improve too. A lag, not a gyro gain error: the gyro gain
that would lengthen the strides as much (+2-3 %) has the wrong sign for the walks' heading, which
turns 1.3-2.2 % more than the footprint path (walks 32, 33, 36, 42, 45; a lag leaves integrated
angles unchanged).
Why a lag shortens strides: the orientation turns late, so gravity is removed in the wrong
direction while the foot rotates fast in swing (`fusion.sensor_delay`). To check another unit,
walk over marked footprints and scan `AnalysisSettings(gyr_delay_s=...)` (on top of what this
reader undoes); the ZUPT-residual estimator (`gyr_delay_s="estimate"`) does not single the lag
out on these walks.

Gyro clipping (`GYR_RANGE_RPS`, the profile's `gyr_range_dps`): the gyro of the footprint walks'
pod clips at about 500 deg/s per axis; its calibrated output then reads 495-510 deg/s, for up to
130 ms in the mid-swing of a running-like stride (walk 35: 523 samples, 4.9 % of the file). The
reader rebuilds those runs (`ingest.clipping`, warning kind `gyro_clipped`) before undoing the lag.
On walk 35 that took the stride-length bias from -4.9 to -1.9 cm and the walked distance from
-1.9 % to -0.6 %; the normal-speed walks, with a few clipped samples at most, moved by 0.01 cm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strideflow.hardware.profiles import PROFILES
from strideflow.hardware.schema import ACC, GYR, MAG
from strideflow.ingest.csvfile import RawTable
from strideflow.ingest.errors import IGNORED_SENSOR, IngestError, WarningLog
from strideflow.ingest.formats import _table
from strideflow.ingest.formats.registry import DeviceFormat, register
from strideflow.ingest.settings import ReadSettings

# channel name (after the node prefix) -> (canonical, unit, scale to the unit strideflow reads)
_SCALED = {
    **{f"scaledAccel{a}": (c, "g", 1.0) for a, c in zip("XYZ", ACC, strict=True)},
    **{f"scaledGyro{a}": (c, "rad/s", 1.0) for a, c in zip("XYZ", GYR, strict=True)},
    **{f"scaledMag{a}": (c, "ut", _table.GAUSS_TO_UT) for a, c in zip("XYZ", MAG, strict=True)},
}
_FILTER = {
    **{f"estCompensatedAccel{a}": (c, "mps2", 1.0) for a, c in zip("XYZ", ACC, strict=True)},
    **{f"estAngularRate{a}": (c, "rad/s", 1.0) for a, c in zip("XYZ", GYR, strict=True)},
}
_VALID = "valid"
# s; how much the gyro lags the accelerometer on the 3DM-GX5-25 (module docstring).
GYR_DELAY_S = PROFILES["lord-3dm-gx5-25"].gyr_delay_s
_GYR_DELAY_SOURCE = "LORD 3DM-GX5-25 gyro lag measured on walks with footprints, ingest.formats.lord"
# rad/s, the gyro channels' unit: the range at which the 3DM-GX5-25 clips (module docstring).
GYR_RANGE_RPS = float(np.radians(PROFILES["lord-3dm-gx5-25"].gyr_range_dps))


def _split(label: str) -> tuple[str, str, bool] | None:
    """`node:channel[:valid]` -> (node, channel, is_flag)."""
    parts = label.split(":")
    if len(parts) == 3 and parts[2] == _VALID:
        return parts[0], parts[1], True
    if len(parts) == 2:
        return parts[0], parts[1], False
    return None


def _is_header(line: str) -> bool:
    cells = _table.cells(line)
    if not cells or cells[0].lower() != "time":
        return False
    channels = {s[1] for s in map(_split, cells[1:]) if s is not None}
    return bool(channels & (set(_SCALED) | set(_FILTER)))


def detect(path: Path, head: bytes) -> bool:
    return any(_is_header(line) for line in _table.lines(head, 40))


def read(source: str, data: bytes, path: Path, settings: ReadSettings, log: WarningLog) -> list[RawTable]:
    head = _table.lines(data, 40)
    h = _table.find_line(head, _is_header, "SensorConnect header row (Time,<node>:<channel>,...)", source)
    labels = _table.cells(head[h])
    split = {pos: _split(label) for pos, label in enumerate(labels) if pos > 0}
    nodes = list(dict.fromkeys(s[0] for s in split.values() if s is not None))
    by_channel: dict[tuple[str, str, bool], int] = {s: pos for pos, s in split.items() if s is not None}

    def columns_of(node: str, table: dict) -> dict[str, int]:
        return {name: by_channel[(node, name, False)] for name in table if (node, name, False) in by_channel}

    chosen = None
    for node in nodes:
        for table in (_SCALED, _FILTER):
            found = columns_of(node, table)
            if all(any(table[n][0] == c for n in found) for c in (*ACC, *GYR)):
                chosen = (node, table, found)
                break
        if chosen:
            break
    if chosen is None:
        raise IngestError(
            source,
            "no node with all of scaledAccelX/Y/Z and scaledGyroX/Y/Z, or estCompensatedAccelX/Y/Z and "
            f"estAngularRateX/Y/Z (nodes seen: {nodes})",
            row=h + 1,
        )
    node, table, found = chosen
    for other in nodes:
        if other != node:
            log.add(IGNORED_SENSOR, f"node {other!r} ignored: one sensor per file is read", row=h + 1)
    mag_found = [n for n in found if table[n][0] in MAG]
    if len(mag_found) != 3:
        found = {n: p for n, p in found.items() if table[n][0] not in MAG}
    channels = {table[n][0]: p for n, p in found.items()}
    valid = {table[n][0]: by_channel[(node, n, True)] for n in found if (node, n, True) in by_channel}
    wanted = {
        0: labels[0],
        **{p: labels[p] for p in found.values()},
        **{p: labels[p] for p in valid.values()},
    }
    values, rows = _table.read_body(source, data, h + 1, labels, ",", wanted, log)
    units = {"acc": table[next(n for n in found if table[n][0] == ACC[0])][1]}
    units["gyr"] = table[next(n for n in found if table[n][0] == GYR[0])][1]
    return [
        _table.build_table(
            source,
            values,
            rows,
            channels=channels,
            labels={table[n][0]: labels[p] for n, p in found.items()},
            units=units,
            time_pos=0,
            time_label=labels[0],
            time_scale=1.0,
            settings=settings,
            log=log,
            valid=valid,
            scale={table[n][0]: table[n][2] for n in found},
            gyr_delay_s=GYR_DELAY_S,
            gyr_delay_source=_GYR_DELAY_SOURCE,
            gyr_range=GYR_RANGE_RPS,
        )
    ]


FORMAT = register(
    DeviceFormat(
        name="lord",
        maker="LORD MicroStrain (SensorConnect)",
        document="3DM-GX5-25 Data Communications Protocol manual, MIP sets 0x80 and 0x82",
        detect=detect,
        read=read,
    )
)
