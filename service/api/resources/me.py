"""The caller's own account."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.me import MeSchema, MeUpdateSchema, PasswordChangeSchema
from service.accounts import users
from service.api.context import actor, db, login_required, settings
from service.api.contract import PATIENT_APP, STAFF, operation
from service.api.middleware import conditional
from service.patients import freshness, records

blp = Blueprint("me", __name__, url_prefix="/me", description="The caller's own account")


@blp.route("")
class Me(MethodView):
    decorators = [login_required]

    @operation(
        "getMe",
        PATIENT_APP,
        STAFF,
        description="""
        The account behind the token: user id, role, clinic and e-mail; for a patient also
        `patient_id`, their time zone, reminder preferences and the `version` of those.
        """,
    )
    @blp.etag
    @blp.response(200, MeSchema)
    def get(self) -> Any:
        """Read who the token belongs to, and a patient's time zone and reminder preferences."""
        conditional.strong(blp, freshness.me_stamp(db(), actor()))
        return users.get_me(db(), actor())

    @operation(
        "updateMe",
        PATIENT_APP,
        description="""
        A patient changes their own time zone (an IANA region zone) and reminder preferences;
        the rest of their record stays with the clinic, and staff accounts are refused (403).
        Send the ETag of `GET /me` in If-Match (412 when it is stale, 428 without it). Reminders
        still to come are re-derived in the same transaction, so the next one fires at the new
        local time in the new zone.
        """,
    )
    @blp.etag
    @blp.arguments(MeUpdateSchema())
    @blp.response(200, MeSchema)
    def patch(self, changes: dict[str, Any]) -> Any:
        """Change my time zone and reminder preferences."""
        blp.check_etag(freshness.me_stamp(db(), actor()))
        records.update_my_preferences(db(), actor(), changes)
        db().commit()
        blp.set_etag(freshness.me_stamp(db(), actor()))
        return users.get_me(db(), actor())


@blp.route("/password")
class MyPassword(MethodView):
    decorators = [login_required]

    @operation("changePassword", PATIENT_APP, STAFF, refusals={429: ("rate_limited",)})
    @blp.arguments(PasswordChangeSchema())
    @blp.response(204)
    def post(self, data: dict[str, Any]) -> None:
        """Change the password; every session of the account ends."""
        refusal = users.change_password(
            db(), actor(), settings(), client_address=request.remote_addr, **data
        )
        db().commit()  # a wrong current password is counted even though the request fails
        if refusal is not None:
            raise refusal
