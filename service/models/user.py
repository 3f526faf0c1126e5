"""Accounts: users with a role, refresh-token families, patient invitations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow
from service.vocabulary import STAFF_ROLES

if TYPE_CHECKING:
    from service.models.clinic import Clinic
    from service.models.patient import Patient


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    # Stored lower-cased: logins are case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), unique=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Failed logins from any address since the last success: past a threshold, a staff alert.
    failed_logins: Mapped[int] = mapped_column(default=0)
    # Unused since locks apply per (account, address) (LoginLock); kept for older databases.
    locked_until: Mapped[datetime | None]
    # Bumped on logout-everywhere and password change: older access tokens stop working.
    token_generation: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship()
    patient: Mapped[Patient | None] = relationship(foreign_keys=[patient_id])

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


class RefreshToken(Base):
    """One refresh token; rotation keeps the family, reuse of a used token revokes the family."""

    __tablename__ = "refresh_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_refresh_token_user_id", "user_id"),)


class Invitation(Base):
    """A one-time activation code that lets a patient set a password for the app."""

    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class LoginLock(Base):
    """Failed password checks of one login name from one client address, and its lock.

    Keyed by a digest of the submitted name, not by the user: an unknown name counts and locks
    exactly like a real one, so neither the answer nor its timing tells them apart. A lock shuts
    out that address only: an attacker's guesses never lock the real user out elsewhere.
    """

    __tablename__ = "login_lock"

    id: Mapped[int] = mapped_column(primary_key=True)
    # sha256 of the login name as compared (trimmed, lower-cased): no logins stored in clear.
    account_key: Mapped[str] = mapped_column(String(64))
    client_address: Mapped[str] = mapped_column(String(45))
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_failed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("account_key", "client_address"),)
