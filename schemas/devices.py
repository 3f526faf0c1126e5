"""Push devices on the wire."""

from __future__ import annotations

from marshmallow import fields

from schemas.common import Instant, StrictSchema, Vocabulary, text
from service.vocabulary import Platform

MAX_TOKEN_LENGTH = 4096


class DeviceSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    platform = fields.String(required=True, validate=Vocabulary(Platform))
    # The push token goes in and is never echoed back.
    token = text(MAX_TOKEN_LENGTH, min_length=1, required=True, load_only=True)
    created_at = Instant(dump_only=True)
    last_seen_at = Instant(dump_only=True)
