"""Has the registry changed since the last look? A probe cheap enough for a hot path.

The MLLP listener runs the enrolment gate for every message and must see an enrolment or a
withdrawal as soon as it is committed, by any process. Asking the registry for its version
costs a query; the probe lets the registry skip it while nothing changed.

- SQLite: ``PRAGMA data_version`` on a connection of the probe's own. Its value changes
  whenever another connection, in this process or any other, commits to the file
  (https://sqlite.org/pragma.html#pragma_data_version): exact, a few microseconds, no lock.
  It changes for any commit, so the caller's query runs after each inbox commit too.
- PostgreSQL: ``LISTEN`` on a connection of the probe's own; every registry write calls
  :func:`announce` in its transaction, and PostgreSQL delivers the notification when that
  transaction commits (https://www.postgresql.org/docs/current/sql-notify.html). Reading
  it is a non-blocking read of the socket.

Either probe answers "changed" on its first call and whenever it cannot tell (a lost
connection is opened again on the next call), so the caller falls back to its query.

Our own code because no library offers this: it is one pragma on a plain sqlite3
connection, and LISTEN on a plain psycopg connection (SQLAlchemy's pooled connections are
for transactions, not for a probe kept open).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Protocol

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, Connection

CHANNEL = "trialbridge_registry"


class ChangeProbe(Protocol):
    def changed(self) -> bool:
        """True on the first call and when something may have changed since the last."""
        ...

    def close(self) -> None: ...


def change_probe(engine: Engine) -> ChangeProbe:
    """The probe for the engine's database."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        return SqliteProbe(url.database)
    return PostgresProbe(url)


def announce(conn: Connection) -> None:
    """Say, inside a registry write's transaction, that the registry changed (PostgreSQL;
    SQLite's probe sees every commit without being told)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class SqliteProbe:
    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._seen: int | None = None

    def changed(self) -> bool:
        with self._lock:
            try:
                version = self._version()
            except sqlite3.Error:
                self._reset()  # opened again next time; meanwhile, assume a change
                return True
            changed = version != self._seen
            self._seen = version
            return changed

    def _version(self) -> int:
        if self._connection is None:
            # Autocommit: a pragma outside any transaction sees the latest commit.
            self._connection = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False
            )
            self._seen = None
        row = self._connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _reset(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._seen = None, None

    def close(self) -> None:
        with self._lock:
            self._reset()


class PostgresProbe:
    def __init__(self, url: URL) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def changed(self) -> bool:
        with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._listen()
                    return True
                return self._notified(self._connection)
            except Exception:  # any failure: listen again, and assume a change
                self._reset()
                return True

    def _listen(self) -> None:
        self._connection = psycopg.connect(self._conninfo, autocommit=True)
        self._connection.execute(f"LISTEN {CHANNEL}")

    @staticmethod
    def _notified(connection: psycopg.Connection[tuple[object, ...]]) -> bool:
        wire = connection.pgconn
        wire.consume_input()  # what arrived on the socket, without waiting
        seen = False
        while wire.notifies() is not None:
            seen = True
        return seen

    def _reset(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def close(self) -> None:
        with self._lock:
            self._reset()
