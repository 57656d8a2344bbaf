"""The tables of the state store, as SQLAlchemy Core :class:`~sqlalchemy.Table` objects.

These are what queries are written against. The DDL itself is owned by the Alembic
migrations in ``migrations/versions/``; a test checks that the two agree on SQLite and
PostgreSQL (``alembic.autogenerate.compare_metadata`` finds nothing to change).

Portable by construction: only types, constraints and partial indexes that mean the same on
both databases; times are stored in UTC and always read back time-zone aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator

# Message status in the inbox.
RECEIVED = "received"  # stored; not (yet) processed to the end, e.g. the FHIR server was down
PROCESSED = "processed"  # translated and pushed (its held results are in held_results)
REFUSED = "refused"  # cannot be used as sent; ``reason`` says why
MESSAGE_STATUSES = (RECEIVED, PROCESSED, REFUSED)

# Why a result is held (``held_results.reason_kind``).
UNMAPPED_CODE = "unmapped_code"  # OBX-3 is not in mappings/analytes.yaml
REASON_KINDS = (UNMAPPED_CODE, "unit", "value", "status", "order", "time", "other")

# Column sizes: HL7 v2.5.1 lengths where the standard gives one (MSH-10 is ST 199).
CONTROL_ID_LENGTH = 199
SENDER_LENGTH = 255
SHORT_TEXT_LENGTH = 255
EXAMPLE_LENGTH = 64

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A time-zone-aware instant, stored in UTC (SQLite has no time zones: naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store only takes time-zone-aware datetimes")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id() -> Column[int]:
    # SQLite only makes INTEGER PRIMARY KEY the rowid (auto-increment); PostgreSQL: BIGSERIAL.
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column("sender", String(SENDER_LENGTH), nullable=False),  # MSH-3@MSH-4
    Column("control_id", String(CONTROL_ID_LENGTH), nullable=False),  # MSH-10
    Column("content_hash", String(64), nullable=False),  # sha256 of raw, hex
    Column("received_at", UtcDateTime(), nullable=False),
    Column("raw", LargeBinary(), nullable=True),  # NULL once purged (retention, issue 6)
    Column("status", String(16), nullable=False, server_default=RECEIVED),
    Column("reason", Text(), nullable=True),  # why it was refused, or the last push error
    Column("content_conflict", Boolean(), nullable=False, server_default=false()),
    Column("processed_at", UtcDateTime(), nullable=True),  # last processing attempt
    UniqueConstraint("sender", "control_id", "content_hash"),
    CheckConstraint(f"status IN {MESSAGE_STATUSES!r}", name="status"),
    Index("ix_messages_status_id", "status", "id"),
)

held_results = Table(
    "held_results",
    metadata,
    _id(),
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("location", String(32), nullable=False),  # e.g. OBX[3]
    Column("code", String(SHORT_TEXT_LENGTH), nullable=False),  # OBX-3.1
    Column("code_system", String(SHORT_TEXT_LENGTH), nullable=False),  # OBX-3.3
    Column("code_text", String(SHORT_TEXT_LENGTH), nullable=False),  # OBX-3.2
    Column("unit", String(SHORT_TEXT_LENGTH), nullable=False),  # OBX-6 as sent
    Column("value_type", String(8), nullable=False),  # OBX-2
    Column("example_value", String(EXAMPLE_LENGTH), nullable=False),  # OBX-5, see held.py
    Column("reason_kind", String(24), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),  # last time it was found held
    Column("resolved_at", UtcDateTime(), nullable=True),
    UniqueConstraint("message_id", "location"),
    CheckConstraint(f"reason_kind IN {REASON_KINDS!r}", name="reason_kind"),
    Index(
        "ix_held_results_open",
        "reason_kind",
        "code_system",
        "code",
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
)

# The enrolment registry (the trial issue). Hospital identifiers live here and only here:
# they are what the enrolment filter matches a message's PID-3 against.
SUBJECT_ID_LENGTH = 64
SUBJECT_STATUSES = ("on-study", "withdrawn", "off-study", "follow-up")

subjects = Table(
    "subjects",
    metadata,
    Column("subject_id", String(SUBJECT_ID_LENGTH), primary_key=True),
    Column("arm", String(64), nullable=False),
    Column("sex", String(1), nullable=False),  # F / M / O / U
    Column("birth_year", Integer(), nullable=False),
    Column("consent_date", Date(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("withdrawn_at", UtcDateTime(), nullable=True),
    Column("died_on", Date(), nullable=True),
    Column("last_known_alive", Date(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint(f"status IN {SUBJECT_STATUSES!r}", name="status"),
    CheckConstraint("sex IN ('F', 'M', 'O', 'U')", name="sex"),
)

subject_identifiers = Table(
    "subject_identifiers",
    metadata,
    _id(),
    Column(
        "subject_id",
        String(SUBJECT_ID_LENGTH),
        ForeignKey("subjects.subject_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("value", String(SHORT_TEXT_LENGTH), nullable=False),  # PID-3.1
    Column("authority", String(SHORT_TEXT_LENGTH), nullable=False),  # PID-3.4, upper case
    UniqueConstraint("value", "authority"),
)

subject_infusions = Table(
    "subject_infusions",
    metadata,
    _id(),
    Column(
        "subject_id",
        String(SUBJECT_ID_LENGTH),
        ForeignKey("subjects.subject_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("infusion_date", Date(), nullable=False),
    UniqueConstraint("subject_id", "infusion_date"),
)

# Small durable state of each source (file drop, MLLP, LIS query pull): watermarks, files
# already taken, last success. Keys and values are the source's own (text, JSON if needed).
source_state = Table(
    "source_state",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("key", String(SHORT_TEXT_LENGTH), primary_key=True),
    Column("value", Text(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The service (issue 6): the outbox of transactions for the FHIR server, its dead letters,
# leases (one active scheduler per store) and the record of each job's runs.
PENDING, SENT, DEAD = "pending", "sent", "dead"
OUTBOX_STATUSES = (PENDING, SENT, DEAD)
RESULTS, SUBJECT = "results", "subject"  # what an outbox transaction carries
OUTBOX_KINDS = (RESULTS, SUBJECT)
HOLDER_LENGTH = 128

outbox = Table(
    "outbox",
    metadata,
    _id(),
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("subject_id", String(SUBJECT_ID_LENGTH), nullable=False),  # "" without a registry
    Column("sequence", BigInteger(), nullable=False),  # order within the subject
    Column("kind", String(16), nullable=False),
    Column("bundle", Text(), nullable=False),  # the transaction, JSON with exact decimals
    Column("status", String(8), nullable=False, server_default=PENDING),
    Column("attempts", Integer(), nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", Text(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("claimed_by", String(HOLDER_LENGTH), nullable=True),  # the pushing worker's lease
    Column("claimed_until", UtcDateTime(), nullable=True),
    CheckConstraint(f"status IN {OUTBOX_STATUSES!r}", name="status"),
    CheckConstraint(f"kind IN {OUTBOX_KINDS!r}", name="kind"),
    # Covers the claim's listing of pending rows (migration 0005 says why).
    Index(
        "ix_outbox_pending",
        "status",
        "subject_id",
        "sequence",
        "id",
        "next_attempt_at",
        "claimed_by",
        "claimed_until",
    ),
    Index("ix_outbox_message_id", "message_id"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    _id(),
    Column(
        "outbox_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("outbox.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("http_status", Integer(), nullable=True),
    Column("outcome", Text(), nullable=False),  # the server's OperationOutcome, as text
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retried_at", UtcDateTime(), nullable=True),  # NULL while it is a dead letter
    Index(
        "ix_dead_letters_open",
        "outbox_id",
        sqlite_where=text("retried_at IS NULL"),
        postgresql_where=text("retried_at IS NULL"),
    ),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(HOLDER_LENGTH), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("name", String(64), primary_key=True),  # a job, or a source (source:NAME)
    Column("holder", String(HOLDER_LENGTH), nullable=True),
    Column("last_success_at", UtcDateTime(), nullable=True),
    Column("last_error_at", UtcDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("last_count", Integer(), nullable=False, server_default=text("0")),
    Column("runs", BigInteger(), nullable=False, server_default=text("0")),
)

# The quarantine (issue 12): messages set aside because processing or pushing them failed,
# one row per message; migration 0007 says what ``holds`` means.
PROCESS_STAGE, PUSH_STAGE = "process", "push"
QUARANTINE_STAGES = (PROCESS_STAGE, PUSH_STAGE)
RETRIED, DISCARDED = "retried", "discarded"
ERROR_CLASS_LENGTH = 128

quarantine = Table(
    "quarantine",
    metadata,
    _id(),
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("stage", String(16), nullable=False),  # process | push
    Column("outbox_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True),  # push
    Column("subject_id", String(SUBJECT_ID_LENGTH), nullable=False),  # "" when not known
    Column("holds", Boolean(), nullable=False, server_default=false()),  # holds the subject
    Column("error_class", String(ERROR_CLASS_LENGTH), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("location", String(SHORT_TEXT_LENGTH), nullable=True),  # OBX[2].14, or code
    Column("times", Integer(), nullable=False, server_default=text("1")),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),  # NULL while quarantined
    Column("resolution", String(16), nullable=True),  # retried | discarded
    Column("note", Text(), nullable=True),  # the operator's reason for a discard
    UniqueConstraint("message_id"),
    CheckConstraint(f"stage IN {QUARANTINE_STAGES!r}", name="stage"),
    CheckConstraint(
        f"resolution IS NULL OR resolution IN {(RETRIED, DISCARDED)!r}", name="resolution"
    ),
    Index(
        "ix_quarantine_open",
        "subject_id",
        "message_id",
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
)

# The FHIR server this store belongs to (migration 0006): one row, ``name`` = "fhir".
store_identity = Table(
    "store_identity",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("fhir_base_url", Text(), nullable=False),
    Column("server_identity", Text(), nullable=True),  # from its CapabilityStatement
    Column("recorded_at", UtcDateTime(), nullable=False),
)
