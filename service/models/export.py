"""Calendar feeds (secret subscription URLs) and the FHIR Observations imported from an EHR."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow


class CalendarFeed(Base):
    """A secret feed URL: only the SHA-256 of its token is kept; the token is shown once.

    kind "patient": the patient's own doses and tasks (patient_id set, user_id the patient's
    app account). kind "chair_schedule": the clinic's booked chairs, for the staff member
    user_id. A revoked feed answers 404, like one that never existed.
    """

    __tablename__ = "calendar_feed"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ImportedObservation(Base):
    """One FHIR Observation received for a patient, by its identifier: a resend is a no-op."""

    __tablename__ = "imported_observation"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    identifier_system: Mapped[str] = mapped_column(String(255))
    identifier_value: Mapped[str] = mapped_column(String(255))
    # SHA-256 of what was taken from it: the same identifier with other content is refused.
    content_hash: Mapped[str] = mapped_column(String(64))
    lab_result_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_result.id", ondelete="SET NULL")
    )
    screening_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("screening_item.id", ondelete="SET NULL")
    )
    imported_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "patient_id",
            "identifier_system",
            "identifier_value",
            name="uq_imported_observation_identifier",
        ),
    )
