"""`strideflow keys create|list|revoke`: a typo'd data folder is refused, keys can be listed and revoked."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from strideflow.hardware.errors import StrideflowError
from strideflow.service.auth import authenticate
from strideflow.service.cli import _register
from strideflow.service.cli import app as cli
from strideflow.service.db import Database
from strideflow.service.settings import ServiceSettings


@pytest.fixture(scope="module", autouse=True)
def _commands():
    _register()


def _create(data, *extra):
    r = CliRunner().invoke(cli, ["keys", "create", "--data", str(data), "--team", "t1", *extra])
    return r, (r.output.strip().splitlines()[-1] if r.exit_code == 0 else None)


def test_create_refuses_a_folder_without_a_database_unless_init(tmp_path):
    typo = tmp_path / "strideflow-dat"
    r, _ = _create(typo, "--role", "coach")
    assert isinstance(r.exception, StrideflowError)
    assert "no strideflow database" in str(r.exception) and "--init" in str(r.exception)
    assert not typo.exists(), "nothing may be created for a refused folder"
    r, key = _create(typo, "--role", "coach", "--init")
    assert r.exit_code == 0, r.output
    assert (typo / "strideflow.db").exists()
    r, key2 = _create(typo, "--role", "admin")  # the database exists now: no --init needed
    assert r.exit_code == 0 and key2 != key


def test_list_shows_ids_but_never_secrets_and_revoke_stops_a_key(tmp_path):
    _, coach = _create(tmp_path, "--role", "coach", "--init")
    _, athlete = _create(tmp_path, "--role", "athlete", "--athlete", "A7")
    coach_id = coach.split("_")[1]
    r = CliRunner().invoke(cli, ["keys", "list", "--data", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert coach_id in r.output and "A7" in r.output and "athlete" in r.output
    # the secret is everything after "sf_<key id>_" (it may itself hold "_": a fragment of it is no test)
    assert coach.split("_", 2)[2] not in r.output and athlete.split("_", 2)[2] not in r.output

    db = Database(ServiceSettings(data_dir=tmp_path).resolved_database_url)
    try:
        assert authenticate(db, coach) is not None
        r = CliRunner().invoke(cli, ["keys", "revoke", coach_id, "--data", str(tmp_path)])
        assert r.exit_code == 0, r.output
        assert authenticate(db, coach) is None, "a revoked key must stop working"
        assert authenticate(db, athlete) is not None, "other keys are untouched"
        r = CliRunner().invoke(
            cli, ["keys", "revoke", athlete, "--data", str(tmp_path)]
        )  # whole key works too
        assert r.exit_code == 0 and authenticate(db, athlete) is None
    finally:
        db.dispose()
    r = CliRunner().invoke(cli, ["keys", "revoke", coach_id, "--data", str(tmp_path)])
    assert isinstance(r.exception, StrideflowError) and "no key with id" in str(r.exception)


def test_keys_create_does_not_import_the_analysis_stack(tmp_path):
    """`keys` is an admin's quick command: it took seconds when every command module (numba, scipy,
    Dask) was imported, and still over a second while `service.settings` reached numpy and polars
    through the `ingest` package and creating the tables loaded `service.summary_index`."""
    probe = (
        "import sys\n"
        "from strideflow.service.cli import main\n"
        f"sys.argv = ['strideflow', 'keys', 'create', '--data', {str(tmp_path)!r}, '--init',"
        " '--team', 't1', '--role', 'coach']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "stack = ('numpy', 'polars', 'pyarrow', 'scipy', 'numba', 'dask')\n"
        "heavy = sorted(m for m in stack if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out
    assert (tmp_path / "strideflow.db").exists()
