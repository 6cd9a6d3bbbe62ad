"""Analyse one athlete-session's recorded files: the step `strideflow analyze`, the service's
upload jobs (`service.jobs`) and the team batch (`analytics.batch`) share.

`analyze_session(files, settings)` reads each file (`ingest.read_recording`), analyses it with
the given `AnalysisSettings` (`analytics.pipeline.RecordingAnalyzer`, strides only: the sessions
table is built once from all of a session's strides, by `summarize_strides` or
`analytics.sessions_store.write_session`) and returns a `SessionOutcome`: per-file strides (and
curves), failures and warnings. What the callers differ in is explicit:

- `catch`: which exceptions of one file are recorded as that file's failure while the others go
  on (batch: any; jobs: strideflow's own errors; analyze: none, the first error stops the run);
- `covered_feet`: what to do with a file whose feet an earlier file already has: "fail" it
  (batch: two files claim the same foot), "skip" it or only its covered feet (jobs: files come
  newest first, the newest upload of a foot wins), or "keep" (analyze: the user asked for it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from strideflow.analytics.curves import session_curves
from strideflow.analytics.mountings import Mounting
from strideflow.analytics.pipeline import AnalysisSettings, RecordingAnalyzer
from strideflow.hardware.schema import FOOT

__all__ = ["FileFailure", "RecordingFile", "SessionOutcome", "analyze_session"]


@dataclass(frozen=True)
class RecordingFile:
    """One recorded file of a session and what is known about it.

    `path`; `format` ("auto" detects it); `sampling_rate_hz` for files without a time column;
    `foot` of a one-foot file; `label`, the name messages use for it (default: `path`);
    `columns` and `units`, the user's mapping (`ingest.mapping` text, e.g. "acc_x=Ax,..." and
    "acc=g,gyr=rad/s"), None where the file's own names and units are used.
    """

    path: str
    format: str = "auto"
    sampling_rate_hz: float | None = None
    foot: str | None = None
    label: str | None = None
    columns: str | None = None
    units: str | None = None

    @property
    def name(self) -> str:
        return self.label if self.label is not None else str(self.path)


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be used: at which `stage` ("read", "feet" or "analyze"), the error's
    type name and its message."""

    file: RecordingFile
    stage: str
    error_type: str
    error: str


@dataclass(frozen=True)
class AnalyzedFile:
    """A file that was analysed: its strides (STRIDES_SCHEMA), curves (if asked for), sample count
    and duration (s), the ingest and analysis warnings, the feet analysed from it, the mountings
    used per foot (`analytics.mountings`) and its remounts (one line each)."""

    file: RecordingFile
    strides: pl.DataFrame
    curves: pl.DataFrame | None
    samples: int
    duration_s: float
    warnings: tuple[str, ...]
    feet: tuple[str, ...] = ()
    mountings: dict[str, list[Mounting]] = field(default_factory=dict)
    remounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionOutcome:
    """What `analyze_session` gives: `analyzed` files in order, `failures`, `skipped` (files whose
    feet were all covered by earlier ones), and wall seconds per stage (`read`, `analyze`,
    `analyze.<pipeline stage>`, `curves`)."""

    analyzed: tuple[AnalyzedFile, ...]
    failures: tuple[FileFailure, ...]
    skipped: tuple[RecordingFile, ...] = ()
    stage_s: dict[str, float] = field(default_factory=dict)

    @property
    def strides_parts(self) -> list[pl.DataFrame]:
        return [a.strides for a in self.analyzed]

    @property
    def curves_parts(self) -> list[pl.DataFrame]:
        return [a.curves for a in self.analyzed if a.curves is not None]

    @property
    def warnings(self) -> list[str]:
        return [w for a in self.analyzed for w in a.warnings]

    @property
    def remounts(self) -> list[str]:
        return [r for a in self.analyzed for r in a.remounts]

    def mountings_used(self) -> list[tuple[Mounting, int]]:
        """(mounting, strides of this session measured in it) of every file and foot, for
        `analytics.mountings.record_mountings` (`analytics.mountings.mountings_used`)."""
        from strideflow.analytics.mountings import mountings_used

        return mountings_used((a.strides for a in self.analyzed), (a.mountings for a in self.analyzed))


def _add(stage_s: dict[str, float], name: str, seconds: float) -> None:
    stage_s[name] = stage_s.get(name, 0.0) + float(seconds)


