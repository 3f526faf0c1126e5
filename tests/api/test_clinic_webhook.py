"""A clinic's webhook URL: refused (422, with the reason) wherever the runner would not send."""

from __future__ import annotations

import pytest

from tests.conftest import _make_app
from tests.factories import auth_headers, make_clinic, make_user
from tests.jobs.standins import LOCAL_WEBHOOKS, StandInHTTPServer

CLINIC = "/api/v1/clinic"
SECRET = "s" * 32

# Every spelling of "this machine", its networks and the cloud metadata service.
FORBIDDEN = [
    "localhost",
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "169.254.169.254",
    "10.0.0.7",
    "192.168.0.1",
    "0.0.0.0",
    "[::]",
]


@pytest.fixture
def listener():
    server = StandInHTTPServer()
    yield server
    server.close()


def _patch(client, headers, url):
    etag = client.get(CLINIC, headers=headers).headers["ETag"]
    body = {"settings": {"webhook": {"url": url, "secret": SECRET}}}
    return client.patch(CLINIC, json=body, headers={**headers, "If-Match": etag})


@pytest.fixture
def admin(session, settings):
    clinic = make_clinic(session)
    return clinic, auth_headers(settings, make_user(session, settings, clinic, "admin"))


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("host", FORBIDDEN)
def test_a_local_private_or_metadata_address_is_refused(
    client, session, admin, listener, host, scheme
):
    clinic, headers = admin
    port = listener.url.rsplit(":", 1)[1]

    refused = _patch(client, headers, f"{scheme}://{host}:{port}/hook")

    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    problem = refused.get_json()
    (reason,) = problem["errors"]["settings"]["webhook"]["url"]
    assert "loopback" in reason or "https" in reason
    session.refresh(clinic)
    assert "webhook" not in clinic.settings
    assert listener.received() == []


@pytest.mark.parametrize(
    "url",
    ["http://[::1", f"https://{'a' * 64}.example.org/hook", "https://user:pw@example.org/"],
)
def test_a_malformed_url_is_refused(client, admin, url):
    _clinic, headers = admin
    refused = _patch(client, headers, url)
    assert refused.status_code == 422
    (reason,) = refused.get_json()["errors"]["settings"]["webhook"]["url"]
    assert reason.startswith("Not a well-formed URL")


def test_plain_http_is_refused_outside_development(client, admin):
    _clinic, headers = admin
    refused = _patch(client, headers, "http://ehr.example.org/hooks/cd20")
    assert refused.status_code == 422
    (reason,) = refused.get_json()["errors"]["settings"]["webhook"]["url"]
    assert "https://" in reason
    assert _patch(client, headers, "https://ehr.example.org/hooks/cd20").status_code == 200


def test_an_allowed_internal_endpoint_is_accepted(session, settings, admin, listener):
    clinic, headers = admin
    app = _make_app(settings.with_overrides(**LOCAL_WEBHOOKS))
    url = f"{listener.url}/hook"
    with app.test_client() as client:
        assert _patch(client, headers, url).status_code == 200
        # Allowed is 127.0.0.1 itself, not every spelling of this machine.
        port = listener.url.rsplit(":", 1)[1]
        assert _patch(client, headers, f"http://localhost:{port}/hook").status_code == 422
        assert _patch(client, headers, f"http://127.0.0.2:{port}/hook").status_code == 422
    session.refresh(clinic)
    assert clinic.settings["webhook"]["url"] == url
