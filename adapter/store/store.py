"""The :class:`Store`: the inbox and the held results queue over one SQLAlchemy engine.

Every method is one short transaction. Writes go through :meth:`Store._writing` (on SQLite
``BEGIN IMMEDIATE``); database errors become :class:`StoreError` with the URL (password
hidden) and never the statement's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from adapter.errors import StoreError
from adapter.store.changes import ChangeProbe, change_probe
from adapter.store.engine import WRITE, create_store_engine, migrate, parse_url
from adapter.store.held import HeldRow
from adapter.store.inbox import Incoming
from adapter.store.schema import PROCESSED, RECEIVED, held_results, messages, source_state

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Received:
    """A message after it went into the inbox."""

    message: Incoming
    row_id: int
    new: bool  # this call inserted it (of writers racing with one message, exactly one)
    duplicate: bool  # already in the inbox and finished with (processed or refused): skip it


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing did to one inbox message, to be recorded."""

    row_id: int
    status: str  # processed, refused, or received (not finished: the push failed)
    reason: str | None
    held: tuple[HeldRow, ...]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """An inbox message to process again, with the locations of its open held results."""

    row_id: int
    control_id: str
    status: str
    raw: bytes | None  # None once purged
    open_locations: frozenset[str]
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HeldGroup:
    """Open held results that share a reason kind and a code, with one example."""

    reason_kind: str
    code: str
    code_system: str
    code_text: str
    units: tuple[str, ...]
    count: int
    first_seen: datetime
    last_seen: datetime
    example_value: str
    example_message: str  # the MSH-10 of the message the example came from
    example_reason: str


