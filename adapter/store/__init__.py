"""The adapter's durable state store (SQLAlchemy 2 Core; SQLite in WAL mode by default,
PostgreSQL by URL; schema migrations with Alembic, applied when the store is opened).

Every hand-over between the stages of the flow goes through this store, so a crash anywhere
loses nothing and repeats nothing visible (DESIGN.md). Tables today::

    messages         the inbox: one row per received message
      id PK · sender (MSH-3@MSH-4) · control_id (MSH-10) · content_hash (sha256 of raw)
      received_at · raw (bytes; NULL once purged) · status received|processed|refused
      reason · content_conflict (same sender + MSH-10 seen with other content)
      processed_at
      UNIQUE (sender, control_id, content_hash)   <- dedup: INSERT ... ON CONFLICT DO NOTHING

    held_results     the held queue: one row per OBX that was not mapped
      id PK · message_id -> messages.id · location (OBX[n]) · code · code_system
      code_text · unit (as sent) · value_type · example_value · reason_kind · reason
      first_seen · last_seen · resolved_at (NULL while held)
      UNIQUE (message_id, location)

Designed to grow without reshaping these (issue 6 and issue 4), each a new migration:

- ``outbox`` (transactions waiting for the FHIR server) and ``dead_letters`` reference
  ``messages.id``; ``messages.status`` gains values by a new CHECK, nothing else changes.
- ``leases`` (scheduler and row leases) are their own small table; workers claim inbox rows
  with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL through the ``(status, id)`` index.
- the enrolment registry (``subjects``, ``subject_identifiers``) is keyed by the trial
  subject number; the enrolment filter runs before anything of a non-enrolled patient is
  written here, and ``messages.raw`` (the only column that may identify a patient) is
  purged after the retention period by setting it to NULL.

No table holds patient names, MRNs or anything identifying other than ``messages.raw``.
Statement parameters are kept out of errors and logs.

Modules: :mod:`~adapter.store.schema` (tables), :mod:`~adapter.store.engine` (engines,
SQLite pragmas, migrations), :mod:`~adapter.store.inbox` and :mod:`~adapter.store.held`
(pure: what becomes a row), :mod:`~adapter.store.store` (the :class:`Store`),
:mod:`~adapter.store.service` (the service's inbox claim and outbox),
:mod:`~adapter.store.deadletters` (transactions the server refused),
:mod:`~adapter.store.jobs` (leases, job runs) and
:mod:`~adapter.store.quarantine` (messages set aside, issue 12).
"""

from __future__ import annotations

from adapter.errors import StoreError
from adapter.store.held import HeldRow, held_row, reason_kind
from adapter.store.inbox import Incoming, incoming
from adapter.store.schema import PROCESSED, RECEIVED, REFUSED, UNMAPPED_CODE
from adapter.store.store import (
    HeldGroup,
    Outcome,
    Received,
    Store,
    StoredMessage,
    open_store,
)

__all__ = [
    "PROCESSED",
    "RECEIVED",
    "REFUSED",
    "UNMAPPED_CODE",
    "HeldGroup",
    "HeldRow",
    "Incoming",
    "Outcome",
    "Received",
    "Store",
    "StoreError",
    "StoredMessage",
    "held_row",
    "incoming",
    "open_store",
    "reason_kind",
]
