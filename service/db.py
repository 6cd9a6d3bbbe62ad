"""The service's embedded SQL database: teams, athletes, sessions, recordings, jobs and API keys.

SQLAlchemy 2 declarative models on SQLite (WAL journal, foreign keys on, a busy timeout so the
request threads and the job dispatcher can write concurrently) or any other SQLAlchemy URL such
as PostgreSQL. The result tables themselves live as Parquet in `results_dir`, not here.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import TypeDecorator

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.ids import check_id

ID_LEN = 128

# Job states (GET /v1/jobs/{id} `status`).
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
JOB_STATES = (QUEUED, RUNNING, DONE, FAILED)


class DatabaseError(StrideflowError):
    """A database row that conflicts with another, e.g. an athlete id already owned by another team."""


def utcnow() -> dt.datetime:
    """Current time, UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use utcnow()")
        return None if value is None else value.astimezone(dt.UTC)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Athlete(Base):
    """An athlete id is global (it names result partitions), owned by exactly one team."""

    __tablename__ = "athletes"
    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The athletes list walks a team's athletes in id order from this index alone (no sort).
    __table_args__ = (Index("ix_athletes_team_id_id", "team_id", "id"),)


class SessionRow(Base):
    """One recording session of one athlete; `session_id` is unique per athlete only."""

    __tablename__ = "sessions"
    athlete_id: Mapped[str] = mapped_column(ForeignKey("athletes.id"), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True, index=True)
    session_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Covers the athletes list's session count and last date per athlete (no table rows read).
    __table_args__ = (Index("ix_sessions_athlete_id_date", "athlete_id", "session_date", "session_id"),)


class Job(Base):
    """Analysis of one athlete-session: all its stored recordings, results replacing its partitions."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN))
    session_id: Mapped[str] = mapped_column(String(ID_LEN))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    recording_ids: Mapped[list] = mapped_column(JSON, default=list)  # analysed by the last run
    stride_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # the server process (service.instances id) running it; a dead one's jobs are queued again
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (
        ForeignKeyConstraint(["athlete_id", "session_id"], ["sessions.athlete_id", "sessions.session_id"]),
    )


class RecordingRow(Base):
    """One uploaded file, stored under uploads_dir; `dedup_key` makes re-uploads idempotent."""

    __tablename__ = "recordings"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)  # relative to uploads_dir
    filename: Mapped[str] = mapped_column(Text)  # as uploaded (sanitised)
    size_bytes: Mapped[int] = mapped_column(Integer)
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN))
    session_id: Mapped[str] = mapped_column(String(ID_LEN))
    foot: Mapped[str | None] = mapped_column(String(8), nullable=True)  # as requested
    feet: Mapped[str] = mapped_column(String(16))  # feet found in the file, comma separated
    format: Mapped[str] = mapped_column(String(16))
    sampling_rate_hz: Mapped[float | None] = mapped_column(Float, nullable=True)  # as requested
    # column mapping and units as given (ingest.mapping text), JSON {"columns": ..., "units": ...}
    read_options: Mapped[str | None] = mapped_column(Text, nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    __table_args__ = (
        ForeignKeyConstraint(["athlete_id", "session_id"], ["sessions.athlete_id", "sessions.session_id"]),
    )


class ApiKey(Base):
    """A bearer key: only the sha256 of its secret is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    athlete_id: Mapped[str | None] = mapped_column(ForeignKey("athletes.id"), nullable=True)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("hash"),)


class LiveMessage(Base):
    """A message published to live subscribers, kept `replay_s` for those that resume (`since`), when
    the live broker is PostgreSQL (`service.live.publish.PostgresBroker`)."""

    __tablename__ = "live_messages"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    published_at: Mapped[float] = mapped_column(Float, index=True)  # server time, s since the epoch
    team_id: Mapped[str] = mapped_column(String(ID_LEN))
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN))
    source: Mapped[str] = mapped_column(String(128))  # the publishing server process
    message: Mapped[str] = mapped_column(Text)  # JSON


