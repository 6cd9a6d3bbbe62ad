"""FastAPI dependencies shared by the routes: settings, database, job runner, paging."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated

import pydantic_core
from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import Response

from strideflow.service.db import Database
from strideflow.service.jobs import JobRunner
from strideflow.service.settings import ServiceSettings


# async: FastAPI runs a sync dependency in the thread pool, a hop per request for an attribute.
async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_runner(request: Request) -> JobRunner:
    return request.app.state.jobs


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]

CursorQuery = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page; omit for the first.")
]
LimitQuery = Annotated[int | None, Query(ge=1, description="Items per page (default and maximum: settings).")]


def page_size(settings: ServiceSettings, limit: int | None) -> int:
    """`limit`, or the default; 422 above `page_size_max`."""
    if limit is None:
        return settings.page_size_default
    if limit > settings.page_size_max:
        raise HTTPException(
            422, detail=f"query parameter 'limit': at most {settings.page_size_max}, got {limit}"
        )
    return limit


def encode_cursor(kind: str, key: list) -> str:
    """Opaque cursor: the sort key of the last item of a page, tagged with the list it belongs to."""
    raw = json.dumps([kind, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None, types: tuple[type, ...]) -> list | None:
    """The key of `cursor` (None for the first page); 422 naming `cursor` if it is not one of ours."""
    if cursor is None:
        return None
    bad = HTTPException(
        422, detail="query parameter 'cursor': not a cursor of this list (use next_cursor as given)"
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if tag != kind or not isinstance(key, list) or len(key) != len(types):
        raise bad
    for value, typ in zip(key, types, strict=True):
        if not (value is None or (isinstance(value, typ) and not isinstance(value, bool))):
            raise bad
    return key


def page_response(items: list[dict], next_cursor: str | None) -> Response:
    """A list page as JSON, written by pydantic-core as FastAPI would write the response model.

    For items a route builds in its response model's shape from typed stores (Parquet columns,
    index rows made by the same models): FastAPI would validate each again on the way out, which
    costs more than the rest of a cached request."""
    return Response(page_body(items, next_cursor), media_type="application/json")


def page_body(items: list[dict], next_cursor: str | None) -> bytes:
    """The JSON body `page_response` answers."""
    return pydantic_core.to_json({"items": items, "next_cursor": next_cursor}, inf_nan_mode="null")


def json_page_response(items_json: bytes, next_cursor: str | None) -> Response:
    """A list page whose items are already one JSON array (`items_json`): written into the body as
    it is, not parsed and written again."""
    return Response(json_page_body(items_json, next_cursor), media_type="application/json")


def json_page_body(items_json: bytes, next_cursor: str | None) -> bytes:
    """The JSON body `json_page_response` answers."""
    return b'{"items":' + items_json + b',"next_cursor":' + pydantic_core.to_json(next_cursor) + b"}"
