"""Where the API is mounted: one prefix for the blueprints, the middleware and the document."""

from __future__ import annotations

API_PREFIX = "/api/v1"
