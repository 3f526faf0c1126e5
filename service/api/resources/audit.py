"""The audit trail, for the clinic's admins to examine."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.audit import AuditEventSchema, AuditQueryArgsSchema
from schemas.common import page_of
from service.api.context import actor, db, login_required
from service.api.contract import ADMIN, operation
from service.api.middleware.auditing import audit_spool
from service.trust import audit

blp = Blueprint("audit", __name__, url_prefix="/audit", description="Audit trail (admins)")


@blp.route("")
class AuditEvents(MethodView):
    decorators = [login_required]

    @operation("listAuditEvents", ADMIN)
    @blp.arguments(AuditQueryArgsSchema(), location="query")
    @blp.response(200, page_of(AuditEventSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List the clinic's audit events, newest first (admin)."""
        # Where reads' events are spooled, this process's are moved first; another process's
        # within CD20_AUDIT_SPOOL_FLUSH. Before the request's session reads: SQLite's snapshot.
        spool = audit_spool()
        if spool is not None:
            spool.flush()
        return audit.list_events(db(), actor(), **args)
