"""The OpenAPI document as generated clients read it: each operation's id and audience, every
refusal it can answer with (problem+json, with its codes), and the document's front matter.

Views declare what only they know with `@operation(...)`; `finish_document` derives the rest
(401/403 from the login, 404 from path ids, 400/413/422 from a body, 412/428 from If-Match,
429 from the rate limits, 409/422 from Idempotency-Key) once every blueprint is registered.

Views pass schema instances to `@blp.arguments`: given a class, webargs builds a new schema (and
copies its fields) on every request.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from flask_smorest import Blueprint
from flask_smorest.spec.plugins import FlaskPlugin
from marshmallow import fields, validate

from schemas.common import SOMETIMES_ABSENT_KEY, Vocabulary
from service.api.middleware import ratelimit
from service.api.paths import API_PREFIX
from service.api.problems import HTTP_CODES, PROBLEM_MIMETYPE, Api
from service.errors import DomainError

# Tags group operations by who calls them; an operation may serve more than one audience.
PATIENT_APP = "Patient app"
STAFF = "Clinic staff"
ADMIN = "Clinic admin"
INTEGRATIONS = "Integrations"
AUTHENTICATION = "Authentication"
HEALTH = "Health"
AUDIENCES = {
    AUTHENTICATION: "Log in, refresh and end sessions; activate a patient's account.",
    PATIENT_APP: "What the patients' mobile app calls with a patient's token (`/me/...`).",
    STAFF: "Clinicians and nurses: patients, plans, screening, doses, labs, the day's lists.",
    ADMIN: "Clinic admins: the clinic's settings, staff accounts and the audit trail.",
    INTEGRATIONS: "Other systems: FHIR R4B export and import, calendar feeds.",
    HEALTH: "Probes and metrics for operators.",
}

PROTOCOL = """
Anti-CD20 treatment monitoring: treatment plans, pre-treatment screening, dose schedules and
reminders, for the patients' mobile app, clinic staff and integrating systems.

## Client protocol

- **Tokens.** `POST /api/v1/auth/token` (login) answers an access token (minutes) and a refresh
  token (days); send `Authorization: Bearer <access_token>`. On 401 `invalid_token`, trade the
  refresh token at `POST /api/v1/auth/refresh` for a new pair and retry once; each refresh token
  is used once: the same one again within a short grace window (30 s by default) answers the
  same new pair, so two requests refreshing at once both go on; later, a reused one ends its
  whole family (log in again).
- **ETag and If-Match.** Single objects carry an `ETag` header, and list items an `etag` field. A
  `PATCH` or `PUT` must send either back as `If-Match`: without it the answer is 428
  `precondition_required`, with an old one 412 `stale_version` (read the object again, reapply,
  retry). The polled reads (`/me`, `/me/plans`, `/me/inbox`, `/me/reminders/upcoming`, a plan, a
  patient) answer an `ETag`: send it as `If-None-Match` for a 304 with no body while nothing
  changed.
- **Idempotency-Key.** A creating `POST` (201) takes an `Idempotency-Key` header (any unique
  string, e.g. a UUID, per user for 24 hours): a retry with the same key answers the first
  response with `Idempotent-Replayed: true`; the same key with another body is 422
  `idempotency_key_reused`; while the first request still runs, 409 `idempotency_in_flight`.
- **Inbox sync.** `GET /api/v1/me/inbox` without `since` lists everything; its `next` cursor, sent
  as `since` on the next call, returns only what was created or changed after it; repeat while
  `has_more` is true.
