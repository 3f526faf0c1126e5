"""The in-app inbox on the wire: messages and the opaque sync cursor."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import Instant, StrictSchema

CURSOR_PREFIX = "inbox:"
MAX_CURSOR_LENGTH = 64
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class InboxCursor(fields.Field[int]):
    """An opaque string a phone hands back to get what changed after it (a change number inside)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        raw = f"{CURSOR_PREFIX}{int(value)}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not value or len(value) > MAX_CURSOR_LENGTH:
            raise ma.ValidationError("Not a valid inbox cursor.")
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ma.ValidationError("Not a valid inbox cursor.") from exc
        number = raw.removeprefix(CURSOR_PREFIX)
        if not raw.startswith(CURSOR_PREFIX) or not number.isascii() or not number.isdigit():
            raise ma.ValidationError("Not a valid inbox cursor.")
        return int(number)


class InboxMessageSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    reminder_id = fields.Integer(dump_only=True, allow_none=True)
    kind = fields.String(dump_only=True)
    title = fields.String(dump_only=True)
    body = fields.String(dump_only=True)
    created_at = Instant(dump_only=True)
    read_at = Instant(dump_only=True, allow_none=True)


class InboxQueryArgsSchema(StrictSchema):
    since = InboxCursor(
        load_default=0,
        metadata={
            "type": "string",
            "description": "The `next` cursor of the previous sync; omit it for everything",
        },
    )
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)
    )


class InboxChangesSchema(StrictSchema):
    items = fields.List(fields.Nested(InboxMessageSchema), required=True)
    next = InboxCursor(
        attribute="cursor",
        required=True,
        metadata={"type": "string", "description": "Pass as `since` to get later changes"},
    )
    has_more = fields.Boolean(
        required=True, metadata={"description": "More changes wait after `next`"}
    )