def analyze_session(
    files: Sequence[RecordingFile],
    settings: AnalysisSettings,
    *,
    athlete_id: str | None = None,
    session_id: str | None = None,
    curves: bool = False,
    curve_points: int = 101,
    catch: type[BaseException] | tuple[type[BaseException], ...] = (),
    covered_feet: Literal["fail", "skip", "keep"] = "keep",
    progress: Callable[[RecordingFile], object] | None = None,
    mountings: Mapping[str, Mounting] | None = None,
) -> SessionOutcome:
    """Read and analyse each of a session's files with `settings`.

    Parameters
    ----------
    files
        The session's files, in order of precedence (see `covered_feet`).
    settings
        Analysis settings, used for every file.
    athlete_id, session_id
        Ids given to the readers (None: from each file's name, as `ingest.default_id`).
    curves, curve_points
        Also compute each file's session curves (`analytics.curves.session_curves`) at so many
        points per phase.
    catch
        Exceptions of one file that become its `FileFailure` (the others go on); any other
        exception propagates.
    covered_feet
        A file holding a foot an earlier analysed file holds: "fail" records a `FileFailure`
        ("DuplicateFoot"); "skip" analyses only its other feet (none left: it goes to `skipped`);
        "keep" analyses it anyway.
    progress
        Called with each file once it is analysed.
    mountings
        Per foot, the prior mounting of the foot's device (the caller's stored one,
        `analytics.mountings.prior_mountings`), kept unless a remount is detected.
    """
    from strideflow.ingest import read_recording

    stage_s: dict[str, float] = {}
    analyzed: list[AnalyzedFile] = []
    failures: list[FileFailure] = []
    skipped: list[RecordingFile] = []
    covered: set[str] = set()
    for f in files:
        t0 = time.perf_counter()
        try:
            rec = read_recording(
                f.path,
                format=f.format,
                sampling_rate_hz=f.sampling_rate_hz,
                foot=f.foot,
                athlete_id=athlete_id,
                session_id=session_id,
                columns=f.columns,
                units=f.units,
            )
        except catch as exc:
            failures.append(FileFailure(f, "read", type(exc).__name__, str(exc) or repr(exc)))
            continue
        finally:
            _add(stage_s, "read", time.perf_counter() - t0)
        samples = rec.samples
        feet = [foot for foot in rec.feet() if foot not in covered]
        clash = sorted(set(rec.feet()) - set(feet))
        if clash and covered_feet == "fail":
            failures.append(
                FileFailure(
                    f,
                    "feet",
                    "DuplicateFoot",
                    f"{f.name}: holds the {', '.join(clash)} foot, which another file "
                    "of this session holds too",
                )
            )
            continue
        if covered_feet == "fail":  # a foot is taken once a file claims it, analysed or not
            covered |= set(feet)
        if clash and covered_feet == "skip":
            if not feet:
                skipped.append(f)
                continue
            samples = samples.filter(pl.col(FOOT).is_in(feet))
        t0 = time.perf_counter()
        try:
            analyzer = RecordingAnalyzer(settings).analyze(
                samples, rec.sampling_rate_hz, summarize=False, mountings=mountings
            )
        except catch as exc:
            failures.append(FileFailure(f, "analyze", type(exc).__name__, str(exc) or repr(exc)))
            continue
        finally:
            _add(stage_s, "analyze", time.perf_counter() - t0)
        for step, seconds in analyzer.timings_s_.items():
            _add(stage_s, f"analyze.{step}", seconds)
        result = analyzer.result_
        covered |= set(feet)
        curve = None
        if curves:
            t0 = time.perf_counter()
            curve = session_curves(result, points=curve_points)
            _add(stage_s, "curves", time.perf_counter() - t0)
        analyzed.append(
            AnalyzedFile(
                file=f,
                strides=result.strides,
                curves=curve,
                samples=samples.height,
                duration_s=rec.duration_s,
                warnings=tuple(str(w) for w in rec.warnings) + result.warnings,
                feet=tuple(feet),
                mountings=result.mountings,
                remounts=result.remounts,
            )
        )
        if progress is not None:
            progress(f)
        del rec, analyzer, result
    return SessionOutcome(tuple(analyzed), tuple(failures), tuple(skipped), stage_s)
