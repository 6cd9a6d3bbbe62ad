"""`strideflow keys create|list|revoke --data DIR`: API keys; a new key is shown once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from strideflow.hardware.errors import StrideflowError
from strideflow.service.cli import app

keys_app = typer.Typer(help="Manage API keys (only their hashes are stored).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

_DATA_HELP = "The service's data folder (as for `strideflow serve --data`)."


class RoleChoice(StrEnum):
    admin = "admin"
    coach = "coach"
    athlete = "athlete"


def _open_database(data: Path, *, init: bool):
    """The service database of `data`; refuses a folder without one unless `init` (a typo'd --data
    would otherwise create a new database whose keys the running server never sees)."""
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=data)
    url = settings.resolved_database_url
    db_file = settings.data_dir / "strideflow.db"
    if url.startswith("sqlite") and not settings.database_url and not db_file.exists() and not init:
        raise StrideflowError(
            f"{data}: no strideflow database here (expected {db_file}); check --data, "
            "or pass --init to start a new one"
        )
    if init:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    db.create_all()
    return db


@keys_app.command("create")
def create(
    data: Path = typer.Option(..., "--data", help=_DATA_HELP),
    team: str = typer.Option(..., "--team", help="Team id; created if new."),
    role: RoleChoice = typer.Option(
        ..., "--role", help="admin (team, uploads), coach (team, read), athlete (self)."
    ),
    athlete: str | None = typer.Option(None, "--athlete", help="Athlete id of an athlete key."),
    init: bool = typer.Option(False, "--init", help="Create the data folder's database if it has none."),
) -> None:
    """Create a key and print it alone on the last line (it is not stored and cannot be shown again)."""
    from strideflow.service.keys import create_key

    db = _open_database(data, init=init)
    try:
        key = create_key(db, team, role.value, athlete)
    finally:
        db.dispose()
    who = f"athlete {athlete} of team {team}" if athlete else f"team {team}"
    Console(stderr=True).print(f"{role.value} key for {who} (shown once, store it now):", highlight=False)
    print(key)


@keys_app.command("list")
def list_(
    data: Path = typer.Option(..., "--data", help=_DATA_HELP),
    team: str | None = typer.Option(None, "--team", help="Only this team's keys."),
) -> None:
    """List key ids, roles, teams, athletes and creation times (never the secrets)."""
    from rich.table import Table

    from strideflow.service.keys import list_keys

    db = _open_database(data, init=False)
    try:
        keys = list_keys(db, team)
    finally:
        db.dispose()
    table = Table(box=None, pad_edge=False)
    table.add_column("key id", no_wrap=True, min_width=32)  # revoke needs the whole id: never cut it
    for name in ("role", "team", "athlete"):
        table.add_column(name, overflow="fold")
    table.add_column("created (UTC)", no_wrap=True)
    for k in keys:
        table.add_row(k.key_id, k.role, k.team_id, k.athlete_id or "", k.created[:16].replace("T", " "))
    Console().print(table)
    Console(stderr=True).print(f"{len(keys)} key(s)", highlight=False)


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key id from `keys list` (or the whole key)."),
    data: Path = typer.Option(..., "--data", help=_DATA_HELP),
) -> None:
    """Revoke a key: it is deleted, and a running server refuses it within its key_cache_s (1 s)."""
    from strideflow.service.keys import revoke_key

    db = _open_database(data, init=False)
    try:
        info = revoke_key(db, key_id)
    finally:
        db.dispose()
    who = f"athlete {info.athlete_id} of team {info.team_id}" if info.athlete_id else f"team {info.team_id}"
    Console(stderr=True).print(f"revoked {info.role} key {info.key_id} ({who})", highlight=False)
