"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

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


def _status_body(**properties: str) -> dict[str, Any]:
    """An OpenAPI 200 response whose JSON body has these constant string members."""
    schema = {
        "type": "object",
        "properties": {
            name: {"type": "string", "enum": [value]} for name, value in properties.items()
        },
        "required": list(properties),
        "additionalProperties": False,
    }
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(security=[], responses=_status_body(status="ok"))
    def get(self) -> dict[str, str]:
        """Report that the process is alive."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.doc(security=[], responses=_status_body(status="ready", database="ok"))
    def get(self) -> dict[str, str]:
        """Report whether the database answers."""
        try:
            db().execute(text("SELECT 1"))
        except Exception as exc:
            raise DatabaseUnavailable() from exc
        return {"status": "ready", "database": "ok"}
