"""Request middleware: request ids and audit, body limit, idempotency, rate limits, headers."""
