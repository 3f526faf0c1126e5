"""The caller's clinic, its settings, and its staff accounts."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.clinics import (
    ClinicSchema,
    ClinicUpdateSchema,
    UserCreateSchema,
    UserQueryArgsSchema,
    UserSchema,
    UserUpdateSchema,
)
from schemas.common import page_of
from service.accounts import users
from service.api.context import actor, db, login_required, settings
from service.api.contract import ADMIN, STAFF, operation
from service.clinics.settings import get_clinic, get_clinic_for_admin, update_clinic
from service.core.outbound import OutboundPolicy

blp = Blueprint("clinic", __name__, description="The caller's clinic and its staff accounts")


@blp.route("/clinic")
class ClinicItem(MethodView):
    decorators = [login_required]

    @operation("getClinic", STAFF, ADMIN)
    @blp.etag
    @blp.response(200, ClinicSchema)
    def get(self) -> Any:
        """Read the clinic (staff)."""
        return get_clinic(db(), actor())

    @operation("updateClinic", ADMIN)
    @blp.etag
    @blp.arguments(ClinicUpdateSchema())
    @blp.response(200, ClinicSchema)
    def patch(self, changes: dict[str, Any]) -> Any:
        """Change the clinic's name, time zone or settings (admin)."""
        clinic = get_clinic_for_admin(db(), actor())
        blp.check_etag(clinic, ClinicSchema)
        outbound = OutboundPolicy.from_settings(settings())
        update_clinic(db(), actor(), clinic, changes, outbound=outbound)
        db().commit()
        return clinic


@blp.route("/users")
class Users(MethodView):
    decorators = [login_required]

    @operation("listUsers", ADMIN)
    @blp.arguments(UserQueryArgsSchema(), location="query")
    @blp.response(200, page_of(UserSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List the clinic's accounts (admin)."""
        return users.list_users(db(), actor(), **args)

    @operation("createUser", ADMIN, refusals={409: ("already_exists",)})
    @blp.arguments(UserCreateSchema())
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Add a staff account to the clinic (admin)."""
        user = users.create_staff_user(db(), actor(), settings(), **data)
        db().commit()
        return user


@blp.route("/users/<int:user_id>")
class UserItem(MethodView):
    decorators = [login_required]

    @operation("getUser", ADMIN)
    @blp.etag
    @blp.response(200, UserSchema)
    def get(self, user_id: int) -> Any:
        """Read an account of the clinic (admin)."""
        return users.get_user(db(), actor(), user_id)

    @operation("updateUser", ADMIN, refusals={409: ("conflict",)})
    @blp.etag
    @blp.arguments(UserUpdateSchema())
    @blp.response(200, UserSchema)
    def patch(self, changes: dict[str, Any], user_id: int) -> Any:
        """Activate, deactivate or change the role of an account (admin; not your own)."""
        user = users.get_user(db(), actor(), user_id)
        blp.check_etag(user, UserSchema)
        users.update_user(db(), actor(), user, changes)
        db().commit()
        return user
