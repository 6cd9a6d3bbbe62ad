"""`strideflow athletes add --data DIR --team T ATHLETE...`: register athletes in a team.

Uploads and live streams are accepted only for athletes registered in the key's team, so that an
unknown id and another team's id look the same from the API (a key cannot probe which ids other
teams use). Athletes are registered here, by `strideflow keys create --role athlete`, or by
loading a batch result (`strideflow demo`, `service.catalog.sync_results`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from strideflow.service.cli import app

athletes_app = typer.Typer(help="Register the athletes of a team.", no_args_is_help=True)
app.add_typer(athletes_app, name="athletes")


def _open(data: Path):
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=data)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.create_all()
    return db


@athletes_app.command("add")
def add(
    athlete_ids: list[str] = typer.Argument(..., help="Athlete ids to register."),
    data: Path = typer.Option(
        ..., "--data", help="The service's data folder (as for `strideflow serve --data`)."
    ),
    team: str = typer.Option(..., "--team", help="Team id; created if new."),
) -> None:
    """Register athletes in a team (an id another team owns is refused, naming it)."""
    from strideflow.analytics.partitions import check_id

    for athlete_id in athlete_ids:
        check_id("athlete_id", athlete_id)
    check_id("team_id", team)
    db = _open(data)
    try:
        for athlete_id in athlete_ids:
            db.ensure_athlete(team, athlete_id)
    finally:
        db.dispose()
    Console().print(f"team {team}: registered {', '.join(athlete_ids)}", highlight=False)
