"""Calendar feeds on the wire: the secret URL (shown once) and the chair schedule's date range."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validates_schema
from marshmallow.exceptions import ValidationError

from schemas.common import Instant, StrictSchema


class CalendarFeedSchema(StrictSchema):
    url = fields.String(
        dump_only=True,
        metadata={"description": "The secret feed URL; shown once, keep it like a password"},
    )
    webcal_url = fields.String(
        dump_only=True, metadata={"description": "The same URL with the webcal: scheme"}
    )
    created_at = Instant(dump_only=True)


class ChairRangeArgsSchema(StrictSchema):
    from_ = fields.Date(
        data_key="from",
        attribute="start",
        metadata={"description": "First clinic date (YYYY-MM-DD); default a week ago"},
    )
    to = fields.Date(
        attribute="end",
        metadata={"description": "The day after the last (exclusive); default 8 weeks after from"},
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and end <= start:
            raise ValidationError("Must be after 'from'.", field_name="to")
