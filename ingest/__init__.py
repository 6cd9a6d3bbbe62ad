"""Recorded-file readers, validation and the canonical `samples` table.

from strideflow.ingest import read_recording
rec = read_recording("walk.csv", sampling_rate_hz=204.8)
rec.samples, rec.sampling_rate_hz, rec.warnings, rec.feet()
"""

from strideflow.ingest.errors import IngestError, IngestWarning
from strideflow.ingest.recording import FORMATS, Recording, default_id, detect_format, read_recording
from strideflow.ingest.settings import ReadSettings
from strideflow.ingest.store import read_samples, write_samples

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
