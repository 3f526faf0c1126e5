"""Settings from the environment: the one place that reads it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEV_SECRET_KEY = "dev-only-secret-key-change-me-in-production!"
MIN_SECRET_KEY_LENGTH = 32


class ConfigurationError(RuntimeError):
    """The settings cannot be used (for example a weak secret in production)."""


def default_database_url() -> str:
    instance = Path(os.environ.get("CD20_INSTANCE_PATH", Path.cwd() / "instance"))
    return f"sqlite:///{instance / 'cd20.db'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    secret_key: str = DEV_SECRET_KEY
    environment: str = "development"
    redis_url: str | None = None
    jwt_issuer: str = "cd20-monitor"
    jwt_audience: str = "cd20-monitor-api"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    invitation_ttl_s: int = 7 * 24 * 3600
    default_page_size: int = 50
    max_page_size: int = 200
    max_content_length: int = 1024 * 1024
    # argon2id cost; tests lower it, production keeps argon2-cffi's RFC 9106 defaults.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    sql_echo: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        if env.get("DATABASE_URL"):
            values["database_url"] = normalise_database_url(env["DATABASE_URL"])
        if env.get("SECRET_KEY"):
            values["secret_key"] = env["SECRET_KEY"]
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        if env.get("CD20_ENV"):
            values["environment"] = env["CD20_ENV"]
        for name, key in (
            ("CD20_ACCESS_TOKEN_TTL", "access_token_ttl_s"),
            ("CD20_REFRESH_TOKEN_TTL", "refresh_token_ttl_s"),
            ("CD20_INVITATION_TTL", "invitation_ttl_s"),
        ):
            if env.get(name):
                values[key] = int(env[name])
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        if "database_url" in overrides:
            overrides["database_url"] = normalise_database_url(overrides["database_url"])
        return replace(self, **overrides)

    def check(self) -> None:
        """Refuse settings that are unsafe for the environment they run in."""
        if self.environment == "production" and (
            self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < MIN_SECRET_KEY_LENGTH
        ):
            raise ConfigurationError(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_KEY_LENGTH}"
                " characters when CD20_ENV=production"
            )


def normalise_database_url(url: str) -> str:
    """Accept the URLs hosting platforms hand out and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
