"""The domain's words: every status, kind and role the API speaks, one enum each.

Models, use cases, the catalog and the schemas all take their words from here, so a status is
spelled once. The members are `str`, so they compare equal to the strings stored and sent.
"""

from __future__ import annotations

from enum import StrEnum


def values(*members: StrEnum | type[StrEnum]) -> tuple[str, ...]:
    """Plain strings, in order: of whole enums, or of single members."""
    out: list[str] = []
    for item in members:
        if isinstance(item, StrEnum):
            out.append(item.value)
        else:
            out.extend(member.value for member in item)
    return tuple(out)


class Role(StrEnum):
    ADMIN = "admin"
    CLINICIAN = "clinician"
    PATIENT = "patient"


STAFF_ROLES = values(Role.ADMIN, Role.CLINICIAN)


class PlanStatus(StrEnum):
    DRAFT = "draft"
    SCREENING = "screening"
    READY = "ready"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    DISCONTINUED = "discontinued"


# A patient has at most one plan in these at a time.
OPEN_PLAN_STATUSES = values(
    PlanStatus.DRAFT, PlanStatus.SCREENING, PlanStatus.READY, PlanStatus.ACTIVE, PlanStatus.ON_HOLD
)


class ScreeningOutcome(StrEnum):
    """A checklist item's outcome, and the checklist's (the worst of its items')."""

    CLEARED = "cleared"
    PENDING = "pending"
    NEEDS_REVIEW = "needs_review"
    CONTRAINDICATED = "contraindicated"


class ScreeningStatus(StrEnum):
    PENDING = "pending"  # no result yet
    DONE = "done"
    EXPIRED = "expired"  # older than its validity on the first dose's day: no longer clears


class HbvPath(StrEnum):
    """Which hepatitis B path a checklist follows (issue 8)."""

    PENDING = "pending_serology"
    NONE = "none"
    ANTI_HBC_POSITIVE = "anti_hbc_positive"
    HBSAG_POSITIVE = "hbsag_positive"


class ConsultDecision(StrEnum):
    PROPHYLAXIS = "prophylaxis"
    MONITOR = "monitor"
    NOT_ELIGIBLE = "not_eligible"


# What a catalog rule can decide for a result (pending is the absence of a result).
RULE_OUTCOMES = values(
    ScreeningOutcome.CLEARED, ScreeningOutcome.NEEDS_REVIEW, ScreeningOutcome.CONTRAINDICATED
)


class DoseKind(StrEnum):
    INITIAL = "initial"
    MAINTENANCE = "maintenance"
    SELF_INJECTION = "self_injection"


class DoseStatus(StrEnum):
    PLANNED = "planned"
    BOOKED = "booked"
    ADMINISTERED = "administered"
    # Did not happen on its day: still owed, overdue until it is given (the labels: "administer
    # as soon as possible"), never skipped by being missed.
    MISSED = "missed"
    CANCELLED = "cancelled"
    # Left out on purpose: a clinician's decision with a written reason.
    SKIPPED = "skipped"


OPEN_DOSE_STATUSES = values(DoseStatus.PLANNED, DoseStatus.BOOKED, DoseStatus.MISSED)
# Doses that will not happen: they neither anchor the schedule nor monitoring.
SKIPPED_DOSE_STATUSES = values(DoseStatus.CANCELLED, DoseStatus.SKIPPED)
# What a PATCH may set a dose's status to (skipping needs a clinician and a reason).
DOSE_STATUS_CHANGES = values(DoseStatus.MISSED, DoseStatus.CANCELLED, DoseStatus.SKIPPED)


class ReadinessCode(StrEnum):
    """One line of a dose's own pre-dose checklist (the catalog says which apply where)."""

    ACTIVE_INFECTION = "active_infection"
    PREGNANCY = "pregnancy"
    PREMEDICATION = "premedication"
    SCREENING_CURRENT = "screening_current"
    IG_BEFORE_COURSE = "ig_before_course"


# Items staff (or the patient's check-in) answer; the others are worked out from the record.
ANSWERED_READINESS_CODES = values(ReadinessCode.ACTIVE_INFECTION, ReadinessCode.PREGNANCY)


class ReadinessStatus(StrEnum):
    PENDING = "pending"  # no answer yet
    ANSWERED = "answered"  # staff or the patient answered
    DERIVED = "derived"  # worked out from the plan's own record (screening, monitoring)
    AT_ADMINISTRATION = "at_administration"  # checked on the administration record itself
    OVERRIDDEN = "overridden"  # a clinician's written override covers it


class AnsweredBy(StrEnum):
    STAFF = "staff"
    PATIENT = "patient"


class Booking(StrEnum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"


class ReactionGrade(StrEnum):
    NONE = "none"
    MILD_MODERATE = "mild_moderate"
    SEVERE = "severe"
    LIFE_THREATENING = "life_threatening"


class TaskStatus(StrEnum):
    DUE = "due"
    DONE = "done"
    OVERDUE = "overdue"
    WAIVED = "waived"


OPEN_TASK_STATUSES = values(TaskStatus.DUE, TaskStatus.OVERDUE)


class FollowUpEnd(StrEnum):
    """Why monitoring that continued after a plan was ended by a clinician."""

    B_CELL_REPLETION = "b_cell_repletion"
    OTHER = "other"


class LabFlag(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    UNKNOWN = "unknown"


class RangeSource(StrEnum):
    REQUEST = "request"
    DEFAULT = "default"


class Audience(StrEnum):
    PATIENT = "patient"
    STAFF = "staff"


class ReminderStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# The runner still has work for these; derivation may still change or cancel them.
ACTIVE_REMINDER_STATUSES = values(
    ReminderStatus.PENDING, ReminderStatus.FAILED, ReminderStatus.CLAIMED
)


class ChannelName(StrEnum):
    INBOX = "inbox"
    WEBHOOK = "webhook"
    EMAIL = "email"
    PUSH = "push"
    WORKLIST = "worklist"


class Platform(StrEnum):
    IOS = "ios"
    ANDROID = "android"
    WEB = "web"


class AuditAction(StrEnum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    EXECUTE = "execute"


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"
    ERROR = "error"
