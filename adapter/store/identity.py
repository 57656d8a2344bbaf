"""The FHIR server a store belongs to (table ``store_identity``, migration 0006).

A store remembers what it sent (the outbox, the inbox's deduplication), so used against
another FHIR server it would take its own records for the truth there: a message already in
the store would be a "duplicate" and never reach the new server. The first use against a
server records its base URL and, when the server's CapabilityStatement says one, its
identity; later uses against another server are refused. Pure comparisons plus the store's
reads and writes; asking the server is the caller's part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select, update

from adapter.errors import StoreError
from adapter.store.schema import store_identity
from adapter.store.store import Store

_ROW = "fhir"


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """A FHIR server as a store knows it."""

    base_url: str
    identity: str | None  # CapabilityStatement implementation.url (or url), when given
    recorded_at: datetime | None = None


def normalised(url: str) -> str:
    """A base URL compared as servers see it: scheme and host in lower case, no trailing /."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def recorded(store: Store) -> ServerIdentity | None:
    """The server this store belongs to (None: not used against one yet)."""
    c = store_identity.c
    with store._reading() as conn:
        row = conn.execute(
            select(c.fhir_base_url, c.server_identity, c.recorded_at).where(c.name == _ROW)
        ).first()
    return ServerIdentity(row[0], row[1], row[2]) if row else None


def bind(store: Store, server: ServerIdentity, where: str) -> ServerIdentity:
    """Record ``server`` as this store's, or check that it is the recorded one. Another
    base URL is refused unless both identities are known and equal (the same server at a
    new address: the address is updated); the same URL with another known identity is
    refused too. ``where`` names the store in the message."""
    mine = recorded(store)
    if mine is None:
        with store._writing() as conn:
            statement = store._insert(store_identity).values(
                name=_ROW,
                fhir_base_url=normalised(server.base_url),
                server_identity=server.identity,
                recorded_at=store._clock(),
            )
            conn.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
        mine = recorded(store)
        assert mine is not None
    same_url = normalised(mine.base_url) == normalised(server.base_url)
    known = mine.identity is not None and server.identity is not None
    another = (known and mine.identity != server.identity) or (not same_url and not known)
    if another:
        raise StoreError(_refusal(mine, server, where))
    if not same_url or (mine.identity is None and server.identity is not None):
        _update(store, server)
    return mine


def _update(store: Store, server: ServerIdentity) -> None:
    c = store_identity.c
    values: dict[str, object] = {"fhir_base_url": normalised(server.base_url)}
    if server.identity is not None:
        values["server_identity"] = server.identity
    with store._writing() as conn:
        conn.execute(update(store_identity).where(c.name == _ROW).values(**values))


def _refusal(mine: ServerIdentity, other: ServerIdentity, where: str) -> str:
    since = f" since {mine.recorded_at:%Y-%m-%d}" if mine.recorded_at else ""
    who = f" (server {mine.identity})" if mine.identity else ""
    now = f" (server {other.identity})" if other.identity else ""
    return (
        f"the state store {where} belongs to the FHIR server {mine.base_url}{who}{since}, "
        f"not {normalised(other.base_url)}{now}: it holds what was sent there, so against "
        "another server its messages would count as already sent. Use that server's store, "
        "or a new store (store.url, --store) for this server"
    )
