"""Settings from the environment: the one place that reads it."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from service.core.outbound import split_allow_list

# What CD20_ENV may say. Anything else (Production, prod, a typo) stops the start: a misspelt
# production must never run with development behaviour.
ENVIRONMENTS = ("development", "test", "production")
# The key earlier versions used when SECRET_KEY was unset. It is public: refused everywhere.
DEV_SECRET_KEY = "dev-only-secret-key-change-me-in-production!"
PUBLISHED_SECRET_KEYS = frozenset({DEV_SECRET_KEY})
MIN_SECRET_KEY_LENGTH = 32
# An estimate of the key's randomness (length x the entropy of its character frequencies): a
# generated key of 32 hex digits scores about 110 bits, `aaaa...` and `abcabc...` score nothing.
MIN_SECRET_KEY_BITS = 80
MIN_SECRET_KEY_DISTINCT = 6
# The generated key of the embedded default, beside the SQLite database.
SECRET_KEY_FILE = "secret_key"
SECRET_KEY_HINT = (
    "set SECRET_KEY to a random value of at least 32 characters, for example the output of"
    " `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
)


class ConfigurationError(RuntimeError):
    """The settings cannot be used (for example a weak secret in production)."""


def default_database_url() -> str:
    instance = Path(os.environ.get("CD20_INSTANCE_PATH", Path.cwd() / "instance"))
    return f"sqlite:///{instance / 'cd20.db'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    # None until set: the app refuses to start without one (see check()). `cd20` commands on a
    # SQLite file keep a generated key beside the database instead (embedded_secret_key()).
    secret_key: str | None = None
    environment: str = "development"
    redis_url: str | None = None
    jwt_issuer: str = "cd20-monitor"
    jwt_audience: str = "cd20-monitor-api"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # A just-rotated refresh token presented again this soon (two requests refreshing at once)
    # gets the same new pair instead of ending the family.
    refresh_grace_s: int = 30
    invitation_ttl_s: int = 7 * 24 * 3600
    max_content_length: int = 1024 * 1024
    # Bodies of polled reads kept per process, served while their freshness stamp holds
    # (service/api/middleware/rendered.py); 0 renders every read.
    render_store_bytes: int = 32 * 1024 * 1024
    # A directory on this host's local disk: reads' audit events are appended to a spool file in
    # it and moved into audit_event every audit_spool_flush_s (service/trust/audit_spool.py).
    # Unset: each read inserts its event before it answers.
    audit_spool_dir: str | None = None
    audit_spool_flush_s: float = 0.2
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
    # Neither the name nor the Message-ID of an e-mail says which product (so which therapy).
    smtp_from: str = "Clinic reminders <no-reply@localhost>"
    smtp_timeout_s: float = 10.0
    # Push through FCM HTTP v1 (off while fcm_credentials_file is unset); {project_id} is filled in.
    fcm_url_template: str = "https://fcm.googleapis.com/v1/projects/{project_id}/messages:send"
    fcm_credentials_file: str | None = None
    # Defaults to the project_id in the service-account file.
    fcm_project_id: str | None = None
    fcm_timeout_s: float = 10.0
    # Each outbound call (webhook, SMTP, FCM) is cut off after its *_timeout_s in total.
    webhook_timeout_s: float = 10.0
    # Webhook destinations the address rules would refuse (loopback, private, ...) that this
    # deployment allows anyway: IP addresses, CIDR networks or exact host names.
    webhook_allowed_hosts: tuple[str, ...] = ()
    # How many webhook, e-mail and push sends one runner has on the network at once.
    delivery_concurrency: int = 8
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
    # Password checks (log-in, password change): this many failures in a row from one address on
    # one login name shut that address out of it for login_lock_s. Other addresses are not
    # affected, so nobody's guesses can lock the real user out. Failures on an account from any
    # address since its last success raise a staff alert at login_alert_after.
    login_lock_after: int = 10
    login_lock_s: int = 15 * 60
    login_alert_after: int = 20
    # Fetches of one secret calendar feed URL (calendar apps poll every few hours at most).
    calendar_feed_limit: str = "60/hour"
    # How long a retry with the same Idempotency-Key gets the first response.
    idempotency_key_ttl_s: int = 24 * 3600
    # How long a claimed key waits for its request: a few seconds beyond the longest a request
    # runs (gunicorn's default timeout is 30 s). A retry after it runs the request again if the
    # first one stored nothing (its process died), instead of being refused.
    idempotency_lease_s: float = 35.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, embedded: bool = False) -> Settings:
        """The settings the environment gives.

        Without SECRET_KEY, the key kept beside a SQLite database is used (generated on first
        use) when `embedded` (the `cd20` commands, the embedded default) or when CD20_ENV says
        `development` explicitly; never in production. Otherwise the key stays unset and
        check() refuses to start.
        """
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        if env.get("DATABASE_URL"):
            values["database_url"] = normalise_database_url(env["DATABASE_URL"])
        if env.get("SECRET_KEY"):
            values["secret_key"] = env["SECRET_KEY"]
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        if "CD20_ENV" in env:
            values["environment"] = check_environment(env["CD20_ENV"])
        for name, key, parse in ENVIRONMENT:
            if env.get(name):
                try:
                    values[key] = parse(env[name])
                except ValueError as exc:
                    raise ConfigurationError(f"{name}: {exc}") from exc
        settings = cls(**values)
        explicit_development = env.get("CD20_ENV") == "development"
        if (
            settings.secret_key is None
            and (embedded or explicit_development)
            and settings.environment != "production"
        ):
            settings = replace(settings, secret_key=embedded_secret_key(settings.database_url))
        return settings

    def with_overrides(self, **overrides: Any) -> Settings:
        if "database_url" in overrides:
            overrides["database_url"] = normalise_database_url(overrides["database_url"])
        return replace(self, **overrides)

    @property
    def signing_key(self) -> str:
        """The secret tokens are signed with (check() has made sure there is a strong one)."""
        if self.secret_key is None:
            raise ConfigurationError(f"SECRET_KEY is not set: {SECRET_KEY_HINT}")
        return self.secret_key

    def check(self, *, needs_secret: bool = True) -> None:
        """Refuse settings that are unsafe: an unknown environment, a missing or weak secret.

        `needs_secret=False` is for processes that sign nothing (the reminder runner); a secret
        they are given must still be strong.
        """
        check_environment(self.environment)
        if self.secret_key is None:
            if needs_secret:
                raise ConfigurationError(
                    f"SECRET_KEY is not set: {SECRET_KEY_HINT}. (`cd20 serve` on a SQLite"
                    " database keeps a generated key beside it; so does CD20_ENV=development.)"
                )
            return
        problem = secret_key_weakness(self.secret_key)
        if problem is not None:
            raise ConfigurationError(f"SECRET_KEY {problem}: {SECRET_KEY_HINT}")


def check_environment(value: str) -> str:
    if value not in ENVIRONMENTS:
        raise ConfigurationError(
            f"CD20_ENV must be one of {', '.join(ENVIRONMENTS)} (exactly), not {value!r}"
        )
    return value


def secret_key_weakness(key: str) -> str | None:
    """Why a signing key is unsafe, or None. Lengths and counts are of characters."""
    if key in PUBLISHED_SECRET_KEYS:
        return "is the published development key"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"is shorter than {MIN_SECRET_KEY_LENGTH} characters"
    if key in (key + key)[1:-1]:
        return "is a short text repeated"
    counts = Counter(key)
    bits = -sum(n * math.log2(n / len(key)) for n in counts.values())
    if len(counts) < MIN_SECRET_KEY_DISTINCT or bits < MIN_SECRET_KEY_BITS:
        return "does not look random (too few different characters)"
    return None


def secret_key_path(database_url: str) -> Path | None:
    """Where the embedded default keeps its key: beside the SQLite database file."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database).resolve().parent / SECRET_KEY_FILE


