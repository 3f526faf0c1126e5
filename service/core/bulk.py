"""Set-based statements for the runner's batches on PostgreSQL, portable SQL elsewhere.

`IN (:a, :b, ...)` and executemany send one parameter per value, which psycopg adapts one by
one and each batch size makes a new statement text. On PostgreSQL a batch travels instead as a
single text parameter built by C code (str.join, json.dumps) and unpacked by the server:
`id = ANY(CAST(:ids AS BIGINT[]))` and `INSERT ... SELECT FROM json_to_recordset(:rows)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    String,
    any_,
    bindparam,
    cast,
    column,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON
from sqlalchemy.orm import Session


def on_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column_: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN ids` for integer ids: `column = ANY(CAST('{1,2,...}' AS <type>[]))` on
    PostgreSQL."""
    if on_postgres(session):
        literal = "{" + ",".join(str(int(i)) for i in ids) + "}"
        matches: ColumnElement[bool] = column_ == any_(
            cast(bindparam(None, literal, String), ARRAY(column_.type))
        )
        return matches
    listed: ColumnElement[bool] = column_.in_(list(ids))
    return listed


def rows_select(table: FromClause, rows: Sequence[Mapping[str, Any]]) -> Select[Any]:
    """PostgreSQL: a SELECT giving `rows` back (same keys in every row, typed as `table`'s
    columns), in order, from one JSON parameter."""
    names = list(rows[0])
    source = (
        func.json_to_recordset(cast(bindparam(None, _to_json(rows), String), JSON))
        .table_valued(*[column(name, table.c[name].type) for name in names])
        .render_derived(name="batch", with_types=True)
    )
    return select(*[source.c[name] for name in names])


def insert_rows(session: Session, model: type[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT many rows of a model with the same keys: one statement on PostgreSQL, executemany
    elsewhere."""
    if not rows:
        return
    if on_postgres(session):
        source = rows_select(model.__table__, rows)
        session.execute(insert(model).from_select(list(rows[0]), source))
    else:
        session.execute(insert(model), list(rows))


def _to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot go into a batch")
