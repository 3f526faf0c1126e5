"""Tokens: log in, refresh, log out; patient invitations and account activation."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.auth import (
    ActivationSchema,
    InvitationSchema,
    LogoutSchema,
    RefreshRequestSchema,
    TokenPairSchema,
    TokenRequestSchema,
)
from service.accounts import users
from service.api.context import actor, audit_clinic, db, login_required, settings
from service.api.contract import AUTHENTICATION, PATIENT_APP, STAFF, operation

blp = Blueprint("auth", __name__, description="Log in, tokens, patient account activation")

# RFC 6749 section 5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("/auth/token")
class Token(MethodView):
    @operation(
        "login",
        AUTHENTICATION,
        description="""
        An access token (Authorization: Bearer, minutes) and a refresh token (days). Repeated
        failures from one address lock that address out for a while: 401 account_locked with
        Retry-After, the same answer for every e-mail, registered or not.
        """,
        refusals={401: ("invalid_credentials", "account_locked")},
    )
    @blp.doc(security=[])
    @blp.arguments(TokenRequestSchema())
    @blp.response(200, TokenPairSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Log in with e-mail and password."""
        outcome = users.log_in(db(), settings(), client_address=request.remote_addr, **data)
        db().commit()  # a failed attempt is counted even though the request fails
        if outcome.account is not None:
            audit_clinic(outcome.account.clinic_id, account_id=outcome.account.user_id)
        return outcome.tokens(), NO_STORE


@blp.route("/auth/refresh")
class Refresh(MethodView):
    @operation(
        "refreshToken",
        AUTHENTICATION,
        description="""
        Each refresh token is used once: the answer holds a new pair. Reusing a refresh token
        that was already traded ends its whole family (every token from the same login).
        """,
        refusals={401: ("invalid_token",)},
    )
    @blp.doc(security=[])
    @blp.arguments(RefreshRequestSchema())
    @blp.response(200, TokenPairSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Trade a refresh token for a new pair; a reused one ends its whole family."""
        outcome = users.refresh_session(db(), settings(), **data)
        db().commit()  # a detected reuse revokes the family even though the request fails
        return outcome.tokens(), NO_STORE


@blp.route("/auth/logout")
class Logout(MethodView):
    decorators = [login_required]

    @operation(
        "logout",
        AUTHENTICATION,
        description="""
        With a refresh token, ends its family; without one, every refresh token of the account.
        Access tokens issued before stop working at once.
        """,
    )
    @blp.arguments(LogoutSchema())
    @blp.response(204)
    def post(self, data: dict[str, Any]) -> None:
        """End a refresh token's family (or all of them) and the current access tokens."""
        users.log_out(db(), actor(), **data)
        db().commit()


@blp.route("/auth/activate")
class Activate(MethodView):
    @operation(
        "activateAccount",
        AUTHENTICATION,
        PATIENT_APP,
        description="""
        The patient types the one-time code from the clinic and a new password; the answer is
        the app's first token pair. A wrong, used or expired code is 422 invalid_code.
        """,
        refusals={422: ("invalid_code",)},
    )
    @blp.doc(security=[])
    @blp.arguments(ActivationSchema())
    @blp.response(201, TokenPairSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Activate a patient's account with a one-time code; returns the first tokens."""
        pair = users.activate_account(db(), settings(), **data)
        db().commit()
        return pair, NO_STORE


@blp.route("/patients/<int:patient_id>/invitation")
class PatientInvitation(MethodView):
    decorators = [login_required]

    @operation(
        "invitePatient",
        STAFF,
        description="""
        The code (shown once) lets the patient activate the app account; an earlier code stops
        working. 409 already_exists when the patient's account is already active.
        """,
        refusals={409: ("already_exists",)},
    )
    @blp.response(201, InvitationSchema)
    def post(self, patient_id: int) -> Any:
        """Issue a one-time activation code for the patient's app (earlier codes stop working)."""
        issued = users.invite_patient(db(), actor(), settings(), patient_id=patient_id)
        db().commit()
        return issued, NO_STORE
