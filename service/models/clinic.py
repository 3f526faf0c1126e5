"""Clinic: the tenant every user and patient belongs to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow


class Clinic(Base):
    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    # Choices among conflicting sources, e.g. {"ocrelizumab-iv": {"min_interval": "twenty_weeks"}}
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def regimen_settings(self, regimen_code: str) -> dict[str, str]:
        return dict((self.settings or {}).get(regimen_code, {}))
