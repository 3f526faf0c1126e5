"""Settings from the environment: the one place that reads it."""

from __future__ import annotations

import os
from collections.abc import Callable
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
    max_content_length: int = 1024 * 1024
    # argon2id cost; tests lower it, production keeps argon2-cffi's RFC 9106 defaults.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    sql_echo: bool = False
    # Delivery: SMTP for e-mail (off while smtp_host is unset).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_from: str = "cd20-monitor <no-reply@localhost>"
    smtp_timeout_s: float = 10.0
    # Push through FCM HTTP v1 (off while fcm_credentials_file is unset); {project_id} is filled in.
    fcm_url_template: str = "https://fcm.googleapis.com/v1/projects/{project_id}/messages:send"
    fcm_credentials_file: str | None = None
    # Defaults to the project_id in the service-account file.
    fcm_project_id: str | None = None
    fcm_timeout_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # Failed deliveries retry with exponential backoff and full jitter, then the reminder is dead.
    retry_max_attempts: int = 6
    retry_base_delay_s: float = 60.0
    retry_max_delay_s: float = 3600.0
    # HTTP hardening. CORS origins allowed for a web client (none by default); HSTS only when the
    # service is reached over TLS (0 = no header).
    cors_origins: tuple[str, ...] = ()
    hsts_max_age_s: int = 0
    # Login and activation limits (Flask-Limiter syntax), per client address and per account;
    # counters live in Redis when redis_url is set, so every process shares them.
    rate_limits_enabled: bool = True
    login_limit_per_address: str = "10/minute"
    login_limit_per_account: str = "5/minute"
    rate_limit_key_prefix: str = "cd20"
    # Fetches of one secret calendar feed URL (calendar apps poll every few hours at most).
    calendar_feed_limit: str = "60/hour"
    # How long a retry with the same Idempotency-Key gets the first response.
    idempotency_key_ttl_s: int = 24 * 3600

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
        for name, key, parse in ENVIRONMENT:
            if env.get(name):
                try:
                    values[key] = parse(env[name])
                except ValueError as exc:
                    raise ConfigurationError(f"{name}: {exc}") from exc
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


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def _origins(value: str) -> tuple[str, ...]:
    """A comma-separated list of origins, e.g. https://app.example.org,https://admin.example.org."""
    return tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())


# Environment variable, setting, parser: everything `Settings.from_env` reads besides the above.
ENVIRONMENT: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("CD20_ACCESS_TOKEN_TTL", "access_token_ttl_s", int),
    ("CD20_REFRESH_TOKEN_TTL", "refresh_token_ttl_s", int),
    ("CD20_INVITATION_TTL", "invitation_ttl_s", int),
    ("CD20_SMTP_HOST", "smtp_host", str),
    ("CD20_SMTP_PORT", "smtp_port", int),
    ("CD20_SMTP_USERNAME", "smtp_username", str),
    ("CD20_SMTP_PASSWORD", "smtp_password", str),
    ("CD20_SMTP_STARTTLS", "smtp_starttls", _flag),
    ("CD20_SMTP_FROM", "smtp_from", str),
    ("CD20_SMTP_TIMEOUT", "smtp_timeout_s", float),
    ("CD20_FCM_URL_TEMPLATE", "fcm_url_template", str),
    ("CD20_FCM_CREDENTIALS_FILE", "fcm_credentials_file", str),
    ("CD20_FCM_PROJECT_ID", "fcm_project_id", str),
    ("CD20_FCM_TIMEOUT", "fcm_timeout_s", float),
    ("CD20_WEBHOOK_TIMEOUT", "webhook_timeout_s", float),
    ("CD20_RETRY_MAX_ATTEMPTS", "retry_max_attempts", int),
    ("CD20_RETRY_BASE_DELAY", "retry_base_delay_s", float),
    ("CD20_RETRY_MAX_DELAY", "retry_max_delay_s", float),
    ("CD20_CORS_ORIGINS", "cors_origins", _origins),
    ("CD20_HSTS_MAX_AGE", "hsts_max_age_s", int),
    ("CD20_RATE_LIMITS_ENABLED", "rate_limits_enabled", _flag),
    ("CD20_LOGIN_LIMIT_PER_ADDRESS", "login_limit_per_address", str),
    ("CD20_LOGIN_LIMIT_PER_ACCOUNT", "login_limit_per_account", str),
    ("CD20_RATE_LIMIT_PREFIX", "rate_limit_key_prefix", str),
    ("CD20_CALENDAR_FEED_LIMIT", "calendar_feed_limit", str),
    ("CD20_IDEMPOTENCY_TTL", "idempotency_key_ttl_s", int),
)
