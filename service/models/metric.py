"""Cumulative runner counters shared by every runner process, read by /metrics."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base


class MetricCounter(Base):
    __tablename__ = "metric_counter"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)
