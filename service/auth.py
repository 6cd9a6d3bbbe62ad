"""FastAPI dependencies for bearer API keys: who a request acts as and what it may see.

Keys, roles and their lookup live in `strideflow.service.keys` (so that `strideflow keys` needs no
web framework); see its docstring for the role table.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from strideflow.service.db import Database
from strideflow.service.keys import (  # noqa: F401  (re-exported: the routes and tests import them from here)
    KEY_PREFIX,
    AuthError,
    KeyInfo,
    Principal,
    Role,
    authenticate,
    create_key,
    list_keys,
    revoke_key,
)

_bearer = HTTPBearer(auto_error=False, description="API key from `strideflow keys create`")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """FastAPI dependency: the request's principal, or 401 with WWW-Authenticate.

    Runs on the event loop: one primary-key read (well under a millisecond; none while the key is
    remembered, `KeyCache`) costs less there than a hop to the thread pool and back, and keeps
    request threads from contending for the GIL."""
    if credentials is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    cache = getattr(request.app.state, "key_cache", None)
    principal = None if cache is None else cache.get(credentials.credentials)
    if principal is None:
        principal = authenticate(request.app.state.db, credentials.credentials)
        if principal is None:
            raise _unauthorized("invalid API key")
        if cache is not None:
            cache.put(credentials.credentials, principal)
    return principal


class KeyCache:
    """Principals of keys that were valid within the last `ttl_s` seconds (this process only).

    A revoked key is refused by every server process at most `ttl_s` after `strideflow keys
    revoke` (`ServiceSettings.key_cache_s`, 0: asked on every request); unknown keys are always
    looked up. Holds at most `max_keys` keys (emptied when full: a team has a handful)."""

    def __init__(self, ttl_s: float, max_keys: int = 4096):
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, raw_key: str) -> Principal | None:
        entry = self._entries.get(raw_key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, raw_key: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_keys:
            self._entries.clear()
        self._entries[raw_key] = (time.monotonic() + self.ttl_s, principal)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def not_found(what: str, value: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"{what} {value!r} not found")


def can_see(principal: Principal, team_id: str | None, athlete_id: str) -> bool:
    """Whether the principal may read `athlete_id`, owned by `team_id` (None: unknown athlete)."""
    if team_id is None or team_id != principal.team_id:
        return False
    return principal.role is not Role.athlete or principal.athlete_id == athlete_id


def visible_athlete(principal: Principal, db: Database, athlete_id: str) -> str:
    """`athlete_id` if the principal may read it, else 404 (the same as for an unknown id)."""
    if not can_see(principal, db.athlete_team(athlete_id), athlete_id):
        raise not_found("athlete", athlete_id)
    return athlete_id


def require_writer(principal: Principal, athlete_id: str | None = None) -> None:
    """403 unless the principal may upload (for `athlete_id`, when given): see the module's table."""
    if principal.role is Role.coach:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="coach keys are read-only: uploads need an admin key"
        )
    if principal.role is Role.athlete and athlete_id is not None and athlete_id != principal.athlete_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="athlete keys may upload only their own recordings (athlete_id)"
        )
