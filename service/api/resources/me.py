"""The caller's own account."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.me import MeSchema, PasswordChangeSchema
from service.accounts import users
from service.api.context import actor, db, login_required, settings

blp = Blueprint("me", __name__, url_prefix="/me", description="The caller's own account")


@blp.route("")
class Me(MethodView):
    decorators = [login_required]

    @blp.response(200, MeSchema)
    def get(self) -> Any:
        """Read who the token belongs to."""
        return users.get_me(db(), actor())


@blp.route("/password")
class MyPassword(MethodView):
    decorators = [login_required]

    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    def post(self, data: dict[str, Any]) -> None:
        """Change the password; every session of the account ends."""
        users.change_password(db(), actor(), settings(), **data)
        db().commit()
