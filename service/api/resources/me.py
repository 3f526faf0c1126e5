"""The caller's own account."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.me import MeSchema, PasswordChangeSchema
from service.accounts import users
from service.api.context import actor, db, login_required, settings
from service.api.contract import PATIENT_APP, STAFF, operation

blp = Blueprint("me", __name__, url_prefix="/me", description="The caller's own account")


@blp.route("")
class Me(MethodView):
    decorators = [login_required]

    @operation(
        "getMe",
        PATIENT_APP,
        STAFF,
        description="""
        The account behind the token: user id, role, clinic and e-mail; `patient_id` only in a
        patient's answer.
        """,
    )
    @blp.response(200, MeSchema)
    def get(self) -> Any:
        """Read who the token belongs to."""
        return users.get_me(db(), actor())


@blp.route("/password")
class MyPassword(MethodView):
    decorators = [login_required]

    @operation("changePassword", PATIENT_APP, STAFF, refusals={429: ("rate_limited",)})
    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    def post(self, data: dict[str, Any]) -> None:
        """Change the password; every session of the account ends."""
        refusal = users.change_password(
            db(), actor(), settings(), client_address=request.remote_addr, **data
        )
        db().commit()  # a wrong current password is counted even though the request fails
        if refusal is not None:
            raise refusal
