"""The signed-in patient's inbox and push devices."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.devices import DeviceSchema
from schemas.inbox import InboxChangesSchema, InboxMessageSchema, InboxQueryArgsSchema
from service.api.context import actor, caller, db, login_required
from service.api.contract import PATIENT_APP, operation
from service.api.middleware import conditional
from service.api.middleware.conditional import NOT_MODIFIED
from service.patients import devices, freshness
from service.reminders import inbox

blp = Blueprint("inbox", __name__, url_prefix="/me", description="Patient inbox and devices")


@blp.route("/inbox")
class Inbox(MethodView):
    decorators = [login_required]

    @operation(
        "listMyInbox",
        PATIENT_APP,
        description="""
        Without `since`, every message; with the `next` cursor of the previous answer, only
        messages created or changed (read, acknowledged) after it. Repeat while `has_more`.
        """,
    )
    @blp.arguments(InboxQueryArgsSchema(), location="query")
    @blp.response(200, InboxChangesSchema)
    @blp.alt_response(304, description=NOT_MODIFIED)
    def get(self, args: dict[str, Any]) -> Any:
        """List inbox messages created or changed since a cursor."""
        cached = conditional.unchanged((freshness.inbox_stamp(db(), caller()), args))
        return cached or inbox.list_inbox(db(), actor(), **args)


@blp.route("/inbox/<bigint:message_id>/read")
class InboxMessageRead(MethodView):
    decorators = [login_required]

    @operation("markInboxMessageRead", PATIENT_APP)
    @blp.response(200, InboxMessageSchema)
    def post(self, message_id: int) -> Any:
        """Mark an inbox message read."""
        message = inbox.mark_read(db(), actor(), message_id)
        db().commit()
        return message


@blp.route("/devices")
class Devices(MethodView):
    decorators = [login_required]

    @operation(
        "registerDevice",
        PATIENT_APP,
        description="""
        The push token is sent once and never answered back. 201 for a new token, 200 when this
        patient had it already; 409 device_in_use when another account holds it.
        """,
        refusals={409: ("device_in_use",)},
    )
    @blp.arguments(DeviceSchema())
    @blp.response(201, DeviceSchema)
    @blp.alt_response(200, schema=DeviceSchema, description="The token was already registered")
    def post(self, data: dict[str, Any]) -> Any:
        """Register a push token for this patient."""
        device, is_new = devices.register_device(db(), actor(), **data)
        db().commit()
        return device, 201 if is_new else 200


@blp.route("/devices/<int:device_id>")
class DeviceItem(MethodView):
    decorators = [login_required]

    @operation("deleteDevice", PATIENT_APP)
    @blp.response(204)
    def delete(self, device_id: int) -> None:
        """Forget a push token."""
        devices.delete_device(db(), actor(), device_id)
        db().commit()
