"""Request ids, and the one audit event every API request leaves behind (45 CFR 164.312(b)).

Written here, once, after the response is made, not in the views: a view cannot forget it, and
an error response is audited like a success. A write's event commits in the same transaction as
the write (service.api.middleware.transaction); a read, or a refused or rolled-back request,
gets a transaction of its own, so it still leaves its event. Where the deployment spools reads'
events (CD20_AUDIT_SPOOL_DIR), a GET's or HEAD's event is appended to the host's spool instead,
before the answer leaves, and moved into the trail in batches (service.trust.audit_spool).

The source address is `request.remote_addr`. Behind a reverse proxy that is the proxy's address;
deploy with werkzeug's ProxyFix (trusting exactly the proxies in front) to record the client's.
"""

from __future__ import annotations

import atexit
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, request
from marshmallow import Schema
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from service.accounts.tokens import authenticate
from service.api.context import SAFE_METHODS, db, settings
from service.api.middleware import transaction
from service.api.paths import API_PREFIX
from service.core.access import Actor
from service.db import utcnow
from service.errors import InvalidToken
from service.trust import audit
from service.trust.audit_spool import AuditSpool

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PARAM = re.compile(r"<(?:[^:<>]+:)?(?P<name>[^<>]+)>")
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PROBLEM_CODE = re.compile(r"[a-z0-9_]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,18}")

# Where the app keeps its AuditSpool, when reads' events are spooled.
SPOOL = "cd20_audit_spool"
# Probes, metrics and the API description carry no patient data.
NOT_AUDITED = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
# The regimen catalog is reference data: reading it is not audited (changing it is not possible).
CATALOG = API_PREFIX + "/regimens"

# URL collection segment -> the resource type its items are.
COLLECTIONS = {
    "patients": "patient",
    "plans": "plan",
    "doses": "dose",
    "monitoring": "monitoring_task",
    "screening": "screening_item",
    "readiness": "dose_readiness",
    "labs": "lab_result",
    "reminders": "reminder",
    "inbox": "inbox_message",
    "devices": "device",
    "users": "user",
    "alerts": "staff_alert",
    "regimens": "regimen",
    "audit": "audit",
    "clinic": "clinic",
    "staff": "staff_view",
    "calendar-feed": "calendar_feed",
    "feeds": "calendar_feed",
    "observations": "lab_result",
}
STAFF_VIEWS = frozenset({"schedule", "worklist"})
# A POST to one of these runs an operation on the object the URL names before it.
OPERATIONS = frozenset(
    {"administration", "override", "ack", "read", "resolve", "invitation", "password", "end"}
)
METHOD_ACTIONS = {
    "GET": "read",
    "HEAD": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}


def init_app(app: Flask) -> None:
    app.before_request(assign_request_id)
    app.after_request(echo_request_id)
    transaction.add_record(app, audit_record)
    configured = app.extensions["cd20_settings"]
    if configured.audit_spool_dir:
        spool = AuditSpool(
            Path(configured.audit_spool_dir), flush_interval_s=configured.audit_spool_flush_s
        )
        spool.check_writable()
        app.extensions[SPOOL] = spool
        spool.start()
        atexit.register(spool.close)


def audit_spool() -> AuditSpool | None:
    """Where reads' events go first, when the deployment spools them."""
    spool: AuditSpool | None = current_app.extensions.get(SPOOL)
    return spool


def assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.request_started = utcnow()


def _request_id() -> str:
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex
    request_id: str = g.request_id
    return request_id


