"""Opening the store: the engine for SQLite (WAL) or PostgreSQL, and migrations on open.

SQLite is the embedded default: one file, WAL journal (readers never block the writer),
foreign keys on, a busy timeout, and ``synchronous=FULL`` so that a committed message
survives a power cut (DESIGN.md: ACK only after the message is durably stored). Python's
sqlite3 module opens transactions lazily and late; here SQLAlchemy emits ``BEGIN`` itself,
and a connection marked with :data:`WRITE` begins with ``BEGIN IMMEDIATE`` so that it waits
for the write lock up front instead of failing half-way (SQLITE_BUSY is not retried inside a
deferred transaction that started as a reader).

Statement parameters are never put in error messages or logs (``hide_parameters``): they
carry the raw message bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from adapter.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# Execution option that makes a connection's transactions take the write lock at BEGIN.
WRITE = {"trialbridge_write": True}
# PostgreSQL advisory lock held while migrating, so two processes starting at once do not
# both create the tables. (SQLite: BEGIN IMMEDIATE does the same.)
_MIGRATION_LOCK = 0x7472_6962  # "trib"


def parse_url(url: str) -> URL:
    """The store URL, checked: SQLite or PostgreSQL through psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"store.url is not a database URL: {exc}") from exc
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"store.url uses {parsed.drivername!r}; use sqlite:///PATH or postgresql+psycopg://"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("store.url must name an SQLite file (sqlite:///var/trialbridge.sqlite)")
    return parsed


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings above; the SQLite file's folder is created."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, hide_parameters=True)
        _sqlite_setup(engine)
        return engine
    return create_engine(parsed, hide_parameters=True, pool_pre_ping=True)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "foreign_keys=ON",
            f"busy_timeout={BUSY_TIMEOUT_MS}",
            "synchronous=FULL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("trialbridge_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (nothing to do when it is current)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect().execution_options(**WRITE) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
