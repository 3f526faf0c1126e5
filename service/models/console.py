"""Staff console sessions: a browser's sign-in, kept on the server and named by a random cookie."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow


class ConsoleSession(Base):
    """One signed-in browser. The cookie holds a random token; only its sha256 is stored, so a
    copy of the table signs nobody in. It ends at sign-out, after `idle` without a request, at
    its absolute expiry, or when the account's token generation moves (password change, role
    change, deactivation)."""

    __tablename__ = "console_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    token_generation: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
