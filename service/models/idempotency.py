"""Idempotency keys: one row per (user, key), holding the first response to replay it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow

IN_FLIGHT = "in_flight"
DONE = "done"
MAX_KEY_LENGTH = 255


class IdempotencyKey(Base):
    """A client's Idempotency-Key: claimed (in_flight) before the request runs, then `done`."""

    __tablename__ = "idempotency_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    # sha256 of method, path and the canonical JSON body: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=IN_FLIGHT)
    response_status: Mapped[int | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (
        # The race between two retries is decided here: the second insert fails.
        UniqueConstraint("user_id", "key"),
        CheckConstraint(f"status IN ('{IN_FLIGHT}', '{DONE}')", name="status"),
    )

    @property
    def is_done(self) -> bool:
        return self.status == DONE
