"""Liveness and readiness probes."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from service.api.context import db
from service.errors import DomainError

blp = Blueprint("health", __name__, description="Liveness and readiness")


class DatabaseUnavailable(DomainError):
    status = 503
    code = "database_unavailable"
    title = "The database does not answer"


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(security=[])
    def get(self) -> dict[str, str]:
        """Report that the process is alive."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.doc(security=[])
    def get(self) -> dict[str, str]:
        """Report whether the database answers."""
        try:
            db().execute(text("SELECT 1"))
        except Exception as exc:
            raise DatabaseUnavailable() from exc
        return {"status": "ready", "database": "ok"}
