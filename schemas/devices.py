"""Push devices on the wire."""

from __future__ import annotations

from marshmallow import fields, validate

from schemas.common import Instant, StrictSchema, text
from service.vocabulary import Platform, values

MAX_TOKEN_LENGTH = 4096


class DeviceSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    platform = fields.String(required=True, validate=validate.OneOf(values(Platform)))
    # The push token goes in and is never echoed back.
    token = text(MAX_TOKEN_LENGTH, min_length=1, required=True, load_only=True)
    created_at = Instant(dump_only=True)
    last_seen_at = Instant(dump_only=True)
