"""Application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from service.config import Settings
from service.db import init_engine


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = (settings or Settings.from_env()).with_overrides(**overrides)
    settings.check()
    init_engine(settings.database_url, echo=settings.sql_echo)

    app = Flask("service")
    app.config.update(
        SECRET_KEY=settings.signing_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        API_TITLE="cd20-monitor",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
    )
    app.extensions["cd20_settings"] = settings
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from service.api import register_api
    from service.api.context import close_session

    app.teardown_appcontext(close_session)
    register_api(app)
    from service.console.registration import register_console

    register_console(app, settings)
    return app
