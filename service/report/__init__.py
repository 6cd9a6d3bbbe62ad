"""The athlete report: one self-contained HTML file (inline CSS and SVG, nothing fetched to view it).

`data` loads a `ReportData` (from a results root or from recorded files), `html` renders it with the
figures of `plots`; `evaluate` scores strideflow against a reference and writes its own HTML page.
"""

from strideflow.service.report.data import ReportData, ReportError, load_files, load_results
from strideflow.service.report.html import SECTION_TITLES, render_html, write_report

__all__ = [
    "SECTION_TITLES",
    "ReportData",
    "ReportError",
    "load_files",
    "load_results",
    "render_html",
    "write_report",
]
