"""The regimen catalog, read-only, for any signed-in user."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import page_of
from schemas.regimens import RegimenQueryArgsSchema, RegimenSchema
from service.api.context import login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.core.paging import Page
from service.protocols import all_regimens, get_regimen

blp = Blueprint("regimens", __name__, url_prefix="/regimens", description="Regimen catalog")


@blp.route("")
class Regimens(MethodView):
    decorators = [login_required]

    @operation("listRegimens", STAFF, PATIENT_APP)
    @blp.arguments(RegimenQueryArgsSchema(), location="query")
    @blp.response(200, page_of(RegimenSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List every regimen in the catalog, with its sources."""
        regimens = [r.as_dict() for r in all_regimens()]
        page, size = args["page"], args["page_size"]
        return Page(regimens[(page - 1) * size : page * size], len(regimens), page, size)


@blp.route("/<string:code>")
class RegimenItem(MethodView):
    decorators = [login_required]

    @operation("getRegimen", STAFF, PATIENT_APP)
    @blp.etag
    @blp.response(200, RegimenSchema)
    def get(self, code: str) -> Any:
        """Read one regimen."""
        return get_regimen(code).as_dict()