- **Errors.** Every error is `application/problem+json` (RFC 9457) with a stable `code` and, for
  invalid fields, `errors` by field. Each operation lists its statuses and the codes each can
  carry. 429 (and a locked login's 401) carry `Retry-After` in seconds.
- **Lists** are pages: `{items, total, page, page_size}`, with `page` and `page_size` arguments.
- **Dates** are `YYYY-MM-DD`; instants RFC 3339 in UTC with milliseconds
  (`2027-01-04T08:00:00.000Z`); a `local_time` carries its zone's offset; time zones are IANA
  names.
"""

INFO = {
    "description": PROTOCOL.strip(),
    "contact": {"name": "cd20-monitor maintainers (see README.md)"},
    "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
}
SERVERS = [
    {
        "url": "{scheme}://{host}",
        "description": "A cd20-monitor server (`cd20 serve` listens on 127.0.0.1:8000)",
        "variables": {
            "scheme": {"default": "http", "enum": ["http", "https"]},
            "host": {"default": "127.0.0.1:8000", "description": "Host and port"},
        },
    }
]

REFUSALS = "x-refusals"
VOCABULARY_KEY = "x-vocabulary"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
}
# Why a generic status is sent, when no domain code says more.
GENERIC = {
    400: ("malformed_json", "bad_request"),
    401: ("unauthenticated", "invalid_token"),
    403: ("forbidden",),
    404: ("not_found",),
    409: ("conflict",),
    412: ("stale_version",),
    413: ("payload_too_large",),
    422: ("validation_failed",),
    428: ("precondition_required",),
    429: ("rate_limited",),
}
GENERIC_MEANINGS = {
    "malformed_json": "the body is not valid JSON",
    "bad_request": "the request cannot be read",
    "unauthenticated": "no access token was sent",
    "invalid_token": "the token is invalid, expired or revoked: refresh it or log in",
    "forbidden": "this account's role may not do this",
    "not_found": "no such object in the caller's reach (another clinic's is 404 too)",
    "conflict": "conflicts with data already stored",
    "stale_version": "If-Match names an old version: read it again and retry",
    "payload_too_large": "the body is over the size limit",
    "validation_failed": "fields are invalid: `errors` names each one",
    "precondition_required": "send If-Match with the ETag you read",
    "rate_limited": "too many attempts: wait Retry-After seconds",
    "idempotency_key_reused": "this Idempotency-Key was used with another body",
    "idempotency_in_flight": "a request with this Idempotency-Key is still running",
}
PARAMETERS = {
    "code": "The readiness item's code (e.g. active_infection, premedication)",
    "item_code": "The checklist item's code (e.g. hbsag, anti_hbc, ig_quant)",
    "kind": "The kind of follow-up monitoring (e.g. hbv_dna)",
    "feed_token": "The secret token of a calendar feed URL",
    "page": "The page to answer, from 1",
    "page_size": "Items per page",
    "limit": "At most this many items in one answer",
}
REGIMEN_CODE = "The regimen's code (e.g. ocrelizumab-iv)"
HEADER_PARAMETERS = {
    "IF_MATCH": "The ETag of the version you read: a stale one is 412, none is 428",
    "IF_NONE_MATCH": "The ETag you hold: 304 with no body while it is current",
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": HEADER_PARAMETERS["IF_NONE_MATCH"],
    "schema": {"type": "string"},
}
IF_NONE_MATCH_REF = {"$ref": "#/components/parameters/IF_NONE_MATCH"}
ETAG = {
    "description": (
        'The answer\'s entity tag (weak, `W/"..."`, on lists): send it as If-None-Match to '
        "poll; an object's is also the If-Match of its PATCH or PUT"
    ),
    "schema": {"type": "string"},
}
ETAG_REF = {"$ref": "#/components/headers/ETAG"}
NOT_MODIFIED = {
    "description": "Not modified: the If-None-Match ETag is current (no body)",
    "headers": {"ETag": ETAG_REF},
}


def operation(
    operation_id: str,
    *audiences: str,
    description: str | None = None,
    refusals: Mapping[int, Iterable[str]] | None = None,
) -> Callable[[Any], Any]:
    """Name an operation for generated clients (camelCase, stable), tag it by audience, and list
    the domain refusals it can answer with beyond those `finish_document` derives."""
    unknown = set(audiences) - set(AUDIENCES)
    if unknown or not audiences:
        raise ValueError(f"unknown audiences {sorted(unknown)} for {operation_id}")
    doc: dict[str, Any] = {"operationId": operation_id, "tags": list(audiences)}
    if description:
        doc["description"] = inspect.cleandoc(description)
    if refusals:
        doc[REFUSALS] = {int(status): list(codes) for status, codes in refusals.items()}
    decorator: Callable[[Any], Any] = Blueprint.doc(**doc)
    return decorator


def install_converters(api: Api) -> None:
    """Field conversions apispec lacks: a length limit on a Dict bounds its keys' count, and a
    Vocabulary validator names its enum (finish_document makes that a component)."""
    plugin: MarshmallowPlugin = api.ma_plugin
    assert plugin.converter is not None, "flask-smorest initialises the plugin with the Api"

    def dict_length(
        self: Any, field: fields.Field[Any], ret: dict[str, Any], **_kwargs: Any
    ) -> dict[str, Any]:
        if not isinstance(field, fields.Dict):
            return {}
        for validator in field.validators:
            if isinstance(validator, validate.Length):
                ret.pop("minLength", None)
                ret.pop("maxLength", None)
                bounds = {"minProperties": validator.min, "maxProperties": validator.max}
                return {name: value for name, value in bounds.items() if value is not None}
        return {}

    def vocabulary_name(
        self: Any, field: fields.Field[Any], ret: dict[str, Any], **_kwargs: Any
    ) -> dict[str, Any]:
        for validator in field.validators:
            if isinstance(validator, Vocabulary):
                return {VOCABULARY_KEY: validator.vocabulary.__name__}
        return {}

    # apispec leaves this method unannotated.
    for function in (dict_length, vocabulary_name):
        plugin.converter.add_attribute_function(function)  # type: ignore[no-untyped-call]


def code_meanings() -> dict[str, str]:
    """Every domain code with its title, from the DomainError classes."""
    meanings = dict(GENERIC_MEANINGS)
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        meanings.setdefault(cls.code, cls.title[:1].lower() + cls.title[1:])
    return meanings


def finish_document(app: Flask, api: Api) -> None:
    """Complete every operation's error responses and descriptions, and the front matter."""
    # apispec's to_dict hands out its own path and component dicts: changes here are served.
    spec = api.spec.to_dict()
    paths: dict[str, Any] = spec["paths"]
    meanings = code_meanings()
    limited = {*ratelimit.LIMITED_ENDPOINTS, ratelimit.FEED_ENDPOINT}
    endpoints = {
        (FlaskPlugin.flaskpath2openapi(rule.rule), method.lower()): rule.endpoint
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
    }
    for path, item in paths.items():
        path_params = item.get("parameters", [])
        for param in path_params:
            if param.get("name") == "code" and path.startswith(API_PREFIX + "/regimens/"):
                param.setdefault("description", REGIMEN_CODE)
            _describe_parameter(param)
        for method, op in item.items():
            if method == "parameters":
                continue
            _conditional_get(op, spec["components"])
            _finish_operation(
                op,
                has_path_ids=bool(path_params),
                rate_limited=endpoints.get((path, method)) in limited,
                meanings=meanings,
            )
            for param in op.get("parameters", []):
                if "$ref" not in param:
                    _describe_parameter(param)
                    vocabulary = param.get("schema", {}).pop(VOCABULARY_KEY, None)
                    if vocabulary is not None:
                        param["description"] = (
                            param.get("description", "") + f" (a {vocabulary} value)"
                        ).strip()
    _finish_components(spec["components"], paths)
    _narrow_codes(spec["components"]["schemas"], paths)
    for name, text in HEADER_PARAMETERS.items():
        if name in spec["components"].get("parameters", {}):
            spec["components"]["parameters"][name]["description"] = text
    _drop_unused(spec["components"], paths)
    # The blueprints' tags (one per module) give way to the audiences the operations carry.
    api.spec._tags[:] = [{"name": name, "description": text} for name, text in AUDIENCES.items()]


def _conditional_get(op: dict[str, Any], components: dict[str, Any]) -> None:
    """A read that answers 304 documents the protocol whole: the If-None-Match it takes, the
    ETag its 200 and 304 carry. flask-smorest documents that for @blp.etag views only; the
    polled lists answer 304 from their stamps, and the calendars through werkzeug."""
    responses: dict[str, Any] = op["responses"]
    if "304" not in responses:
        return
    # Copies: every app builds its own document from these.
    components.setdefault("parameters", {})["IF_NONE_MATCH"] = copy.deepcopy(IF_NONE_MATCH)
    components.setdefault("headers", {})["ETAG"] = copy.deepcopy(ETAG)
    components.setdefault("responses", {})["NOT_MODIFIED"] = copy.deepcopy(NOT_MODIFIED)
    parameters: list[dict[str, Any]] = op.setdefault("parameters", [])
    if IF_NONE_MATCH_REF not in parameters:
        parameters.append(dict(IF_NONE_MATCH_REF))
    responses["304"] = {"$ref": "#/components/responses/NOT_MODIFIED"}
    for status, response in responses.items():
        if status.startswith("2"):
            response.setdefault("headers", {})["ETag"] = dict(ETAG_REF)


def _finish_operation(
    op: dict[str, Any], *, has_path_ids: bool, rate_limited: bool, meanings: Mapping[str, str]
) -> None:
    declared: dict[int, list[str]] = op.pop(REFUSALS, {})
    responses: dict[str, Any] = op["responses"]
    refs = {p.get("$ref", "").rsplit("/", 1)[-1] for p in op.get("parameters", [])}
    public = op.get("security") == []
    statuses: dict[int, list[str]] = {}

    def add(status: int, *codes: str) -> None:
        statuses.setdefault(status, [])
        statuses[status].extend(code for code in codes if code not in statuses[status])

    for status in [int(s) for s in responses if s.isdigit() and int(s) >= 400]:
        add(status)
    if not public:
        add(401, *GENERIC[401])
        add(403, *GENERIC[403])
    if has_path_ids:
        add(404, *GENERIC[404])
    if "requestBody" in op:
        add(400, "malformed_json")
        add(413, *GENERIC[413])
        add(422, *GENERIC[422])
    if "IF_MATCH" in refs:
        add(412, *GENERIC[412])
        add(428, *GENERIC[428])
    if "IdempotencyKey" in refs:
        add(409, "idempotency_in_flight")
        add(422, "idempotency_key_reused")
    if rate_limited:
        add(429, *GENERIC[429])
    for status, codes in declared.items():
        add(status, *codes)
    for status, codes in statuses.items():
        if not codes:
            codes.extend(GENERIC.get(status, (HTTP_CODES.get(status, "error"),)))
    for key in [s for s in responses if s == "default" or (s.isdigit() and int(s) >= 400)]:
        del responses[key]
    for status in sorted(statuses):
        responses[str(status)] = _problem_response(status, statuses[status], meanings)
    op["description"] = _describe_operation(op)


def _problem_response(status: int, codes: list[str], meanings: Mapping[str, str]) -> Any:
    listed = "; ".join(f"`{code}`: {meanings.get(code, code)}" for code in codes)
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}. `code` is one of: {listed}.",
        "content": {PROBLEM_MIMETYPE: {"schema": PROBLEM_REF}},
        # Named by _narrow_codes once every operation is done.
        REFUSALS: codes,
    }
    if status == 429 or "account_locked" in codes:
        response["headers"] = {"Retry-After": RETRY_AFTER}
    return response


