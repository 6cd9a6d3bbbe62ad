"""`strideflow keys create --data DIR --team T --role R [--athlete A]`: a new API key, shown once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from strideflow.service.cli import app

keys_app = typer.Typer(help="Manage API keys (only their hashes are stored).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


class RoleChoice(StrEnum):
    admin = "admin"
    coach = "coach"
    athlete = "athlete"


@keys_app.command("create")
def create(
    data: Path = typer.Option(
        ..., "--data", help="The service's data folder (as for `strideflow serve --data`)."
    ),
    team: str = typer.Option(..., "--team", help="Team id; created if new."),
    role: RoleChoice = typer.Option(
        ..., "--role", help="admin (team, uploads), coach (team, read), athlete (self)."
    ),
    athlete: str | None = typer.Option(None, "--athlete", help="Athlete id of an athlete key."),
) -> None:
    """Create a key and print it alone on the last line (it is not stored and cannot be shown again)."""
    from strideflow.service.auth import create_key
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=data)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        db.create_all()
        key = create_key(db, team, role.value, athlete)
    finally:
        db.dispose()
    who = f"athlete {athlete} of team {team}" if athlete else f"team {team}"
    Console(stderr=True).print(f"{role.value} key for {who} (shown once, store it now):", highlight=False)
    print(key)
