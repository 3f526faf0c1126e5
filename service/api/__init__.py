"""HTTP layer: register the middleware and the resource blueprints on a Flask app.

problems     errors as application/problem+json, and the Api that renders them
contract     the OpenAPI document for generated clients: operation ids, audiences, refusals
converters   ids in paths
context      the request's session, settings and acting user
middleware/  request ids and audit, body limit, idempotency keys, rate limits, security headers,
             and the request's one commit (with its audit event and idempotency record)
resources/   one flask-smorest blueprint per resource, each a few thin views
"""

from __future__ import annotations

from flask import Flask

from service.api import contract, docs
from service.api.converters import BigIdConverter, IdConverter
from service.api.paths import API_PREFIX
from service.api.problems import Api


def register_api(app: Flask) -> Api:
    from service.api.middleware import (
        auditing,
        body_limit,
        conditional,
        idempotency,
        ratelimit,
        rendered,
        security_headers,
        transaction,
    )
    from service.api.resources import (
        audit,
        auth,
        calendar,
        clinic,
        doses,
        fhir,
        health,
        inbox,
        labs,
        me,
        metrics,
        monitoring,
        patients,
        plans,
        regimens,
        reminders,
        screening,
        staff,
    )

    # Before any rule with an id is added.
    app.url_map.converters.update(int=IdConverter, bigint=BigIdConverter)

    auditing.init_app(app)  # request ids, and one audit event per API request

    # Swagger UI from the package, not a CDN (before the Api reads its settings).
    app.config["OPENAPI_SWAGGER_UI_URL"] = docs.ASSETS_URL
    docs.install(app)

    api = Api(
        app,
        spec_kwargs={
            "info": contract.INFO,
            "servers": contract.SERVERS,
            "security": [{"bearerAuth": []}],
        },
    )
    contract.install_converters(api)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    api.register_blueprint(health.blp, url_prefix=API_PREFIX)
    # Probes also at the root, where orchestrators look for them.
    app.add_url_rule("/healthz", "healthz", health.Health.as_view("healthz_root"))
    app.add_url_rule("/readyz", "readyz", health.Ready.as_view("readyz_root"))
    api.register_blueprint(metrics.blp, url_prefix=API_PREFIX)
    app.add_url_rule("/metrics", "metrics_root", metrics.Metrics.as_view("metrics_root"))
    # In this order: registration order is the order of the docs.
    for resource in (
        auth,
        me,
        inbox,
        clinic,
        regimens,
        patients,
        plans,
        screening,
        doses,
        monitoring,
        labs,
        staff,
        reminders,
        calendar,
        fhir,
        audit,
    ):
        blueprint = resource.blp
        api.register_blueprint(blueprint, url_prefix=API_PREFIX + (blueprint.url_prefix or ""))

    body_limit.install(app)
    idempotency.install(app, api)  # after every blueprint: it reads the URL map
    contract.finish_document(app, api)  # after the idempotency header is documented
    ratelimit.install(app, app.extensions["cd20_settings"])
    conditional.install(app)
    rendered.install(app, app.extensions["cd20_settings"].render_store_bytes)
    security_headers.install(app, app.extensions["cd20_settings"])
    # Last: it runs first after the view, so the answer it gives is the one the others see.
    transaction.install(app)
    return api
