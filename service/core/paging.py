"""One page of a list query, with the total the API reports beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    page_size: int


def paginate(session: Session, stmt: Select[Any], *, page: int, page_size: int) -> Page[Any]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = session.scalars(stmt.limit(page_size).offset((page - 1) * page_size)).unique().all()
    return Page(items=items, total=total, page=page, page_size=page_size)
