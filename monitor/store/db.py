"""Engine creation and schema migration, for SQLite (default, WAL mode) and PostgreSQL.

The schema is versioned: ``MIGRATIONS[i]`` brings a database from version ``i`` to ``i + 1`` and runs
once, inside a transaction, recorded in ``schema_version``. Tables that a release adds need no
migration step: ``create_all`` (which skips existing tables) runs at every start. Changes to existing
tables do. Every process calls :func:`open_store` at start, so a new release migrates the store by
itself; concurrent starts are safe because a migration that finds its version already recorded does
nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, insert, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from monitor.config import redact_url
from monitor.errors import UserError
from monitor.schemas import utcnow
from monitor.store import aggregate_tables, alert_tables, tables  # noqa: F401  (register tables on metadata)
from monitor.store.tables import metadata, schema_version

log = logging.getLogger(__name__)


class StoreUnavailable(UserError):
    """The database cannot be reached or written (down, read-only, disk full): retry later."""


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the installed driver), not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"MONITOR_DATABASE_URL {redact_url(url)!r} is not a SQLAlchemy URL "
                        "(e.g. sqlite:////path/monitor.db or postgresql://user@host/db)") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the store folder {folder}: {exc.strerror}; "
                                       "set MONITOR_DATA_DIR or MONITOR_DATABASE_URL to a writable place") from None
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # WAL: readers (dashboard) never block the writer
            # pysqlite's own transaction handling commits before DDL and begins lazily; SQLAlchemy's
            # recipe: switch it off and emit BEGIN ourselves, so every transaction is a real one.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            # IMMEDIATE takes the write lock up front (waiting busy_timeout), for work that must not race.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


_MIGRATION_LOCK = 7243001  # any constant: PostgreSQL advisory lock shared by every monitor process


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A transaction that no other process migrating the same store runs at the same time."""
    with engine.connect() as conn, conn.execution_options(immediate=True).begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        yield conn


def migrate(engine: Engine) -> int:
    with _locked(engine) as conn:
        schema_version.create(conn, checkfirst=True)
        done = set(conn.execute(select(schema_version.c.version)).scalars())
        for number, step in enumerate(MIGRATIONS, start=1):
            if number not in done:
                log.info("migrating the store to schema version %d", number)
                step(conn)
                conn.execute(insert(schema_version).values(version=number, applied_at=utcnow()))
        metadata.create_all(conn)  # tables added since: created, existing ones untouched
    return SCHEMA_VERSION


def open_store(url: str) -> Engine:
    """An engine on a migrated store, or one clear error saying what is wrong with the database."""
    engine = make_engine(url)
    try:
        migrate(engine)
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if getattr(exc, "orig", None) else str(exc).splitlines()[0]
        raise StoreUnavailable(f"store {redact_url(url)} is unavailable: {reason}; {_fix_hint(engine, reason)}") from None
    return engine


def _fix_hint(engine: Engine, reason: str) -> str:
    """What to do: SQLite's own words for a read-only or full disk ("unable to open database file") say little."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        return "start the database or fix MONITOR_DATABASE_URL"
    folder = Path(path).resolve().parent
    if not os.access(folder, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        return (f"{folder} is read-only (WAL mode needs to write beside the database file): make it writable or "
                "set MONITOR_DATA_DIR or MONITOR_DATABASE_URL to a writable place")
    if "disk is full" in reason:
        return f"free space on the disk of {folder}, or move the store (MONITOR_DATA_DIR or MONITOR_DATABASE_URL)"
    return "check the file and its folder, or fix MONITOR_DATABASE_URL"