class LiveStreamRow(Base):
    """A live device stream held by one server process, as `GET /v1/streams` lists it: each process
    writes its own every few seconds (`service.stream_list`), so that any process lists them all."""

    __tablename__ = "live_streams"
    instance_id: Mapped[str] = mapped_column(String(128), primary_key=True)  # service.instances id
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    foot: Mapped[str] = mapped_column(String(8), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    sampling_rate_hz: Mapped[float] = mapped_column(Float)
    connected: Mapped[bool] = mapped_column(Boolean)
    ended: Mapped[bool] = mapped_column(Boolean)
    last_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    samples: Mapped[int] = mapped_column(BigInteger)
    strides: Mapped[int] = mapped_column(Integer)
    last_packet_at: Mapped[float] = mapped_column(Float)  # server time, s since the epoch
    written_at: Mapped[float] = mapped_column(Float)  # when its process wrote the row


_TEAM_OF_ATHLETE = select(Athlete.team_id).where(Athlete.id == bindparam("athlete_id"))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # FULL (not WAL's usual NORMAL): an acknowledged upload must survive a power cut too.
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


class ReadCache:
    """Answers built from the database, each kept with the `Database.change_stamp` it was built
    under and given back only while the stamp is the same (nothing has been committed since, by
    any process). Without a stamp (None: a database that cannot tell) nothing is kept. Holds at
    most `max_entries` answers of `max_bytes` in all (emptied when full)."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 << 20):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[Hashable, tuple[int, object]] = {}
        self._bytes = 0

    def get(self, key: Hashable, stamp: int | None) -> object | None:
        """The value kept for `key` under `stamp`, else None."""
        entry = self._entries.get(key)
        if entry is None or stamp is None or entry[0] != stamp:
            return None
        return entry[1]

    def put(self, key: Hashable, stamp: int | None, value: object, size: int = 0) -> None:
        """Keep `value` (not None, about `size` bytes), built from what the database held at
        `stamp`, taken BEFORE reading it: a commit racing with the read then only makes the entry
        look older than it is."""
        if stamp is None or size > self.max_bytes:
            return
        if len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes:
            self._entries.clear()
            self._bytes = 0
        self._entries[key] = (stamp, value)
        self._bytes += size


class Database:
    """Engine and session factory for one database URL."""

    def __init__(self, url: str):
        self.url = url
        kwargs: dict = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        self.engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._athlete_teams: dict[str, str] = {}  # see athlete_team
        # One-statement reads of the API routes: on PostgreSQL in autocommit, one round trip per
        # query instead of three (BEGIN, the query, ROLLBACK when the connection is returned);
        # a single statement sees one snapshot either way. SQLite's in-process transactions cost
        # nothing to speak of, so it reads through the engine itself.
        self.reader = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )
        self.read_cache = ReadCache()  # see change_stamp
        self._stamp_conn: sqlite3.Connection | None = None
        self._stamp_lock = threading.Lock()
        database = self.engine.url.database
        self._stamp_path = (
            database
            if self.engine.dialect.name == "sqlite" and database and database != ":memory:"
            and not database.startswith("file:")
            else None
        )  # fmt: skip

    def change_stamp(self) -> int | None:
        """A number that changes whenever a write to the database is committed, by any connection
        of any process; None when the database cannot tell (anything but a SQLite file), and then
        `read_cache` keeps nothing.

        SQLite's `PRAGMA data_version` on a connection of its own that never writes: its value
        changes with every commit of every other connection (SQLite's documentation). ~10 us, a
        fraction of the read it saves (the athletes aggregate ~0.3 ms, issue 19)."""
        if self._stamp_path is None:
            return None
        with self._stamp_lock:
            if self._stamp_conn is None:
                self._stamp_conn = sqlite3.connect(self._stamp_path, timeout=10, check_same_thread=False)
            return self._stamp_conn.execute("PRAGMA data_version").fetchone()[0]

    def create_all(self) -> None:
        """Create missing tables and indexes, and add columns newer versions added to existing
        tables (nullable)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # server processes starting together (`serve --workers N`) create the tables once
                conn.execute(text("SELECT pg_advisory_xact_lock(7215031)"))
            Base.metadata.create_all(conn)
            # create_all makes a new table's indexes only; an older database gets newer ones here
            for table in Base.metadata.sorted_tables:
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))
        added = [("recordings", "read_options", "TEXT"), ("jobs", "claimed_by", "VARCHAR(128)")]
        for table, column, sql_type in added:
            try:
                with self.engine.begin() as conn:
                    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
                        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
            except DBAPIError:
                # another process added it at the same moment: fine if it is there now
                with self.engine.connect() as conn:
                    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
                        raise

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.session() as s:
            s.execute(select(1))

    def dispose(self) -> None:
        with self._stamp_lock:
            if self._stamp_conn is not None:
                self._stamp_conn.close()
                self._stamp_conn = None
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on any exception."""
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # --- helpers --------------------------------------------------------------------------
    def ensure_team(self, team_id: str) -> None:
        """Create the team if it is new (InvalidIdError and nothing stored for an invalid id)."""
        check_id("team_id", team_id)
        with self.session() as s:
            if s.get(Team, team_id) is None:
                s.add(Team(id=team_id))
                try:
                    s.flush()
                except IntegrityError:  # created concurrently
                    s.rollback()

    def ensure_athlete(self, team_id: str, athlete_id: str) -> None:
        """Create the athlete in `team_id` (and the team) if new; DatabaseError if another team owns it."""
        check_id("athlete_id", athlete_id)
        self.ensure_team(team_id)
        with self.session() as s:
            row = s.get(Athlete, athlete_id)
            if row is None:
                s.add(Athlete(id=athlete_id, team_id=team_id))
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    row = s.get(Athlete, athlete_id)
            if row is not None and row.team_id != team_id:
                raise DatabaseError(f"athlete_id={athlete_id!r} belongs to another team")

    def ensure_session(self, athlete_id: str, session_id: str, session_date: dt.date | None = None) -> None:
        """Create the session if new; fill in its date if it had none (an existing date is kept)."""
        check_id("athlete_id", athlete_id)
        check_id("session_id", session_id)
        with self.session() as s:
            row = s.get(SessionRow, (athlete_id, session_id))
            if row is None:
                s.add(SessionRow(athlete_id=athlete_id, session_id=session_id, session_date=session_date))
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    row = s.get(SessionRow, (athlete_id, session_id))
            if row is not None and row.session_date is None and session_date is not None:
                row.session_date = session_date

    def has_recordings(self, athlete_id: str, session_id: str) -> bool:
        """Whether any file was uploaded for this athlete-session."""
        with self.session() as s:
            stmt = select(RecordingRow.id).where(
                RecordingRow.athlete_id == athlete_id, RecordingRow.session_id == session_id
            )
            return s.execute(stmt.limit(1)).first() is not None

    def athlete_team(self, athlete_id: str) -> str | None:
        """Team owning the athlete, or None if the athlete is unknown.

        Every athlete route asks, so a known athlete's team is remembered: an athlete is never
        deleted nor moved to another team (`ensure_athlete`). Unknown ids are asked again."""
        team = self._athlete_teams.get(athlete_id)
        if team is None:
            with self.reader.connect() as conn:  # Core and a prebuilt statement
                team = conn.execute(_TEAM_OF_ATHLETE, {"athlete_id": athlete_id}).scalar()
            if team is not None:
                self._athlete_teams[athlete_id] = team
        return team


# The index tables kept by `service.summary_index` (defined here so that creating the database
# does not load that module and the analytics it needs).
class SessionSummary(Base):
    """The API's summary of one athlete-session's `sessions` partition (see `service.summary_index`)."""

    __tablename__ = "session_summaries"
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    signature: Mapped[str] = mapped_column(String(96))
    # {"analysed", "feet", "symmetry_index_pct", "lr_difference_deg"} as in SessionOut
    summary: Mapped[dict] = mapped_column(JSON)
    indexed: Mapped[object] = mapped_column(UTCDateTime, default=utcnow)


class TrendSeries(Base):
    """One athlete's trend rows of one metric, built from all its `sessions` partitions."""

    __tablename__ = "trend_series"
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    signature: Mapped[str] = mapped_column(Text)  # of every sessions partition of the athlete
    # compute_trends rows (NaN as null, dates ISO); null: the stored sessions have no such column
    points: Mapped[list | None] = mapped_column(JSON, nullable=True)
    indexed: Mapped[object] = mapped_column(UTCDateTime, default=utcnow)
