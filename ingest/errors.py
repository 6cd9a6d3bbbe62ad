"""The one error type of the ingest boundary."""

from __future__ import annotations

from dataclasses import dataclass

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


# Kinds of IngestWarning: what ingest changed or noticed in data it accepted.
GAP_INTERPOLATED = "gap_interpolated"  # short gap filled by linear interpolation, samples flagged
GAP_SPLIT = "gap_split"  # long gap: the recording continues in a new segment
RESAMPLED = "resampled"  # irregular timestamps moved onto a uniform grid
SATURATION = "saturation"  # samples pinned at the sensor's range, flagged
IGNORED_COLUMN = "ignored_column"  # a column that is not an axis, time or index
IGNORED_SENSOR = "ignored_sensor"  # a sensor (foot) left out of the recording
BLANK_LINE = "blank_line"  # an empty line in the middle of a CSV file
TIME_UNIT = "time_unit"  # the time column's unit differs from what its name says
UNIT = "unit"  # a unit conversion or a stated unit that looks implausible
KEYS_OVERRIDDEN = "keys_overridden"  # ids or foot stored in the file replaced by the caller's
INVALID_SAMPLES = "invalid_samples"  # samples a device flagged invalid, left out as a gap
GYRO_DELAY = "gyro_delay"  # a device's known gyroscope lag undone: the gyro channels read later
GYRO_CLIPPED = "gyro_clipped"  # gyro samples clipped at the device's known range, rebuilt (ingest.clipping)
FOOT_ASSUMED = "foot_assumed"  # a one-sensor device file that says no foot: a default foot was used
SUMMARY = "summary"  # more warnings of one kind than ReadSettings.max_warnings_per_kind


@dataclass(frozen=True)
class IngestWarning:
    """Something ingest changed or noticed in a recording it accepted.

    Same addressing as IngestError: `row` is the 1-based line of the file (for Parquet the 1-based
    row of the table), `column` the column as the file names it; `kind` is one of the constants above.
    """

    source: str
    row: int | None
    column: str | None
    problem: str
    kind: str

    def __str__(self) -> str:
        where = [self.source]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.problem}"


class WarningLog:
    """Collects the warnings of one read; past `max_per_kind` of a kind it only counts them."""

    def __init__(self, source: str, max_per_kind: int = 50):
        self.source = str(source)
        self.max_per_kind = max_per_kind
        self._items: list[IngestWarning] = []
        self._counts: dict[str, int] = {}

    def add(self, kind: str, problem: str, *, row: int | None = None, column: str | None = None) -> None:
        """Record one warning (or count it, once the kind has `max_per_kind`)."""
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        if count <= self.max_per_kind:
            self._items.append(IngestWarning(self.source, row, column, problem, kind))

    def extend(self, warnings: tuple[IngestWarning, ...] | list[IngestWarning]) -> None:
        for w in warnings:
            self.add(w.kind, w.problem, row=w.row, column=w.column)

    def result(self) -> tuple[IngestWarning, ...]:
        """All warnings, plus one summary per kind that overflowed."""
        summaries = [
            IngestWarning(
                self.source,
                None,
                None,
                f"{count - self.max_per_kind} more warnings of kind {kind!r} not listed ({count} in total)",
                SUMMARY,
            )
            for kind, count in self._counts.items()
            if count > self.max_per_kind
        ]
        return (*self._items, *summaries)
