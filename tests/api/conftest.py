"""Fixtures most API tests share: a clinic, a clinician of it, and their auth headers."""

from __future__ import annotations

import pytest

from tests.factories import auth_headers, make_clinic, make_user


@pytest.fixture
def clinic(session):
    return make_clinic(session)


@pytest.fixture
def staff(session, settings, clinic):
    return make_user(session, settings, clinic)


@pytest.fixture
def headers(settings, staff):
    return auth_headers(settings, staff)
