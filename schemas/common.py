"""Shared wire-format pieces: pagination, problem details, common field types."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from service.core.wall_clock import is_known_time_zone
from service.vocabulary import values

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# What the database and the calendar arithmetic can hold: integers fit a BIGINT, ids of INTEGER
# keys an INTEGER, and dates stay far enough from datetime's years 1 and 9999 that moving them by
# time zones or months never fails.
MAX_ID = 2**63 - 1
MAX_INT_ID = 2**31 - 1
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)
_DATE_RANGE = f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."


# A response field absent from some bodies (every other response field is in every body, null
# when it has no value): `metadata=SOMETIMES_ABSENT`. The OpenAPI document leaves it optional.
SOMETIMES_ABSENT_KEY = "x-sometimes-absent"
SOMETIMES_ABSENT = {SOMETIMES_ABSENT_KEY: True}


def digest(data: Any) -> str:
    """The ETag value of `data`: the SHA-1 of its sorted JSON, as flask-smorest computes it."""
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()


def row_version(resource: str, row: Any) -> dict[str, Any]:
    """What a row's version tag is computed from (PATCH/PUT accept it in If-Match)."""
    return {"resource": resource, "id": row.id, "version": row.version}


def row_etag(resource: str, row: Any) -> str:
    """The strong ETag of a row's version, as sent in If-Match."""
    return f'"{digest(row_version(resource, row))}"'


def etag_field(resource: str) -> fields.Function:
    """A writable row's ETag (`row_etag`), so a client can change an item it found in a list
    without reading it first: If-Match takes it as well as the ETag a GET answered."""
    return fields.Function(
        lambda row: row_etag(resource, row) if row.id is not None else None,
        dump_only=True,
        allow_none=True,
        metadata={
            "type": "string",
            "description": "Send as If-Match to change this item (null in a preview)",
        },
    )


class StrictSchema(ma.Schema):
    """Rejects unknown fields (marshmallow's default, stated so no subclass forgets it), and
    values no column or date computation can take: a NUL character (PostgreSQL text cannot hold
    one), an integer beyond a BIGINT, a date outside EARLIEST_DATE..LATEST_DATE."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load
    def _no_nul_characters(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, Mapping):
            bad = [str(key) for key, value in data.items() if _has_nul(key) or _has_nul(value)]
            if bad:
                message = ["Must not contain NUL characters."]
                raise ma.ValidationError({key.replace("\x00", "\\0"): message for key in bad})
        return data

    @ma.validates_schema
    def _storable_values(self, data: dict[str, Any], **_kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for name, value in data.items():
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_ID:
                errors[name] = ["Too large."]
            elif isinstance(value, date):
                day = value.date() if isinstance(value, datetime) else value
                if not EARLIEST_DATE <= day <= LATEST_DATE:
                    errors[name] = [_DATE_RANGE]
        if errors:
            raise ma.ValidationError(errors)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class Vocabulary(validate.OneOf):
    """One of a vocabulary's values (service/vocabulary.py). The OpenAPI document names the
    enum after the vocabulary, so every field of it has one type in a generated client."""

    def __init__(self, vocabulary: type[StrEnum]) -> None:
        super().__init__(values(vocabulary))
        self.vocabulary = vocabulary


class PageArgsSchema(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )


_page_schemas: dict[str, type[ma.Schema]] = {}


def page_of(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """A `{items, total, page, page_size}` envelope around a list of `item_schema`."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    if name not in _page_schemas:
        _page_schemas[name] = type(
            name,
            (ma.Schema,),
            {
                "items": fields.List(fields.Nested(item_schema), required=True),
                "total": fields.Integer(required=True),
                "page": fields.Integer(required=True),
                "page_size": fields.Integer(required=True),
                "Meta": type("Meta", (), {"ordered": True}),
            },
        )
    return _page_schemas[name]


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, with a stable machine-readable `code`.

    Extension members (e.g. `blocking_items`, `retry_after`) are allowed, as RFC 9457 says.
    """

    class Meta:
        unknown = ma.INCLUDE

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"description": "Stable machine-readable error code"})
    errors = fields.Dict(metadata={"description": "Per-field messages"})


class Instant(fields.AwareDateTime):
    """An instant, the one way every response writes one: RFC 3339 in UTC with milliseconds,
    e.g. `2027-01-04T08:00:00.000Z`. Read: any ISO 8601 date-time with an offset."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return rfc3339(value)


def rfc3339(value: datetime, zone: tzinfo | None = None) -> str:
    """`value` as RFC 3339 with milliseconds: in UTC with `Z`, or on `zone`'s wall clock with
    its offset. Stored instants are UTC; a naive one is read as such."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(zone or UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z" if zone is None else text


class TimeZoneField(fields.String):
    """An IANA region time zone, e.g. Europe/Berlin, or UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs)
        if not is_known_time_zone(name):
            raise ma.ValidationError("Not an IANA region time zone (e.g. Europe/Berlin) or UTC.")
        return name


def text(max_length: int, *, min_length: int | None = None, **kwargs: Any) -> fields.String:
    """A string field with a length limit (every free-text field has one)."""
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)


class PartialMixin:
    """Every field optional, for PATCH bodies; a named subclass keeps OpenAPI names apart."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)
