"""URL converters for ids in paths: an id beyond its column's range is a 404, not an error."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter

from schemas.common import MAX_ID, MAX_INT_ID


class IdConverter(IntegerConverter):
    """`<int:...>` ids of INTEGER keys: a larger id is a 404, never a database error."""

    largest = MAX_INT_ID

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", self.largest)
        super().__init__(*args, **kwargs)


class BigIdConverter(IdConverter):
    """`<bigint:...>` ids of BIGINT keys (reminders, inbox messages)."""

    largest = MAX_ID
