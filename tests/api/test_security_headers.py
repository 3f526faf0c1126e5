"""Security headers, CORS for a configured web client, and error bodies without internals."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from service.app import create_app
from tests.factories import auth_headers, make_clinic, make_patient, make_user

ORIGIN = "https://app.example.org"
INTERNALS = ("Traceback", "sqlalchemy", "psycopg", "sqlite3", "INSERT INTO", "SELECT ", ".py")


@pytest.fixture
def staff(session, settings):
    return make_user(session, settings, make_clinic(session))


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def test_api_responses_carry_the_security_headers(client, session, settings, staff):
    patient = make_patient(session, staff.clinic)
    for response in (
        client.get(f"/api/v1/patients/{patient.id}", headers=auth_headers(settings, staff)),
        client.get("/api/v1/patients"),  # an error: 401
        client.get("/api/v1/no-such-thing"),
    ):
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        policy = _directives(headers["Content-Security-Policy"])
        assert policy["default-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in headers


def test_token_responses_keep_their_own_no_store(client, session, settings, staff):
    response = client.post(
        "/api/v1/auth/token", json={"username": staff.email, "password": "wrong password"}
    )
    assert response.headers["Cache-Control"] == "no-store"


def test_the_docs_page_may_load_swagger_ui_and_its_own_script_only(client):
    page = client.get("/docs")
    assert page.status_code == 200
    policy = _directives(page.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    # The assets are served by the service itself (service/api/docs.py): no other origin.
    assert policy["script-src"][0] == "'self'"
    assert not [source for source in policy["script-src"] if "http" in source]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["connect-src"] == ["'self'"]  # the spec and "try it out"
    assert policy["frame-ancestors"] == ["'none'"]
    # The page's inline script (the Swagger UI set-up) is allowed by its hash, and only it.
    inline = re.findall(rb"<script>(.*?)</script>", page.get_data(), re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert f"'sha256-{digest}'" in policy["script-src"]
    # Every script and stylesheet the page names is the service's own.
    for url in re.findall(rb'(?:src|href)="([^"]+)"', page.get_data()):
        assert url.decode().startswith("/docs/assets/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert client.get("/openapi.json").status_code == 200


def test_hsts_only_when_configured(settings):
    app = create_app(settings, hsts_max_age_s=31536000)
    response = app.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_no_cors_headers_unless_origins_are_configured(client, session, settings, staff):
    response = client.get("/api/v1/me", headers={**auth_headers(settings, staff), "Origin": ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/api/v1/patients",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.fixture
def cors_client(settings, session):
    app = create_app(settings, cors_origins=(ORIGIN, "https://admin.example.org"))
    return app.test_client()


def test_a_configured_origin_gets_cors_headers(cors_client, session, settings, staff):
    preflight = cors_client.options(
        "/api/v1/patients",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    for name in ("authorization", "content-type", "idempotency-key"):
        assert name in allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers

    response = cors_client.get(
        "/api/v1/me", headers={**auth_headers(settings, staff), "Origin": ORIGIN}
    )
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = response.headers["Access-Control-Expose-Headers"]
    for name in ("ETag", "Location", "Retry-After", "Idempotent-Replayed"):
        assert name in exposed


def test_an_unlisted_origin_gets_no_cors_headers(cors_client, session, settings, staff):
    for origin in ("https://evil.example.org", "https://app.example.org.evil.net", "null"):
        response = cors_client.get(
            "/api/v1/me", headers={**auth_headers(settings, staff), "Origin": origin}
        )
        assert "Access-Control-Allow-Origin" not in response.headers, origin


def test_cors_origins_come_from_the_environment():
    from service.config import Settings

    parsed = Settings.from_env(
        {
            "CD20_CORS_ORIGINS": "https://a.example.org/, https://b.example.org",
            "CD20_HSTS_MAX_AGE": "60",
        }
    )
    assert parsed.cors_origins == ("https://a.example.org", "https://b.example.org")
    assert parsed.hsts_max_age_s == 60
    assert Settings.from_env({}).cors_origins == ()


# --- error bodies ------------------------------------------------------------------------------


def _assert_clean_problem(response, status):
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    text = response.get_data(as_text=True)
    for marker in INTERNALS:
        assert marker not in text, (marker, text)
    body = response.get_json()
    assert body["status"] == status
    assert body["code"]


def test_error_bodies_carry_no_internal_detail(client, session, settings, staff):
    headers = auth_headers(settings, staff)
    _assert_clean_problem(client.get("/api/v1/nothing-here"), 404)
    _assert_clean_problem(client.delete("/api/v1/patients", headers=headers), 405)
    _assert_clean_problem(
        client.post(
            "/api/v1/patients", data="{broken", content_type="application/json", headers=headers
        ),
        400,
    )
    _assert_clean_problem(client.get("/api/v1/patients/999999", headers=headers), 404)
    _assert_clean_problem(client.get("/api/v1/patients?page=x", headers=headers), 422)
    body = {
        "mrn": "DUP-1",
        "given_name": "A",
        "family_name": "B",
        "birth_date": "1980-01-01",
        "time_zone": "Europe/Berlin",
    }
    assert client.post("/api/v1/patients", json=body, headers=headers).status_code == 201
    _assert_clean_problem(client.post("/api/v1/patients", json=body, headers=headers), 409)


def test_an_unexpected_failure_is_a_bare_500(settings, session, staff):
    app = create_app(settings)  # its own app: one view is swapped for one that crashes

    def crashing_view(*args, **kwargs):
        raise RuntimeError("connection to 10.0.0.5 failed in /srv/app/service/db.py")

    app.view_functions["me.Me"] = crashing_view
    response = app.test_client().get("/api/v1/me", headers=auth_headers(settings, staff))
    _assert_clean_problem(response, 500)
    assert "10.0.0.5" not in response.get_data(as_text=True)
    assert response.get_json()["code"] == "internal_error"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
