"""Two app instances sharing one real Redis: the login limits hold across both.

Needs Redis (TEST_REDIS_URL, default redis://127.0.0.1:6379/0). Skipped when it does not
answer, unless CD20_REQUIRE_REDIS=1 (CI), which makes a missing Redis a failure.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from service.app import create_app
from tests.factories import PASSWORD, make_clinic, make_user

TOKEN = "/api/v1/auth/token"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url():
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as exc:
        if os.environ.get("CD20_REQUIRE_REDIS") == "1":
            pytest.fail(f"CD20_REQUIRE_REDIS=1 but Redis at {url} does not answer: {exc}")
        pytest.skip(f"needs Redis at {url} (set TEST_REDIS_URL): {exc}")
    return url


@pytest.fixture
def key_prefix(redis_url):
    """A prefix of this test's own, so parallel runs never share counters; removed after."""
    prefix = f"cd20-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def two_instances(settings, session, redis_url, key_prefix):
    apps = [
        create_app(
            settings,
            redis_url=redis_url,
            rate_limits_enabled=True,
            rate_limit_key_prefix=key_prefix,
            login_limit_per_address="4/minute",
            login_limit_per_account="3/minute",
        )
        for _ in range(2)
    ]
    return [app.test_client() for app in apps]


def _log_in(client, username, password="wrong password", address="127.0.0.2"):
    return client.post(
        TOKEN,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_the_per_address_limit_holds_across_instances(two_instances, redis_url, key_prefix):
    first, second = two_instances
    answers = [
        _log_in(instance, f"user{n}@example.org").status_code
        for n, instance in enumerate((first, second, first, second))
    ]
    assert answers == [401, 401, 401, 401]
    for instance in (first, second):
        refused = _log_in(instance, "another@example.org")
        assert refused.status_code == 429
        assert refused.get_json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
    # The counters are in Redis, under this run's prefix.
    assert list(redis.Redis.from_url(redis_url).scan_iter(match=f"*{key_prefix}*"))


def test_the_per_account_limit_holds_across_instances(two_instances, session, settings):
    """Counted per (account, address), across instances (changed from per account whatever the
    address: that let anyone's guesses keep the real user out)."""
    make_user(session, settings, make_clinic(session), email="fay@example.org")
    first, second = two_instances
    assert _log_in(first, "fay@example.org").status_code == 401
    assert _log_in(second, "fay@example.org").status_code == 401
    assert _log_in(first, "FAY@example.org").status_code == 401
    for instance in (second, first):
        refused = _log_in(instance, "fay@example.org", password=PASSWORD)
        assert refused.status_code == 429
    # The real user, from another address, on either instance, logs in.
    for instance, address in ((second, "127.0.0.5"), (first, "127.0.0.6")):
        assert _log_in(instance, "fay@example.org", PASSWORD, address=address).status_code == 200
    # Another account, from a fresh address, on either instance, is untouched.
    assert _log_in(second, "gus@example.org", address="127.0.0.7").status_code == 401


def test_a_fresh_prefix_starts_from_zero(settings, session, redis_url, key_prefix):
    """Separate deployments (or test runs) on one Redis do not share counters."""
    apps = [
        create_app(
            settings,
            redis_url=redis_url,
            rate_limits_enabled=True,
            rate_limit_key_prefix=prefix,
            login_limit_per_address="1/minute",
        )
        for prefix in (key_prefix, key_prefix + "-other")
    ]
    one, other = (app.test_client() for app in apps)
    assert _log_in(one, "a@example.org").status_code == 401
    assert _log_in(one, "b@example.org").status_code == 429
    assert _log_in(other, "c@example.org").status_code == 401
