"""schemathesis against the live OpenAPI schema of `strideflow serve` (issue 6).

A small simulated team is analysed and stored by `service.cli.demo.prepare_demo`, then served
by `strideflow serve` in a subprocess on a free loopback port. For every operation of the
served schema, schemathesis generates requests with the demo admin key; each one is sent as
generated (mostly unknown ids: 404/422 paths) and, for GET operations, once more with the path
ids (and an `athlete_id` query) replaced by the stored athlete and session and without a
made-up cursor, so that the generated filters and limits run against real data. Checks: no 5xx
(`not_a_server_error`) and every response matches its documented schema
(`response_schema_conformance`). Examples are bounded so the module stays near a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from strideflow.benchmarks.api import Server
from strideflow.hardware.schema import ATHLETE_ID
from strideflow.service.cli.demo import prepare_demo
from strideflow.service.settings import ServiceSettings

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, response_schema_conformance]
PAGE_SIZE_MAX = ServiceSettings().page_size_max


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(base URL, demo data) of a running server with real analysed data."""
    from rich.console import Console

    data = tmp_path_factory.mktemp("schemathesis") / "data"
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives as long as the module
    info = prepare_demo(data, athletes=2, minutes=0.5, seed=5, workers=1, console=quiet, sessions=2)
    with Server(data) as server:
        yield server.base_url, info


@pytest.fixture(scope="module")
def api_schema(live):
    base_url, _ = live
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def _documented_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the app's schema (built without serving)."""
    import tempfile

    from strideflow.service.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        doc = create_app(ServiceSettings(data_dir=tmp)).openapi()
    return sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops)


def _with_real_ids(case, info) -> bool:
    """Point a GET case at the stored athlete/session (and drop what cannot be valid there);
    False when it names no id to replace."""
    changed = False
    params = case.path_parameters or {}
    for name, value in ((ATHLETE_ID, info.athlete_id), ("session_id", info.session_id)):
        if name in params:
            params[name] = value
            changed = True
    if "session_id" in params:
        # The demo's session ids are shared by its athletes: a session route needs the athlete
        # (422 without it), so the real-data call names it even when the case left it out.
        case.query = {**(case.query or {}), ATHLETE_ID: info.athlete_id}
    if case.query is not None:
        if ATHLETE_ID in case.query:
            case.query[ATHLETE_ID] = info.athlete_id
        # a made-up cursor or a limit above the server's page_size_max is (rightly) 422
        case.query.pop("cursor", None)
        if isinstance(case.query.get("limit"), int) and case.query["limit"] > PAGE_SIZE_MAX:
            case.query["limit"] = PAGE_SIZE_MAX
    return changed


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize(("method", "path"), _documented_operations())
def test_api_conforms_to_its_schema(api_schema, live, method, path, mode):
    base_url, info = live
    headers = {"Authorization": f"Bearer {info.admin_key}"}
    operation = api_schema[path][method]
    served = {(m.upper(), p) for p, ops in api_schema.raw_schema["paths"].items() for m in ops}
    assert (method, path) in served

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        statuses.append(case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS).status_code)
        if method == "GET" and _with_real_ids(case, info):
            statuses.append(
                case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS).status_code
            )

    statuses: list[int] = []
    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            pytest.skip(f"{method} {path} has no parameter that can be made invalid")
        raise
    # the demo has no upload jobs: job ids stay unknown (404); every other read must reach data
    if mode is GenerationMode.POSITIVE and method == "GET" and "{job_id}" not in path:
        assert 200 in statuses, f"no generated {method} {path} reached stored data: {sorted(set(statuses))}"
