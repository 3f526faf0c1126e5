"""Doses of a plan and the record of an administered dose."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow
from service.models.readiness import Readiness, assess
from service.models.reminder import BIG_ID
from service.protocols.schedule import (
    PlannedDose,
    expected_chair_minutes,
    expected_infusion_minutes,
)
from service.vocabulary import OPEN_DOSE_STATUSES, DoseStatus, ReactionGrade

SERIOUS_REACTIONS = (ReactionGrade.SEVERE, ReactionGrade.LIFE_THREATENING)
# Predicates of the partial indexes; queries repeat them (as literals) so the planner uses them.
OPEN = "status IN ('planned', 'booked', 'missed')"
OPEN_UNBOOKED = f"appointment_at IS NULL AND {OPEN}"
NOT_READY = f"ready IS NOT TRUE AND {OPEN}"
OBSERVATION_SHORT = "observation_short IS NOT FALSE AND status = 'administered'"


def reacted_before_or_in(
    reactions: Iterable[tuple[int, datetime]], dose_id: int, given_at: datetime | None
) -> bool:
    """Whether any of the patient's infusion reactions, each (dose id, when given), came in the
    dose `dose_id` or before it was given at `given_at`; any at all while it is not given."""
    return any(
        given_at is None or at < given_at or reacted_in == dose_id for reacted_in, at in reactions
    )


def _partial(name: str, column: str, where: str) -> Index:
    return Index(name, column, postgresql_where=text(where), sqlite_where=text(where))


if TYPE_CHECKING:
    from service.models.plan import TreatmentPlan


class Dose(Base):
    __tablename__ = "dose"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("treatment_plan.id", ondelete="CASCADE"))
    sequence: Mapped[int]
    course: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    rule_key: Mapped[str] = mapped_column(String(64))
    amount_mg: Mapped[int]
    due_date: Mapped[date] = mapped_column(index=True)
    earliest_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(16), default=DoseStatus.PLANNED.value)
    booking: Mapped[str | None] = mapped_column(String(16))
    appointment_at: Mapped[datetime | None] = mapped_column(index=True)
    location: Mapped[str | None] = mapped_column(String(200))
    needs_review: Mapped[bool] = mapped_column(default=False)
    # The day staff recorded that the dose did not happen (it stays owed until given).
    missed_on: Mapped[date | None]
    # A clinician's decision to leave the dose out, and why.
    skip_reason: Mapped[str | None] = mapped_column(Text)
    skipped_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # A named infusion-rate option of the catalog chosen for this dose (e.g. short_2h).
    infusion_option: Mapped[str | None] = mapped_column(String(32))
    # Kept by every write (service.models.stored_state) so the worklist selects by index:
    # readiness.ready of an open dose, and for a given one whether its recorded observation
    # falls short of the catalog's. None: not worked out yet, read as "look".
    ready: Mapped[bool | None]
    observation_short: Mapped[bool | None]
    # Readiness.blocking_items of an open dose stored beside `ready`, so the worklist shows it
    # without loading the plan; None: not worked out yet.
    readiness_blocking: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    plan: Mapped[TreatmentPlan] = relationship(back_populates="doses")
    administration: Mapped[DoseAdministration | None] = relationship(
        back_populates="dose", cascade="all, delete-orphan", uselist=False
    )
    checks: Mapped[list[DoseCheck]] = relationship(
        back_populates="dose", order_by="DoseCheck.id", cascade="all, delete-orphan"
    )
    readiness_overrides: Mapped[list[DoseReadinessOverride]] = relationship(
        back_populates="dose", order_by="DoseReadinessOverride.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        UniqueConstraint("plan_id", "sequence"),
        # Open doses by day, without an appointment and with one: the overdue ones.
        _partial("ix_dose_open_unbooked_due", "due_date", OPEN_UNBOOKED),
        _partial("ix_dose_open_appointment", "appointment_at", OPEN),
        # Open doses whose readiness is not complete (the worklist's readiness section).
        _partial("ix_dose_not_ready_due", "due_date", NOT_READY),
        _partial("ix_dose_not_ready_appointment", "appointment_at", NOT_READY),
        # Given doses whose observation may fall short.
        _partial("ix_dose_observation_short", "due_date", OBSERVATION_SHORT),
    )
    __mapper_args__ = {"version_id_col": version}

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_DOSE_STATUSES

    @property
    def serious_reaction_before(self) -> bool:
        """A severe or life-threatening infusion reaction under any plan, before this dose."""
        return any(
            e["grade"] in SERIOUS_REACTIONS for e in self._reactions_before(include_self=False)
        )

    @property
    def reaction_before_or_now(self) -> bool:
        """Any infusion reaction in this dose or an earlier one (any plan of the patient)."""
        given = self.administration.administered_at if self.administration else None
        reactions = [
            (e["dose_id"], e["administered_at"]) for e in self.plan.patient.reaction_history
        ]
        return reacted_before_or_in(reactions, self.id, given)

    def _reactions_before(self, *, include_self: bool) -> list[dict[str, Any]]:
        history = self.plan.patient.reaction_history
        if self.administration is None:
            return history
        given = self.administration.administered_at
        return [
            e
            for e in history
            if e["administered_at"] < given or (include_self and e["dose_id"] == self.id)
        ]

    @property
    def required_observation_minutes(self) -> int | None:
        """The observation the catalog asks for after this dose, given the patient's reactions."""
        observation = self.plan.regimen.observation
        return observation.minutes_after(self.sequence, had_reaction=self.reaction_before_or_now)

    @property
    def infusion_minutes(self) -> int | None:
        return expected_infusion_minutes(
            self.plan.regimen, self.as_planned(), option=self.infusion_option
        )

    @property
    def chair_minutes(self) -> int | None:
        return expected_chair_minutes(
            self.plan.regimen,
            self.as_planned(),
            option=self.infusion_option,
            had_reaction=self.reaction_before_or_now,
        )

    @property
    def readiness(self) -> Readiness:
        """This dose's own pre-dose checklist, as the catalog and the record make it now."""
        return assess(self)

    def as_planned(self, *, given_day_in: str | None = None) -> PlannedDose:
        """This dose as the schedule arithmetic sees it. With `given_day_in` (a zone), an
        administered dose counts from the day it was given there rather than its due date."""
        when = self.due_date
        if (
            given_day_in is not None
            and self.status == DoseStatus.ADMINISTERED
            and self.administration
        ):
            when = self.administration.administered_at.astimezone(ZoneInfo(given_day_in)).date()
        return PlannedDose(
            sequence=self.sequence,
            course=self.course,
            kind=self.kind,
            amount_mg=self.amount_mg,
            due_date=when,
            earliest_date=self.earliest_date,
            rule_key=self.rule_key,
        )


