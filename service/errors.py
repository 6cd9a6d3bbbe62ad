"""Exception handlers: every error response is JSON `{"detail": "<message naming the problem>"}`.

- request validation (422): one message per problem, each naming where (query parameter, form
  field, path parameter) and which field, joined by "; ";
- HTTPException (401/403/404/409/413/...): its detail and headers;
- DamagedResultsError (a stored result partition that cannot be read, e.g. a truncated file): 503
  naming the athlete, session and table, so the client knows which data is unavailable;
- StrideflowError that a route did not turn into an HTTP error itself (an id that cannot name a
  partition, a conflicting row): 422 with its message, which names the field;
- anything else: 500 with a generic message (and the traceback in the server log); the test suite
  and schemathesis check that no input reaches it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from strideflow.hardware.errors import StrideflowError

log = logging.getLogger("strideflow.service")


class DamagedResultsError(StrideflowError):
    """A stored result partition that cannot be read (truncated, not Parquet); answered 503."""

    def __init__(self, athlete_id: str, session_id: str, table: str, problem: str):
        self.athlete_id, self.session_id, self.table = athlete_id, session_id, table
        super().__init__(
            f"stored {table} of athlete {athlete_id!r}, session {session_id!r} cannot be read ({problem}); "
            "the rest of the athlete's data is served, re-run the session's analysis to repair it"
        )


def read_problem(exc: BaseException) -> str:
    """First line of a reader's error, shortened: what a damaged file did to the reader."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def read_results(root, table: str, athlete_id: str, session_id: str):
    """`analytics.partitions.read_partition`, with a damaged file raised as DamagedResultsError."""
    from strideflow.analytics import partitions

    path = partitions.partition_dir(root, table, athlete_id, session_id)  # PartitionError: a bad id
    try:
        return partitions.read_partition(root, table, athlete_id, session_id)
    except Exception as exc:  # noqa: BLE001 - polars/pyarrow raise several types for a damaged file
        log.debug("cannot read %s", path, exc_info=exc)
        raise DamagedResultsError(athlete_id, session_id, table, read_problem(exc)) from None


_WHERE = {"query": "query parameter", "path": "path parameter", "body": "form field", "header": "header"}


def describe_validation(errors: list[dict]) -> str:
    """One line naming each invalid field, e.g. "query parameter 'limit': Input should be ..."."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = _WHERE.get(loc[0], loc[0]) if loc else "request"
        field = ".".join(loc[1:])
        msg = err.get("msg", "invalid")
        parts.append(f"{where} {field!r}: {msg}" if field else f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": describe_validation(list(exc.errors()))})


async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": str(exc.detail)},
        headers=getattr(exc, "headers", None),
    )


async def _damaged(_request: Request, exc: DamagedResultsError) -> JSONResponse:
    log.error("%s", exc)
    return JSONResponse(status_code=503, content={"detail": str(exc)})


async def _strideflow(_request: Request, exc: StrideflowError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": str(exc)})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error; the server log has the details"})


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON handlers above on `app`."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DamagedResultsError, _damaged)
    app.add_exception_handler(StrideflowError, _strideflow)
    app.add_exception_handler(Exception, _unexpected)