def echo_request_id(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = _request_id()
    return response


def audit_record(response: Response) -> transaction.RequestRecord | None:
    """The request's audit event, for the response about to be sent."""
    if not _is_audited():
        return None
    who = _actor(response)
    seen = _describe(response, _request_id(), who)
    spool = audit_spool()
    if spool is not None and request.method in SAFE_METHODS:

        def spooled_audit_event(session: Session, *, with_changes: bool) -> None:
            spool.append(audit.event_row(session, who, seen))

        return spooled_audit_event

    def audit_event(session: Session, *, with_changes: bool) -> None:
        audit.record_event(session, who, seen)

    return audit_event


def _is_audited() -> bool:
    path = request.path
    if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
        return False
    if path.removeprefix(API_PREFIX) in NOT_AUDITED or request.method == "OPTIONS":
        return False
    return not (
        request.method in ("GET", "HEAD") and (path == CATALOG or path.startswith(CATALOG + "/"))
    )


def _actor(response: Response) -> Actor | None:
    """The authenticated caller; after a successful log-in, the account the tokens are for.

    A success answered before the view ran (an idempotent replay) was authenticated there:
    the bearer token and its user row name the caller. A refused request names nobody it did
    not authenticate.
    """
    known: Actor | None = g.get("actor")
    if known is not None or response.status_code >= 400:
        return known
    if request.path.startswith(API_PREFIX + "/auth/"):
        token = (_json(response) or {}).get("access_token")
    else:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else None
    if not isinstance(token, str) or not token:
        return None
    try:
        return authenticate(db(), settings(), token)
    except InvalidToken:
        return None


@dataclass
class _Route:
    resource_type: str = "unknown"
    resource_id: str | None = None
    operation: str | None = None
    subjects: list[tuple[str, int]] = field(default_factory=list)
    url_ids: dict[str, Any] = field(default_factory=dict)


def _route(rule: str, view_args: dict[str, Any], who: Actor | None) -> _Route:
    """Read the resource off the URL rule: /plans/<plan_id>/screening/<item_code> names the
    screening item "<plan_id>/<item_code>" of plan <plan_id>."""
    route = _Route()
    segments = rule.removeprefix(API_PREFIX).strip("/").split("/")
    if segments[0] == "auth":
        route.resource_type, route.operation = "session", segments[-1]
        return route
    named: tuple[str, str | None] = ("unknown", None)  # the last object the URL names by id
    for position, segment in enumerate(segments):
        param = _PARAM.fullmatch(segment)
        if param:
            name, value = param["name"], view_args.get(param["name"])
            if name.endswith("_id") and isinstance(value, int):
                route.resource_id = str(value)
                route.subjects.append((route.resource_type, value))
                route.url_ids[name] = value
            elif name.endswith("code") and isinstance(value, str):
                code = value if _CODE.fullmatch(value) else "invalid"
                parent = route.subjects[-1][1] if route.subjects else None
                route.resource_id = f"{parent}/{code}" if parent is not None else code
                route.url_ids[name] = code
            # Any other parameter (a calendar feed's secret, say) is never recorded.
            named = (route.resource_type, route.resource_id)
        elif segment == "me":
            route.resource_type = "user"
            route.resource_id = str(who.user_id) if who else None
            route.subjects.append((audit.OWN, 0))
            named = (route.resource_type, route.resource_id)
        elif segment in OPERATIONS and position == len(segments) - 1:
            route.operation = segment
            route.resource_type, route.resource_id = named
        elif segment in COLLECTIONS:
            route.resource_type, route.resource_id = COLLECTIONS[segment], None
            if segment == "clinic":
                route.resource_id = str(who.clinic_id) if who else None
                named = (route.resource_type, route.resource_id)
        elif segment in STAFF_VIEWS and route.resource_type == "staff_view":
            route.resource_id = segment
        elif position == 0:
            route.resource_type = segment[:32]
        # Other words (/fhir, /upcoming) are views of the resource already named.
    return route


def _describe(response: Response, request_id: str, who: Actor | None) -> audit.AuditedRequest:
    rule, view_args = _matched_rule()
    route = _route(rule, view_args, who) if rule else _Route()
    method = request.method
    action = METHOD_ACTIONS.get(method, "execute")
    if method == "POST" and route.operation is not None:
        action = "execute"
    details: dict[str, Any] = dict(route.url_ids)
    details.update(_query_ids())
    # What a view without a login names itself (a calendar feed fetched by its secret URL).
    route.subjects.extend(g.get("audit_subjects", ()))
    details.update(g.get("audit_details", {}))
    status = response.status_code
    body = _json(response) if status == 201 or status >= 400 else None
    if action == "create" and status == 201 and route.resource_id is None:
        new_id = (body or {}).get("id")
        if isinstance(new_id, int):
            route.resource_id = str(new_id)
            if audit.resolvable(route.resource_type):
                route.subjects.append((route.resource_type, new_id))
    account_id = g.get("audit_account_id")
    if who is None and isinstance(account_id, int):
        details["account_id"] = account_id
    code = (body or {}).get("code") if status >= 400 else None
    if isinstance(code, str) and _PROBLEM_CODE.fullmatch(code):
        details["code"] = code
    return audit.AuditedRequest(
        request_id=request_id,
        method=method,
        path_template=rule[:200] if rule else None,
        action=action,
        resource_type=route.resource_type,
        resource_id=route.resource_id,
        status_code=status,
        source_address=(request.remote_addr or "")[:45] or None,
        occurred_at=g.get("request_started") or utcnow(),
        subjects=route.subjects,
        operation=route.operation,
        details=details,
        clinic_id=g.get("audit_clinic_id"),
    )


def _matched_rule() -> tuple[str | None, dict[str, Any]]:
    """The URL rule; for a 405 the rule the path would match with an allowed method."""
    if request.url_rule is not None:
        return request.url_rule.rule, dict(request.view_args or {})
    error = request.routing_exception
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        allowed = next(iter(error.valid_methods))
        adapter = current_app.url_map.bind_to_environ(request.environ)
        try:
            rule, view_args = adapter.match(method=allowed, return_rule=True)
        except HTTPException:
            return None, {}
        return rule.rule, dict(view_args)
    return None, {}


def _query_ids() -> dict[str, int]:
    """Filters by id the route reads (/audit?patient_id=5) are kept; a parameter the route does
    not declare was ignored, and recording it would name a patient the request never touched.
    Every other query value may be free text."""
    if not request.args:
        return {}
    used = _query_parameters()
    return {
        name: int(value)
        for name, value in request.args.items()
        if name in used and name.endswith("_id") and len(name) <= 32 and _NUMBER.fullmatch(value)
    }


def _query_parameters() -> frozenset[str]:
    """The query parameters the matched view declares (flask-smorest's @blp.arguments)."""
    view = current_app.view_functions.get(request.endpoint or "")
    method = getattr(getattr(view, "view_class", None), request.method.lower(), None)
    apidoc: dict[str, Any] = getattr(method, "_apidoc", {})
    names: set[str] = set()
    for parameter in apidoc.get("arguments", {}).get("parameters", ()):
        if parameter.get("in") != "query":
            continue
        schema = parameter.get("schema")
        if isinstance(schema, type) and issubclass(schema, Schema):
            schema = schema()
        if isinstance(schema, Schema):
            names.update(field.data_key or name for name, field in schema.fields.items())
    return frozenset(names)


def _json(response: Response) -> dict[str, Any] | None:
    if not response.is_json or response.is_streamed:
        return None
    body = response.get_json(silent=True)
    return body if isinstance(body, dict) else None
