"""/docs works on a closed network: every asset the page loads is served by the service itself."""

from __future__ import annotations

import re

SRC = re.compile(r'(?:src|href)="([^"]+)"')


def test_the_docs_page_loads_only_assets_the_service_serves(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    references = SRC.findall(page.get_data(as_text=True))
    assert len(references) >= 3
    for reference in references:
        assert reference.startswith("/docs/assets/"), reference
        with client.get(reference) as asset:
            assert asset.status_code == 200, reference
            assert len(asset.get_data()) > 100, reference


def test_the_docs_policy_names_no_other_origin(client):
    policy = client.get("/docs").headers["Content-Security-Policy"]
    assert "http" not in policy
    assert "script-src 'self' 'sha256-" in policy


def test_the_script_the_page_runs_is_swagger_ui(client):
    with client.get("/docs/assets/swagger-ui-bundle.js") as bundle:
        assert bundle.mimetype in ("text/javascript", "application/javascript")
        assert b"SwaggerUIBundle" in bundle.get_data()
    with client.get("/docs/assets/%2e%2e/__init__.py") as outside:
        assert outside.status_code == 404