class DoseAdministration(Base):
    __tablename__ = "dose_administration"

    id: Mapped[int] = mapped_column(primary_key=True)
    dose_id: Mapped[int] = mapped_column(ForeignKey("dose.id", ondelete="CASCADE"), unique=True)
    administered_at: Mapped[datetime]
    amount_mg: Mapped[int]
    reaction_grade: Mapped[str] = mapped_column(String(24), default="none")
    reaction_onset_at: Mapped[datetime | None]
    reaction_action: Mapped[str | None] = mapped_column(String(64))
    reaction_notes: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    # A clinician's stated reason for premedication missing or outside its window.
    premedication_exception_reason: Mapped[str | None] = mapped_column(Text)
    # administered_at is the infusion's start; these are its end and the end of observation.
    infusion_ended_at: Mapped[datetime | None]
    observation_ended_at: Mapped[datetime | None]
    # Minutes the patient was observed after the dose (the label's minimum per drug and dose);
    # worked out from the two ends above when both are recorded.
    observation_minutes: Mapped[int | None]
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    dose: Mapped[Dose] = relationship(back_populates="administration")
    premedications: Mapped[list[PremedicationGiven]] = relationship(
        back_populates="administration",
        order_by="PremedicationGiven.given_at",
        cascade="all, delete-orphan",
    )

    @property
    def infusion_started_at(self) -> datetime:
        return self.administered_at

    @property
    def reaction(self) -> dict[str, object]:
        return {
            "grade": self.reaction_grade,
            "onset_at": self.reaction_onset_at,
            "action": self.reaction_action,
            "notes": self.reaction_notes,
        }


class PremedicationGiven(Base):
    __tablename__ = "premedication_given"

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("dose_administration.id", ondelete="CASCADE"), index=True
    )
    drug: Mapped[str] = mapped_column(String(100))
    dose_mg: Mapped[float | None]
    route: Mapped[str | None] = mapped_column(String(16))
    given_at: Mapped[datetime]

    administration: Mapped[DoseAdministration] = relationship(back_populates="premedications")

    @property
    def minutes_before(self) -> int:
        """Minutes between this premedication and the start of the dose (labels: 30-60)."""
        return int((self.administration.administered_at - self.given_at).total_seconds() // 60)


class DoseCheck(Base):
    """The answer to one pre-dose readiness item of one dose (staff, or the patient's check-in)."""

    __tablename__ = "dose_check"

    id: Mapped[int] = mapped_column(primary_key=True)
    dose_id: Mapped[int] = mapped_column(ForeignKey("dose.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(String(16))
    result_date: Mapped[date]
    answered_by: Mapped[str] = mapped_column(String(16))
    # The patient's check-in that answered it (staff answers have none).
    reminder_id: Mapped[int | None] = mapped_column(
        BIG_ID, ForeignKey("reminder.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    dose: Mapped[Dose] = relationship(back_populates="checks")

    __table_args__ = (UniqueConstraint("dose_id", "code"),)
    __mapper_args__ = {"version_id_col": version}


class DoseReadinessOverride(Base):
    """A clinician's written decision to give a dose although readiness items are open."""

    __tablename__ = "dose_readiness_override"

    id: Mapped[int] = mapped_column(primary_key=True)
    dose_id: Mapped[int] = mapped_column(ForeignKey("dose.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    # [{code, outcome}] as they stood when the clinician signed.
    blocking_items: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    clinician_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    dose: Mapped[Dose] = relationship(back_populates="readiness_overrides")
