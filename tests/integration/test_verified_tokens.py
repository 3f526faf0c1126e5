"""A token verified once is not verified again while it lasts, and that changes nothing it
answers: an expired token is refused, as is a token under another key, issuer or audience."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from service.accounts.tokens import create_access_token, decode_access_token
from service.db import utcnow
from service.errors import InvalidToken


def _token(settings, *, lasts_s: float) -> str:
    issued = utcnow() - timedelta(seconds=settings.access_token_ttl_s) + timedelta(seconds=lasts_s)
    return create_access_token(settings, user_id=7, generation=0, now=issued)


def test_a_verified_token_is_refused_once_it_expires(settings):
    # exp is a whole second: this token ends within the next two.
    token = _token(settings, lasts_s=1.5)
    assert decode_access_token(settings, token)["sub"] == "7"
    expires = decode_access_token(settings, token)["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.05)

    with pytest.raises(InvalidToken):
        decode_access_token(settings, token)


@pytest.mark.parametrize(
    "other",
    [
        {"secret_key": "another-test-secret-" + "x" * 40},
        {"jwt_issuer": "someone-else"},
        {"jwt_audience": "another-api"},
    ],
    ids=["key", "issuer", "audience"],
)
def test_a_token_verified_under_one_setting_is_refused_under_another(settings, other):
    token = _token(settings, lasts_s=600)
    assert decode_access_token(settings, token)["sub"] == "7"

    with pytest.raises(InvalidToken):
        decode_access_token(settings.with_overrides(**other), token)
    # ... and the first settings still accept it.
    assert decode_access_token(settings, token)["sub"] == "7"
