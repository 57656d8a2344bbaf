"""A PostgreSQL schema of its own for one run (the tests and the benchmark), dropped after.

Runs on one PostgreSQL server never see each other's tables: the store URL points the
connection's ``search_path`` at the new schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text


@contextmanager
def scratch_schema(server_url: str, prefix: str = "tb") -> Iterator[str]:
    """Create a fresh schema on ``server_url``; yield a store URL inside it; drop it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield f"{server_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