def _narrow_codes(schemas: dict[str, Any], paths: dict[str, Any]) -> None:
    """Each error response's schema: the Problem with `code` narrowed to an enum of exactly
    the codes it can carry, one named component per set of codes (a class each in a generated
    client). A set of one or two codes is named after them (ProblemNotFound,
    ProblemUnauthenticatedOrInvalidToken); a longer one after the first operation and status
    answering it (UpdateDoseProblem409)."""
    names: dict[frozenset[str], str] = {}
    for item in paths.values():
        for method, op in item.items():
            if method == "parameters":
                continue
            for status, response in op["responses"].items():
                codes: list[str] | None = response.pop(REFUSALS, None)
                if codes is None:
                    continue
                key = frozenset(codes)
                if key not in names:
                    if len(codes) <= 2:
                        name = "Problem" + "Or".join(_camel(code) for code in codes)
                    else:
                        name = _camel(op["operationId"]) + f"Problem{status}"
                    names[key] = name
                    schemas[name] = _problem_with_codes(sorted(codes))
                content = response["content"][PROBLEM_MIMETYPE]
                content["schema"] = {"$ref": SCHEMA_REF + names[key]}


def _problem_with_codes(codes: list[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    return {
        "description": f"A problem whose `code` is one of: {listed}.",
        "allOf": [
            dict(PROBLEM_REF),
            {
                "type": "object",
                "required": ["code"],
                "properties": {"code": {"type": "string", "enum": codes}},
            },
        ],
    }


def _camel(name: str) -> str:
    return "".join(word[:1].upper() + word[1:] for word in name.split("_"))


def _describe_operation(op: dict[str, Any]) -> str:
    """The view's own description (or its summary), then who calls it and the protocol it uses."""
    refs = {p.get("$ref", "").rsplit("/", 1)[-1] for p in op.get("parameters", [])}
    notes = [f"Audience: {', '.join(op.get('tags', []))}."]
    if op.get("security") == []:
        notes.append("No token needed.")
    if "IF_MATCH" in refs:
        notes.append("Send the ETag you read as If-Match: none is 428, a stale one 412.")
    if "IF_NONE_MATCH" in refs:
        notes.append("Answers an ETag; send it back as If-None-Match for a 304 while current.")
    if "IdempotencyKey" in refs:
        notes.append("Send an Idempotency-Key so that a retry cannot create it twice.")
    return "\n\n".join([op.get("description") or op.get("summary", ""), " ".join(notes)])


def _describe_parameter(param: dict[str, Any]) -> None:
    name = param.get("name", "")
    schema = param.get("schema", {})
    if name.endswith("_id") and schema.get("type") == "integer":
        schema["format"] = "int64"
    if "description" not in param:
        if name in PARAMETERS:
            param["description"] = PARAMETERS[name]
        elif name.endswith("_id"):
            thing = name.removesuffix("_id").replace("_", " ")
            param["description"] = f"The {thing}'s id"


def _finish_components(components: dict[str, Any], paths: dict[str, Any]) -> None:
    schemas: dict[str, Any] = components.get("schemas", {})
    requests, responses = _split_directions(schemas, paths)
    for name, schema in list(schemas.items()):
        properties: dict[str, Any] = schema.get("properties", {})
        hidden = "readOnly" if name in requests else "writeOnly"
        for field_name in [n for n, p in properties.items() if p.get(hidden)]:
            del properties[field_name]
        if "required" in schema:
            schema["required"] = [n for n in schema["required"] if n in properties]
            if not schema["required"]:
                del schema["required"]
        for field_name, prop in properties.items():
            _int64_ids(field_name, prop)
            _typed_nullable(prop)
            fallback = name + field_name.title().replace("_", "")
            _named_enum(prop, schemas, fallback)
            if isinstance(prop.get("items"), dict):
                _named_enum(prop["items"], schemas, fallback + "Item")
        sometimes_absent = {n for n, p in properties.items() if p.pop(SOMETIMES_ABSENT_KEY, False)}
        if name in responses and properties:
            # What the server sends has every field (null for "none"), but those few that are
            # marked as sometimes absent.
            schema["required"] = [n for n in properties if n not in sometimes_absent]


def _split_directions(schemas: dict[str, Any], paths: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Names of the request and the response schemas. One used both ways (its read-only fields
    only sent, its write-only ones only received) gets a copy named ...Input for requests, so a
    generated client has a model for each direction."""
    bodies: list[Any] = []
    answers: list[Any] = []
    for item in paths.values():
        for method, op in item.items():
            if method == "parameters":
                continue
            if "requestBody" in op:
                bodies.append(op["requestBody"])
            answers.extend(r for s, r in op["responses"].items() if s.isdigit() and int(s) < 400)
    requests = _closure(schemas, _refs(bodies))
    responses = _closure(schemas, _refs(answers))
    both = requests & responses
    renamed = {name: name + "Input" for name in both}
    for name, new_name in renamed.items():
        schemas[new_name] = copy.deepcopy(schemas[name])
    for target in [*bodies, *(schemas[n] for n in (requests - both) | set(renamed.values()))]:
        _rename_refs(target, renamed)
    return (requests - both) | set(renamed.values()), responses


SCHEMA_REF = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_REF):
                found.add(value.removeprefix(SCHEMA_REF))
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _closure(schemas: dict[str, Any], names: set[str]) -> set[str]:
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            pending.extend(_refs(schemas[name]))
    return seen


def _rename_refs(node: Any, renamed: Mapping[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.removeprefix(SCHEMA_REF) in renamed:
            node["$ref"] = SCHEMA_REF + renamed[ref.removeprefix(SCHEMA_REF)]
        for value in node.values():
            _rename_refs(value, renamed)
    elif isinstance(node, list):
        for value in node:
            _rename_refs(value, renamed)


def _drop_unused(components: dict[str, Any], paths: dict[str, Any]) -> None:
    """flask-smorest's shared error responses (replaced by each operation's own) and its
    pagination header schema (lists page in the body) are referenced by nothing."""
    for section in ("responses", "schemas"):
        entries: dict[str, Any] = components.get(section, {})
        while True:
            text = json.dumps([paths, components])
            unused = [n for n in entries if f'"#/components/{section}/{n}"' not in text]
            if not unused:
                break
            for name in unused:
                del entries[name]


def _int64_ids(name: str, prop: dict[str, Any]) -> None:
    # ...by: the id of the user who did it (recorded_by).
    if (name == "id" or name.endswith(("_id", "_by"))) and prop.get("type") == "integer":
        prop["format"] = "int64"
    if name.endswith("_ids") and prop.get("items", {}).get("type") == "integer":
        prop["items"]["format"] = "int64"


def _named_enum(prop: dict[str, Any], schemas: dict[str, Any], fallback: str) -> None:
    """An enum becomes a named component (one type per vocabulary in a generated client), used
    through allOf so that `nullable`, `readOnly` and a description stay beside it. A nullable
    enum needs that: with null among its values, generators invent a type per variant."""
    vocabulary = prop.pop(VOCABULARY_KEY, None)
    if "enum" not in prop or (vocabulary is None and not prop.get("nullable")):
        return
    enum = {"type": "string", "enum": [v for v in prop["enum"] if v is not None]}
    name = vocabulary or next((n for n, e in schemas.items() if e == enum), fallback)
    if schemas.get(name, enum) != enum:
        name += "Value"
    schemas.setdefault(name, enum)
    del prop["enum"]
    prop.pop("type", None)
    prop["allOf"] = [{"$ref": SCHEMA_REF + name}]


def _typed_nullable(prop: dict[str, Any]) -> None:
    """apispec writes a nullable nested object as anyOf(untyped null object, $ref); clients then
    type it as an untyped object. `allOf: [$ref]` with `nullable` keeps the type."""
    choices = prop.get("anyOf")
    if not choices or len(choices) != 2:
        return
    refs = [c for c in choices if "$ref" in c]
    nulls = [c for c in choices if c.get("nullable") and "$ref" not in c]
    if len(refs) == 1 and len(nulls) == 1:
        del prop["anyOf"]
        prop["allOf"] = refs
        prop["nullable"] = True