class Store:
    """The adapter's state store. Open with :func:`open_store`; close when done."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self._clock = clock
        self._where = engine.url.render_as_string(hide_password=True)
        self._probes: list[ChangeProbe] = []

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection, and the change probes' own."""
        for probe in self._probes:
            probe.close()
        self.engine.dispose()

    def change_probe(self) -> ChangeProbe:
        """A new probe telling whether the registry may have changed (closed with the store)."""
        probe = change_probe(self.engine)
        self._probes.append(probe)
        return probe

    # The inbox -------------------------------------------------------------------------

    def receive(self, batch: Sequence[Incoming]) -> list[Received]:
        """Put ``batch`` into the inbox in one transaction; say which were already there.

        One ``INSERT ... ON CONFLICT DO NOTHING`` on (sender, MSH-10, content hash): of
        several writers racing with the same message exactly one inserts it. A message seen
        before whose processing never finished (status ``received``) is not a duplicate: it
        is handed back to be processed again. A new message whose sender and MSH-10 are
        already in the inbox with other content is kept and flagged (``content_conflict``).
        """
        if not batch:
            return []
        now = self._clock()
        with self._writing() as conn:
            inserted = self._insert_new(conn, batch, now)
            known = self._existing(conn, [m.key for m in batch if m.key not in inserted])
            if inserted:
                self._flag_conflicts(conn, list(inserted))
        rows = {**{key: (row_id, RECEIVED) for key, row_id in inserted.items()}, **known}
        received: list[Received] = []
        handed: set[tuple[str, str, str]] = set()
        for message in batch:
            row_id, status = rows[message.key]
            new = message.key in inserted and message.key not in handed
            pending = status == RECEIVED and message.key not in handed  # new or unfinished
            received.append(Received(message, row_id, new=new, duplicate=not pending))
            handed.add(message.key)
        return received

    def _insert_new(
        self, conn: Connection, batch: Sequence[Incoming], now: datetime
    ) -> dict[tuple[str, str, str], int]:
        rows = [
            {
                "sender": m.sender,
                "control_id": m.control_id,
                "content_hash": m.content_hash,
                "received_at": now,
                "raw": m.raw,
                "status": RECEIVED,
            }
            for m in batch
        ]
        c = messages.c
        statement = (
            self._insert(messages)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[c.sender, c.control_id, c.content_hash])
            .returning(c.id, c.sender, c.control_id, c.content_hash)
        )
        return {(r.sender, r.control_id, r.content_hash): r.id for r in conn.execute(statement)}

    def _existing(
        self, conn: Connection, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[int, str]]:
        if not keys:
            return {}
        c = messages.c
        query = select(c.id, c.sender, c.control_id, c.content_hash, c.status).where(
            tuple_(c.sender, c.control_id, c.content_hash).in_(sorted(set(keys)))
        )
        return {
            (r.sender, r.control_id, r.content_hash): (r.id, r.status) for r in conn.execute(query)
        }

    def _flag_conflicts(self, conn: Connection, keys: list[tuple[str, str, str]]) -> None:
        pairs = sorted({(sender, control_id) for sender, control_id, _ in keys})
        conn.execute(_FLAG_CONFLICTS, {"pairs": pairs})

    def record(self, outcomes: Sequence[Outcome]) -> int:
        """Record each message's status and held results; return the held results resolved.

        A message that was processed resolves its open held results that are no longer held
        (a mapping was added since). Held results are upserted on (message, OBX location).
        """
        if not outcomes:
            return 0
        now = self._clock()
        resolved = 0
        with self._writing() as conn:
            self._set_status(conn, outcomes, now)
            held = [(o.row_id, row) for o in outcomes for row in o.held]
            if held:
                self._upsert_held(conn, held, now)
            for outcome in outcomes:
                if outcome.status == PROCESSED:
                    resolved += self._resolve(conn, outcome, now)
        return resolved

    def _set_status(self, conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
        statement = (
            update(messages)
            .where(messages.c.id == bindparam("row_id"))
            .values(
                status=bindparam("new_status"),
                reason=bindparam("new_reason"),
                processed_at=bindparam("at", type_=messages.c.processed_at.type),
            )
        )
        conn.execute(
            statement,
            [
                {"row_id": o.row_id, "new_status": o.status, "new_reason": o.reason, "at": now}
                for o in outcomes
            ],
        )

    def _upsert_held(
        self, conn: Connection, held: list[tuple[int, HeldRow]], now: datetime
    ) -> None:
        rows = [
            {
                "message_id": row_id,
                "location": row.location,
                "code": row.code,
                "code_system": row.code_system,
                "code_text": row.code_text,
                "unit": row.unit,
                "value_type": row.value_type,
                "example_value": row.example_value,
                "reason_kind": row.reason_kind,
                "reason": row.reason,
                "first_seen": now,
                "last_seen": now,
            }
            for row_id, row in held
        ]
        statement = self._insert(held_results).values(rows)
        excluded = statement.excluded
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[held_results.c.message_id, held_results.c.location],
                set_={
                    "reason_kind": excluded.reason_kind,
                    "reason": excluded.reason,
                    "example_value": excluded.example_value,
                    "unit": excluded.unit,
                    "last_seen": excluded.last_seen,
                    "resolved_at": None,
                },
            )
        )

    def _resolve(self, conn: Connection, outcome: Outcome, now: datetime) -> int:
        c = held_results.c
        still = [row.location for row in outcome.held]
        result = conn.execute(
            update(held_results)
            .where(
                c.message_id == outcome.row_id, c.resolved_at.is_(None), c.location.not_in(still)
            )
            .values(resolved_at=now)
        )
        return int(result.rowcount)

    # The held results queue --------------------------------------------------------------

    def held_groups(self) -> list[HeldGroup]:
        """Open held results grouped by reason kind and code, most frequent first."""
        c = held_results.c
        key = (c.reason_kind, c.code_system, c.code)
        with self._reading() as conn:
            counts = conn.execute(
                select(
                    *key,
                    c.unit,
                    func.max(c.code_text).label("code_text"),
                    func.count().label("n"),
                    func.min(c.first_seen).label("first_seen"),
                    func.max(c.last_seen).label("last_seen"),
                )
                .where(c.resolved_at.is_(None))
                .group_by(*key, c.unit)
            ).all()
            examples = conn.execute(self._examples_query()).all()
        return _groups(counts, {(e.reason_kind, e.code_system, e.code): e for e in examples})

    @staticmethod
    def _examples_query() -> Any:
        c = held_results.c
        ranked = (
            select(
                c.reason_kind,
                c.code_system,
                c.code,
                c.example_value,
                c.reason,
                messages.c.control_id,
                func.row_number()
                .over(
                    partition_by=(c.reason_kind, c.code_system, c.code),
                    order_by=(c.last_seen.desc(), c.id.desc()),
                )
                .label("rank"),
            )
            .join(messages, messages.c.id == c.message_id)
            .where(c.resolved_at.is_(None))
            .subquery()
        )
        return select(ranked).where(ranked.c.rank == 1)

    def messages_with_open_held(self, reason_kind: str) -> list[int]:
        """The inbox rows that have open held results of ``reason_kind``, oldest first."""
        c = held_results.c
        with self._reading() as conn:
            query = (
                select(c.message_id)
                .where(c.reason_kind == reason_kind, c.resolved_at.is_(None))
                .group_by(c.message_id)
                .order_by(c.message_id)
            )
            return [int(row_id) for row_id in conn.scalars(query)]

    def stored_message(self, row_id: int) -> StoredMessage:
        """One inbox message with the locations of its open held results."""
        c = held_results.c
        with self._reading() as conn:
            row = conn.execute(
                select(
                    messages.c.control_id,
                    messages.c.status,
                    messages.c.raw,
                    messages.c.received_at,
                ).where(messages.c.id == row_id)
            ).one()
            open_locations = conn.scalars(
                select(c.location).where(c.message_id == row_id, c.resolved_at.is_(None))
            ).all()
        return StoredMessage(
            row_id,
            row.control_id,
            row.status,
            row.raw,
            frozenset(open_locations),
            row.received_at,
        )

    # Source state ------------------------------------------------------------------------

    def get_state(self, source: str, key: str) -> str | None:
        """A source's durable value for ``key`` (None when never set)."""
        c = source_state.c
        with self._reading() as conn:
            value = conn.scalar(select(c.value).where(c.source == source, c.key == key))
        return None if value is None else str(value)

    def set_state(self, source: str, key: str, value: str) -> None:
        """Set a source's durable value for ``key`` (insert or replace, one transaction)."""
        c = source_state.c
        now = self._clock()
        with self._writing() as conn:
            updated = conn.execute(
                update(source_state)
                .where(c.source == source, c.key == key)
                .values(value=value, updated_at=now)
            )
            if updated.rowcount == 0:
                conn.execute(
                    insert(source_state).values(source=source, key=key, value=value, updated_at=now)
                )

    def states(self, source: str) -> dict[str, str]:
        """Every value a source has stored."""
        c = source_state.c
        with self._reading() as conn:
            rows = conn.execute(select(c.key, c.value).where(c.source == source)).all()
        return {row.key: row.value for row in rows}

    # Plumbing ----------------------------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with (
            self._errors(),
            self.engine.connect().execution_options(**WRITE) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StoreError(f"the state store at {self._where} failed: {cause}") from exc


