"""Shared wire-format pieces: pagination, problem details, common field types."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import marshmallow as ma
from marshmallow import fields, validate

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class StrictSchema(ma.Schema):
    """Rejects unknown fields (marshmallow's default, stated so no subclass forgets it)."""

    class Meta:
        unknown = ma.RAISE
        ordered = True


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
    """RFC 9457 problem details, with a stable machine-readable `code`."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"description": "Stable machine-readable error code"})
    errors = fields.Dict(metadata={"description": "Per-field messages"})


class TimeZoneField(fields.String):
    """An IANA time zone name, e.g. Europe/Berlin."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs)
        if name not in _zone_names():
            raise ma.ValidationError("Not a known IANA time zone.")
        return name


_ZONES: set[str] = set()


def _zone_names() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


def text(max_length: int, *, min_length: int | None = None, **kwargs: Any) -> fields.String:
    """A string field with a length limit (every free-text field has one)."""
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)


class PartialMixin:
    """Every field optional, for PATCH bodies; a named subclass keeps OpenAPI names apart."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)
