"""Errors as application/problem+json (RFC 9457), and the flask-smorest Api that renders them."""

from __future__ import annotations

import json
import logging
import traceback
from http import HTTPStatus
from typing import Any

from flask import Response, request
from flask_smorest import Api as SmorestApi
from flask_smorest.utils import prepare_response
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError

from schemas.common import ProblemSchema
from service.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "stale_version",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    428: "precondition_required",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def problem(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or phrase,
        "status": status,
        "code": code or HTTP_CODES.get(status, "error"),
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def domain_problem(error: DomainError) -> Response:
    """A domain refusal as problem+json: its status, stable code, title, detail and fields."""
    return problem(
        error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        errors=error.errors,
        headers=getattr(error, "headers", None),
        **error.extra,
    )


def _field_errors(messages: Any) -> dict[str, Any]:
    """webargs nests errors by location; a single location is unwrapped to field -> messages."""
    if isinstance(messages, dict) and len(messages) == 1:
        ((location, errors),) = messages.items()
        if location in ("json", "query", "querystring", "form", "headers", "files"):
            return errors if isinstance(errors, dict) else {"_body": errors}
    return messages if isinstance(messages, dict) else {"_body": messages}


class Api(SmorestApi):
    """flask-smorest's Api rendering every error as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = "DEFAULT_ERROR"

    def _register_responses(self) -> None:
        """flask-smorest's response components, with the content type errors are sent in."""
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)

    def _register_error_handlers(self) -> None:
        self._app.register_error_handler(HTTPException, self.handle_http_exception)
        self._app.register_error_handler(DomainError, self.handle_domain_error)
        self._app.register_error_handler(StaleDataError, self.handle_stale_data)
        self._app.register_error_handler(IntegrityError, self.handle_integrity_error)
        self._app.register_error_handler(Exception, self.handle_unexpected)

    def handle_http_exception(self, error: HTTPException) -> Response:
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        detail = data.get("message")
        code = None
        if status == 422 or (status == 400 and errors):
            errors = _field_errors(errors)
            if errors.get("_body") == ["Invalid JSON body."] or errors.get("json") == [
                "Invalid JSON body."
            ]:
                code, detail, errors = "malformed_json", "The body is not valid JSON.", None
        if status >= 500:
            detail = None
        elif detail is None and status not in (404, 405):
            detail = error.description
        return problem(
            status,
            code=code,
            detail=detail,
            errors=errors,
            headers=data.get("headers"),
        )

    def handle_domain_error(self, error: DomainError) -> Response:
        return domain_problem(error)

    def handle_stale_data(self, error: StaleDataError) -> Response:
        return problem(
            412,
            code="stale_version",
            detail="The resource was changed by someone else; read it again and retry.",
        )

    def handle_integrity_error(self, error: IntegrityError) -> Response:
        log.info("integrity error mapped to 409: constraint %s", constraint_name(error))
        return problem(409, code="conflict", detail="Conflicts with data already stored.")

    def handle_unexpected(self, error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return self.handle_http_exception(error)
        if isinstance(error, RecursionError) and _too_deep_json():
            # json.loads refuses hostile nesting with RecursionError, not a JSONDecodeError.
            return problem(400, code="malformed_json", detail="The body is nested too deeply.")
        log_failure(log, "unhandled error", error)
        return self.handle_http_exception(InternalServerError())


def log_failure(logger: logging.Logger, message: str, error: BaseException) -> None:
    """Log an exception with its traceback; a database error without its text, which may quote
    the values (PostgreSQL: "Failing row contains (...)", "Key (mrn)=(...) already exists")."""
    database_error = next(
        (e for e in _chain(error) if isinstance(e, DBAPIError)),
        None,
    )
    if database_error is None:
        logger.error(message, exc_info=error)
        return
    orig = database_error.orig
    logger.error(
        "%s: database error %s (SQLSTATE %s)\n%s",
        message,
        type(orig).__name__,
        getattr(orig, "sqlstate", None) or "-",
        "".join(traceback.format_tb(error.__traceback__)),
    )


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def constraint_name(error: IntegrityError) -> str:
    """The violated constraint's name, never the values (PostgreSQL's message quotes them)."""
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if isinstance(name, str) and name:
        return name
    # SQLite names the columns, never the values: "UNIQUE constraint failed: patient.mrn".
    head, _, columns = str(error.orig).partition(" constraint failed: ")
    if columns:
        return f"{head.strip().lower()} ({columns})"
    return type(error.orig).__name__


def _too_deep_json() -> bool:
    if not request.is_json:
        return False
    try:
        json.loads(request.get_data(cache=True))
    except RecursionError:
        return True
    except ValueError:
        return False
    return False
