"""Clinic: the tenant every user and patient belongs to, with typed views of its settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow

# Keys of Clinic.settings besides regimen codes (which hold the options chosen per regimen).
REMINDERS_KEY = "reminders"
WEBHOOK_KEY = "webhook"


@dataclass(frozen=True)
class ReminderDefaults:
    """The clinic's reminder defaults, with the project's where the clinic set none."""

    # None: the clinic did not choose; a patient's own lead days, or the project's, apply.
    dose_lead_days: tuple[int, ...] | None = None
    infection_checkin_days: int = 2
    labs_lead_days: int = 3
    # Staff reminders fire at this time of day in the clinic's zone.
    staff_time: time = time(8, 0)


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str


class Clinic(Base):
    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    # Choices among conflicting sources, e.g. {"ocrelizumab-iv": {"min_interval": "twenty_weeks"}},
    # plus "reminders" and "webhook"; validated on the way in (service.clinics.settings).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def regimen_settings(self, regimen_code: str) -> dict[str, str]:
        return dict((self.settings or {}).get(regimen_code, {}))

    @property
    def reminder_defaults(self) -> ReminderDefaults:
        stored = (self.settings or {}).get(REMINDERS_KEY) or {}
        project = ReminderDefaults()
        lead = stored.get("dose_lead_days")
        staff_time = stored.get("staff_time")
        return ReminderDefaults(
            dose_lead_days=tuple(lead) if lead else None,
            infection_checkin_days=int(
                stored.get("infection_checkin_days", project.infection_checkin_days)
            ),
            labs_lead_days=int(stored.get("labs_lead_days", project.labs_lead_days)),
            staff_time=time.fromisoformat(staff_time) if staff_time else project.staff_time,
        )

    @property
    def webhook(self) -> WebhookConfig | None:
        stored = (self.settings or {}).get(WEBHOOK_KEY)
        if not isinstance(stored, dict) or not stored.get("url") or not stored.get("secret"):
            return None
        return WebhookConfig(url=str(stored["url"]), secret=str(stored["secret"]))
