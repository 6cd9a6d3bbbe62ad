"""Device export formats: one module per maker layout, all registered in `registry.REGISTRY`.

`read_recording(path)` detects them from the file's own header; `--format NAME` chooses one.
"""

from strideflow.ingest.formats import apdm, gaitup, lord, mbientlab, shimmer, xsens  # noqa: F401  (registers them)
from strideflow.ingest.formats.registry import REGISTRY, DeviceFormat, detect_device

__all__ = ["REGISTRY", "DeviceFormat", "detect_device"]
