"""Trust: the append-only audit trail and Idempotency-Key records."""
