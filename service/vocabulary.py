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
    MISSED = "missed"
    CANCELLED = "cancelled"


OPEN_DOSE_STATUSES = values(DoseStatus.PLANNED, DoseStatus.BOOKED)
# Doses that will not happen: they neither anchor the schedule nor monitoring.
SKIPPED_DOSE_STATUSES = values(DoseStatus.MISSED, DoseStatus.CANCELLED)


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
