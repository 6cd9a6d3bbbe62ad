"""Recorded-file readers, validation and the canonical `samples` table.

from strideflow.ingest import read_recording
rec = read_recording("walk.csv", sampling_rate_hz=204.8)
rec.samples, rec.sampling_rate_hz, rec.warnings, rec.feet()
"""

from importlib import import_module

from strideflow.ingest.errors import IngestError, IngestWarning

# Readers pull in numpy and polars; they load on first use so that light users of the package
# (service settings reading `ingest.limits`, `strideflow keys`) start in well under a second.
_LAZY = {
    "FORMATS": "recording",
    "Recording": "recording",
    "default_id": "recording",
    "detect_format": "recording",
    "read_recording": "recording",
    "ReadSettings": "settings",
    "read_samples": "store",
    "write_samples": "store",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"strideflow.ingest.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'strideflow.ingest' has no attribute {name!r}")


__all__ = [
    "FORMATS",
    "IngestError",
    "IngestWarning",
    "ReadSettings",
    "Recording",
    "default_id",
    "detect_format",
    "read_recording",
    "read_samples",
    "write_samples",
]
