"""The registry of device export formats: one `DeviceFormat` per maker layout.

A format module builds its `DeviceFormat` and calls `register`; `ingest.formats` imports every
module, so importing the package fills the registry. Detection asks each format, in registration
order, whether the file's first bytes are its own; the first yes wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from strideflow.ingest.csvfile import RawTable
from strideflow.ingest.errors import WarningLog
from strideflow.ingest.settings import ReadSettings

# (source, data, path, settings, log) -> tables (one per time base)
Reader = Callable[[str, bytes, Path, ReadSettings, WarningLog], list[RawTable]]


@dataclass(frozen=True)
class DeviceFormat:
    """One maker's export layout.

    name: the `--format` value; maker, document: who defines the layout and which of their
    documents the column names and units come from; detect(path, head): True when the first
    64 KiB of the file (`head`) are in this layout; read: the whole file to raw tables.
    """

    name: str
    maker: str
    document: str
    detect: Callable[[Path, bytes], bool]
    read: Reader


REGISTRY: dict[str, DeviceFormat] = {}
HEAD_BYTES = 65536


def register(fmt: DeviceFormat) -> DeviceFormat:
    if fmt.name in REGISTRY:
        raise ValueError(f"device format {fmt.name!r} registered twice")
    REGISTRY[fmt.name] = fmt
    return fmt


def detect_device(path: str | Path, data: bytes) -> str | None:
    """Name of the device format whose header this file carries, or None."""
    head = data[:HEAD_BYTES]
    for fmt in REGISTRY.values():
        if fmt.detect(Path(path), head):
            return fmt.name
    return None
