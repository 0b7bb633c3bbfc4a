"""Idempotent batch inserts in one round trip: ``INSERT … ON CONFLICT DO NOTHING RETURNING``.

On PostgreSQL the rows travel as one array per column and the statement is
``INSERT INTO t (…) SELECT * FROM unnest(CAST(:c1 AS type[]), …)``: the SQL text is the
same for every batch size, so it is compiled once and psycopg prepares it on the server
after a few executions. Tables with JSON columns (and SQLite) use SQLAlchemy's
"insertmanyvalues" executemany, which is also one statement per batch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_unnest_cache: dict[tuple[str, tuple[str, ...], str], TextClause] = {}


def _pg_type(column: Column[Any]) -> str:
    return str(column.type.compile(dialect=_PG))


def _unnest_insert(table: Table, columns: tuple[str, ...], key: str) -> TextClause:
    cached = _unnest_cache.get((table.name, columns, key))
    if cached is None:
        arrays = ", ".join(f"CAST(:{c} AS {_pg_type(table.c[c])}[])" for c in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        # Names come from the table's metadata, never from input; values are bound.
        sql = f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays}) '  # noqa: S608
        sql += f'ON CONFLICT ("{key}") DO NOTHING RETURNING "{key}"'
        cached = text(sql)
        _unnest_cache[(table.name, columns, key)] = cached
    return cached


def insert_new(session: Session, table: Table, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows, skipping ids already stored; returns the ids actually inserted.

    Rows are inserted in id order (one lock order across server processes).
    """
    if not rows:
        return set()
    rows = sorted(rows, key=lambda r: str(r["id"]))
    dialect = session.get_bind().dialect.name
    columns = tuple(rows[0])
    if dialect == "postgresql" and not any(isinstance(table.c[c].type, JSON) for c in columns):
        statement = _unnest_insert(table, columns, "id")
        arrays = {c: [row[c] for row in rows] for c in columns}
        return set(session.scalars(statement, arrays))
    if dialect == "postgresql":
        insert: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    else:
        insert = sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    return set(session.scalars(insert.returning(table.c.id), rows))
