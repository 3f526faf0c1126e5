"""Who is asking: the actor every use case is given, and the clinic/patient scoping rules."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import Forbidden, NotFound
from service.vocabulary import STAFF_ROLES, Role


@dataclass(frozen=True)
class Actor:
    user_id: int
    role: str
    clinic_id: int
    patient_id: int | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_clinician(self) -> bool:
        return self.role == Role.CLINICIAN

    def require_staff(self) -> None:
        if not self.is_staff:
            raise Forbidden("This needs a clinic staff account")

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"This needs one of the roles: {', '.join(roles)}")

    def ensure_can_see(self, *, clinic_id: int, patient_id: int | None, what: str) -> None:
        """Another clinic's or another patient's object does not exist for this actor."""
        if clinic_id != self.clinic_id:
            raise NotFound(f"{what} not found")
        if not self.is_staff and (patient_id is None or patient_id != self.patient_id):
            raise NotFound(f"{what} not found")
