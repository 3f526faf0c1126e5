"""Clinics, the tenants: creation with a first admin, their settings, and the demo clinic."""
