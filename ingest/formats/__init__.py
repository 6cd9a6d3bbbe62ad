"""Device export formats: one module per maker layout, all registered in `registry.REGISTRY`.

`read_recording(path)` detects them from the file's own header; `--format NAME` chooses one.
"""

from strideflow.ingest.formats import gaitup, lord  # noqa: F401  (importing registers them)
from strideflow.ingest.formats.registry import REGISTRY, DeviceFormat, detect_device

__all__ = ["REGISTRY", "DeviceFormat", "detect_device"]
