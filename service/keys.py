"""API keys: roles, creation, listing, revocation and lookup (no web framework imported here).

Roles (DESIGN.md: team admin/coach see the team, an athlete only themself):

| role    | reads                         | uploads (POST /v1/recordings)          |
| ------- | ----------------------------- | -------------------------------------- |
| admin   | every athlete of its team     | for any registered athlete of its team |
| coach   | every athlete of its team     | no (403)                               |
| athlete | only its own athlete id       | only its own recordings (403 for other ids) |

Anything outside a key's view answers 404, exactly as for an id that does not exist, so a key
cannot probe which ids other teams use. For the same reason uploads and live streams take only
athletes already registered in the key's team (`strideflow athletes add`, an athlete key, or
loaded batch results): an unregistered id and another team's id are refused alike.

A key is `sf_<key id>_<secret>` with a 256-bit random secret; the database keeps only the sha256
of the whole key, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import bindparam, select

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.ids import check_id
from strideflow.service.db import ApiKey, Database

KEY_PREFIX = "sf_"


class Role(StrEnum):
    admin = "admin"
    coach = "coach"
    athlete = "athlete"


class AuthError(StrideflowError):
    """A key that cannot be created as asked (e.g. an athlete key without an athlete id)."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the key's id, role, team and (athlete keys) athlete id."""

    key_id: str
    role: Role
    team_id: str
    athlete_id: str | None = None


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def create_key(db: Database, team_id: str, role: Role | str, athlete_id: str | None = None) -> str:
    """Create a key and return it (the only time it is visible); the team/athlete are created if new.

    Raises AuthError for an unknown role or an athlete key without an athlete id (or a team key
    with one), DatabaseError if the athlete belongs to another team.
    """
    try:
        role = Role(role)
    except ValueError:
        raise AuthError(f"role={role!r} is not one of {', '.join(r.value for r in Role)}") from None
    check_id("team_id", team_id)
    if role is Role.athlete:
        if not athlete_id:
            raise AuthError("an athlete key needs athlete_id (CLI: --athlete)")
        check_id("athlete_id", athlete_id)
        db.ensure_athlete(team_id, athlete_id)
    elif athlete_id is not None:
        raise AuthError(f"a {role.value} key sees the whole team; athlete_id is only for athlete keys")
    else:
        db.ensure_team(team_id)
    key_id = uuid.uuid4().hex
    raw = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    with db.session() as s:
        s.add(ApiKey(id=key_id, hash=_digest(raw), role=role.value, team_id=team_id, athlete_id=athlete_id))
    return raw


@dataclass(frozen=True)
class KeyInfo:
    """What is stored of a key (never its secret): id, role, team, athlete, creation time (UTC)."""

    key_id: str
    role: str
    team_id: str
    athlete_id: str | None
    created: str


def list_keys(db: Database, team_id: str | None = None) -> list[KeyInfo]:
    """The stored keys, oldest first, of one team or of all teams."""
    from sqlalchemy import select

    query = select(ApiKey).order_by(ApiKey.created, ApiKey.id)
    if team_id is not None:
        query = query.where(ApiKey.team_id == team_id)
    with db.session() as s:
        return [
            KeyInfo(r.id, r.role, r.team_id, r.athlete_id, r.created.isoformat(timespec="seconds"))
            for r in s.scalars(query)
        ]


def revoke_key(db: Database, key_id: str) -> KeyInfo:
    """Delete a key by its id (the part after `sf_`, or the whole key); `authenticate` refuses it at
    once, a running server within its `key_cache_s`.

    Raises AuthError when no key has that id.
    """
    if key_id.startswith(KEY_PREFIX):
        key_id = key_id[len(KEY_PREFIX) :].partition("_")[0]
    with db.session() as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise AuthError(f"no key with id {key_id!r} (see `strideflow keys list`)")
        info = KeyInfo(
            row.id, row.role, row.team_id, row.athlete_id, row.created.isoformat(timespec="seconds")
        )
        s.delete(row)
    return info


_KEY_BY_ID = select(ApiKey.hash, ApiKey.role, ApiKey.team_id, ApiKey.athlete_id).where(
    ApiKey.id == bindparam("key_id")
)


def authenticate(db: Database, raw_key: str | None) -> Principal | None:
    """The principal of a raw key, or None for a missing, malformed or unknown key."""
    if not raw_key or not raw_key.startswith(KEY_PREFIX):
        return None
    key_id, sep, _secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 32:
        return None
    # Core, not the ORM, and a statement built once: every request runs this primary-key read.
    with db.reader.connect() as conn:
        row = conn.execute(_KEY_BY_ID, {"key_id": key_id}).first()
    if row is None or not hmac.compare_digest(row.hash, _digest(raw_key)):
        return None
    return Principal(key_id=key_id, role=Role(row.role), team_id=row.team_id, athlete_id=row.athlete_id)
