"""Driving the console through Flask's test client: its CSRF tokens and its sign-in."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from tests.factories import PASSWORD

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/console/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = _TOKEN.search(page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
    )


def post(client: FlaskClient, path: str, data: dict[str, Any], *, token_from: str) -> Any:
    return client.post(path, data={**data, "csrf_token": csrf_token(client, token_from)})
