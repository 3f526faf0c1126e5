"""Prometheus metrics of the reminder runners."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from service.api.contract import HEALTH, operation
from service.db import SessionFactory, utcnow
from service.reminders.metrics import RunnerCollector

blp = Blueprint("metrics", __name__, description="Runner metrics (Prometheus text format)")

_registry = CollectorRegistry(auto_describe=False)
_registry.register(RunnerCollector(SessionFactory, utcnow))


@blp.route("/metrics")
class Metrics(MethodView):
    @operation("getMetrics", HEALTH)
    @blp.doc(security=[], responses={"200": {"description": "Prometheus text exposition"}})
    def get(self) -> Response:
        """Show the runners' backlog, counts and lateness."""
        return Response(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
