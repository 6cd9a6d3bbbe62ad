"""The one error type of the ingest boundary."""

from __future__ import annotations

from strideflow.hardware.errors import StrideflowError


class IngestError(StrideflowError):
    """A recording that cannot become a valid `samples` table.

    The message always names the source, and where known the row (1-based line of the file, as an
    editor shows it) and the column, then the problem, e.g.
    ``walk.csv, row 17, column gyr_x: not a number ('abc')``.
    """

    def __init__(self, source: str, problem: str, *, row: int | None = None, column: str | None = None):
        self.source = str(source)
        self.problem = problem
        self.row = row
        self.column = column
        where = [self.source]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {problem}")