def embedded_secret_key(database_url: str) -> str | None:
    """The key kept beside a SQLite database, generated (mode 0600) on first use; None if the
    database is not a SQLite file."""
    path = secret_key_path(database_url)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _write_new_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`"
        )
    return path.read_text(encoding="ascii").strip()


def _write_new_key(path: Path) -> None:
    """Written whole under a temporary name, then linked into place: two processes starting at
    once end up with the one key, and neither reads a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds <= 60:
        raise ValueError(f"expected seconds between 0 and 60, not {value!r}")
    return seconds


def _origins(value: str) -> tuple[str, ...]:
    """A comma-separated list of origins, e.g. https://app.example.org,https://admin.example.org."""
    return tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())


def _host_list(value: str) -> tuple[str, ...]:
    """Comma-separated IP addresses, CIDR networks or host names, e.g. 10.2.0.0/16,hooks.lan."""
    entries = tuple(entry.strip() for entry in value.split(",") if entry.strip())
    split_allow_list(entries)
    return entries


# Environment variable, setting, parser: everything `Settings.from_env` reads besides the above.
ENVIRONMENT: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("CD20_ACCESS_TOKEN_TTL", "access_token_ttl_s", int),
    ("CD20_REFRESH_TOKEN_TTL", "refresh_token_ttl_s", int),
    ("CD20_REFRESH_GRACE", "refresh_grace_s", int),
    ("CD20_INVITATION_TTL", "invitation_ttl_s", int),
    ("CD20_RENDER_STORE_BYTES", "render_store_bytes", int),
    ("CD20_AUDIT_SPOOL_DIR", "audit_spool_dir", str),
    ("CD20_AUDIT_SPOOL_FLUSH", "audit_spool_flush_s", _positive_seconds),
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
    ("CD20_WEBHOOK_ALLOWED_HOSTS", "webhook_allowed_hosts", _host_list),
    ("CD20_DELIVERY_CONCURRENCY", "delivery_concurrency", int),
    ("CD20_RETRY_MAX_ATTEMPTS", "retry_max_attempts", int),
    ("CD20_RETRY_BASE_DELAY", "retry_base_delay_s", float),
    ("CD20_RETRY_MAX_DELAY", "retry_max_delay_s", float),
    ("CD20_CORS_ORIGINS", "cors_origins", _origins),
    ("CD20_HSTS_MAX_AGE", "hsts_max_age_s", int),
    ("CD20_RATE_LIMITS_ENABLED", "rate_limits_enabled", _flag),
    ("CD20_LOGIN_LIMIT_PER_ADDRESS", "login_limit_per_address", str),
    ("CD20_LOGIN_LIMIT_PER_ACCOUNT", "login_limit_per_account", str),
    ("CD20_RATE_LIMIT_PREFIX", "rate_limit_key_prefix", str),
    ("CD20_LOGIN_LOCK_AFTER", "login_lock_after", int),
    ("CD20_LOGIN_LOCK_SECONDS", "login_lock_s", int),
    ("CD20_LOGIN_ALERT_AFTER", "login_alert_after", int),
    ("CD20_CALENDAR_FEED_LIMIT", "calendar_feed_limit", str),
    ("CD20_IDEMPOTENCY_TTL", "idempotency_key_ttl_s", int),
    ("CD20_IDEMPOTENCY_LEASE", "idempotency_lease_s", float),
)
