"""Has the database changed since the last look? A probe cheap enough for a hot path.

The MLLP listener runs the enrolment gate for every message and must see an enrolment or a
withdrawal as soon as it is committed, by any process. Asking the registry for its version
costs a query (~0.6 ms through SQLAlchemy); the probe lets the registry skip that query
while nothing at all was committed.

SQLite: ``PRAGMA data_version`` on a connection of the probe's own. Its value changes
whenever another connection, in this process or any other, commits to the file
(https://sqlite.org/pragma.html#pragma_data_version); reading it is a few microseconds and
takes no lock. PostgreSQL has no such counter: there the probe always answers "maybe", and
the caller runs its query every time (exact, as without a probe).

Our own code because no library offers this: it is one pragma on a plain sqlite3
connection (SQLAlchemy's pooled connections are for transactions, not for a probe kept open).
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import Engine


class ChangeProbe:
    """``changed()`` is True on the first call and whenever something was committed since
    the previous call (SQLite), or always (other databases)."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url
        self._path = url.database if url.get_backend_name() == "sqlite" else None
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._seen: int | None = None

    def changed(self) -> bool:
        if self._path is None:
            return True
        with self._lock:
            try:
                version = self._version()
            except sqlite3.Error:
                self._reset()  # the next call opens it again; meanwhile, assume a change
                return True
            changed = version != self._seen
            self._seen = version
            return changed

    def _version(self) -> int:
        if self._connection is None:
            assert self._path is not None
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
