"""`strideflow stream`: stream a simulated device or replay a recording to `WS /v1/stream`."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from strideflow.hardware.devices import (
    DEFAULT_SAMPLES_PER_PACKET,
    SPEEDS,
    PacketDevice,
    RecordingReplayer,
    SimulatedDevice,
    StreamReport,
    run_client,
    stream_device,
)
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.heap import settle_collector
from strideflow.hardware.profiles import PROFILES
from strideflow.hardware.schema import FEET
from strideflow.service.cli import app


class StreamCommandError(StrideflowError):
    """Bad arguments to `strideflow stream`."""


def build_devices(
    device: str,
    *,
    feet: tuple[str, ...],
    rate: float | None,
    profile: str,
    minutes: float,
    seed: int,
    activity: str,
    file_format: str,
    samples_per_packet: int,
) -> list[PacketDevice]:
    """The devices `--device` names: `sim` (one per foot), or a file's feet replayed."""
    prof = PROFILES[profile]
    if device == "sim":
        from strideflow.hardware.simulator import SimulationSettings

        settings = SimulationSettings(
            activity=activity,
            duration_s=60.0 * minutes,
            sampling_rate_hz=rate or prof.sampling_rate_hz,
            seed=seed,
            profile=prof,
        )
        return SimulatedDevice.simulate(settings, feet=feet, samples_per_packet=samples_per_packet)
    from strideflow.ingest import read_recording

    path = Path(device)
    if not path.exists():
        raise StreamCommandError(f"--device {device}: no such file (use 'sim' for a simulated device)")
    recording = read_recording(path, format=file_format, sampling_rate_hz=rate)
    present = recording.feet()
    chosen = [f for f in feet if f in present]
    if not chosen:
        raise StreamCommandError(
            f"{path}: no {' or '.join(feet)} foot samples (the file has {', '.join(present)})"
        )
    return [
        RecordingReplayer.from_samples(
            recording.samples,
            recording.sampling_rate_hz,
            foot,
            profile=prof,
            samples_per_packet=samples_per_packet,
        )
        for foot in chosen
    ]


async def stream_all(
    devices, url, key, athlete, session, speed, progress=None, session_date: str | None = None
) -> list[StreamReport]:
    """Stream every device concurrently (one connection each); reports in device order."""
    return list(
        await asyncio.gather(
            *[
                stream_device(
                    d,
                    url,
                    key,
                    athlete,
                    session,
                    speed=speed,
                    on_ack=progress(d) if progress else None,
                    session_date=session_date,
                )
                for d in devices
            ]
        )
    )


@app.command()
def stream(
    device: str = typer.Option(
        ..., "--device", help="'sim' for a simulated pod per foot, or a recording file."
    ),
    to: str = typer.Option(
        ..., "--to", help="Server URL, e.g. ws://127.0.0.1:8000 (path /v1/stream implied)."
    ),
    key: str = typer.Option(..., "--key", help="API key (admin of the team, or the athlete's own key)."),
    athlete: str = typer.Option(..., "--athlete", help="Athlete id."),
    session: str = typer.Option(..., "--session", help="Session id."),
    rate: float | None = typer.Option(
        None, "--rate", help="Sampling rate, Hz: of a file without a time column; of the simulated device."
    ),
    speed: str = typer.Option("realtime", "--speed", help="realtime (as the device samples) or max."),
    session_date: str | None = typer.Option(
        None,
        "--session-date",
        help="Date of the session, yyyy-mm-dd (default: the day the stream starts, UTC).",
    ),
    foot: str | None = typer.Option(None, "--foot", help="left or right only (default: every foot present)."),
    file_format: str = typer.Option(
        "auto", "--format", help="Recording format: auto, csv, gaitmap, parquet."
    ),
    profile: str = typer.Option(
        "generic-16g-2000dps", "--profile", help=f"Device profile (scale, range): {', '.join(PROFILES)}."
    ),
    minutes: float = typer.Option(1.0, "--minutes", help="Simulated device: minutes of data."),
    seed: int = typer.Option(0, "--seed", help="Simulated device: random seed."),
    activity: str = typer.Option("walk", "--activity", help="Simulated device: walk, run or mixed."),
    samples_per_packet: int = typer.Option(
        DEFAULT_SAMPLES_PER_PACKET, "--samples-per-packet", min=1, max=1024, help="Samples in each packet."
    ),
) -> None:
    """Stream a simulated shoe pod or replay a recording to a strideflow server, resuming after drops.

    Each foot is one device and one connection. Every packet is acknowledged by the server only
    once it is durable; after a lost connection the stream continues after the last acknowledged
    packet. Prints a per-device summary; exits 1 on a refused key or an unreachable server.
    """
    if speed not in SPEEDS:
        raise StreamCommandError(f"--speed must be one of {', '.join(SPEEDS)}, got {speed!r}")
    if foot is not None and foot not in FEET:
        raise StreamCommandError(f"--foot must be one of {', '.join(FEET)}, got {foot!r}")
    if profile not in PROFILES:
        raise StreamCommandError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if activity not in ("walk", "run", "mixed"):
        raise StreamCommandError(f"--activity must be walk, run or mixed, got {activity!r}")
    if session_date is not None:
        try:
            dt.date.fromisoformat(session_date)
        except ValueError:
            raise StreamCommandError(
                f"--session-date must be a date yyyy-mm-dd, got {session_date!r}"
            ) from None
    if minutes <= 0 or (rate is not None and rate <= 0):
        raise StreamCommandError("--minutes and --rate must be positive")
    console = Console(stderr=True)
    with console.status("preparing the device data ..."):
        devices = build_devices(
            device,
            feet=(foot,) if foot else FEET,
            rate=rate,
            profile=profile,
            minutes=minutes,
            seed=seed,
            activity=activity,
            file_format=file_format,
            samples_per_packet=samples_per_packet,
        )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples acked"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks = {d.device_id: bar.add_task(f"{d.device_id} ({d.foot})", total=d.n_samples) for d in devices}

        def progress(d):
            return lambda report: bar.update(tasks[d.device_id], completed=report.samples_acked)

        settle_collector()
        reports = run_client(stream_all(devices, to, key, athlete, session, speed, progress, session_date))
    for r in reports:
        end = r.end_reply or {}
        console.print(
            f"{r.device_id} ({r.foot}): {r.samples_acked} of {r.samples} samples acknowledged "
            f"in {r.packets} packets, {r.connections} connection(s), {r.duplicates} duplicate(s), "
            f"{len(r.gaps)} gap(s); server: {end.get('strides', '?')} strides, {r.seconds:.1f} s",
            highlight=False,
        )
        for problem in r.analysis_errors:
            console.print(f"{r.device_id} ({r.foot}): server: {problem}", highlight=False)
    if any(r.samples_acked < r.samples for r in reports):
        raise StreamCommandError("some samples were not acknowledged by the server")
