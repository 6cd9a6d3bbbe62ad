"""Root of strideflow's exception hierarchy.

StrideflowError
├── IngestError        (strideflow.ingest.errors) a file or stream that cannot be read as samples
├── AlignmentError     (strideflow.hardware.mounting) no standing or walking data to align with
└── ...                each stage adds its own, always with a message that names the problem
"""


class StrideflowError(Exception):
    """Base class of every error strideflow raises on purpose; the CLI prints these without a traceback."""