def _groups(counts: Sequence[Any], examples: dict[tuple[str, str, str], Any]) -> list[HeldGroup]:
    merged: dict[tuple[str, str, str], HeldGroup] = {}
    for row in counts:
        key = (row.reason_kind, row.code_system, row.code)
        example = examples[key]
        seen = merged.get(key)
        units = tuple(sorted({*(seen.units if seen else ()), row.unit} - {""}))
        merged[key] = HeldGroup(
            reason_kind=row.reason_kind,
            code=row.code,
            code_system=row.code_system,
            code_text=max(seen.code_text if seen else "", row.code_text),
            units=units,
            count=(seen.count if seen else 0) + row.n,
            first_seen=min(seen.first_seen, row.first_seen) if seen else row.first_seen,
            last_seen=max(seen.last_seen, row.last_seen) if seen else row.last_seen,
            example_value=example.example_value,
            example_message=example.control_id,
            example_reason=example.reason,
        )
    return sorted(merged.values(), key=lambda g: (g.reason_kind, -g.count, g.code))


def _flag_conflicts_statement() -> Any:
    """Flag the messages whose sender and MSH-10 are in the inbox with other content. Built
    once, with an expanding parameter, so SQLAlchemy compiles it once (it runs per commit)."""
    other = messages.alias("other")
    c = messages.c
    differs = exists().where(
        and_(
            other.c.sender == c.sender,
            other.c.control_id == c.control_id,
            other.c.content_hash != c.content_hash,
        )
    )
    pairs = tuple_(c.sender, c.control_id).in_(bindparam("pairs", expanding=True))
    return update(messages).where(pairs, differs).values(content_conflict=True)


_FLAG_CONFLICTS = _flag_conflicts_statement()


def open_store(url: str, *, clock: Clock | None = None) -> Store:
    """Open the store at ``url`` and bring its schema up to date (Alembic migrations)."""
    parse_url(url)
    engine = create_store_engine(url)
    store = Store(engine, clock or (lambda: datetime.now(UTC)))
    try:
        with store._errors():
            migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return store
