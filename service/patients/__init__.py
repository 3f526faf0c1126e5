"""Patients: enrolment and records, and the push devices of their app."""
