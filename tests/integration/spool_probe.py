"""`python -m tests.integration.spool_probe <database url> <spool dir> <plan id> <reads> [<moved>]`:
an API process that answers `reads` reads of a plan with its events spooled, moves the first
`moved` of them into audit_event, prints each answer's request id and status, then "answered",
and waits to be killed (run by test_audit_spool.py in a process of its own).

The token comes in CD20_PROBE_TOKEN, the signing key in SECRET_KEY. Its spool's own thread never
moves anything here (flush interval 60 s): what is moved is what the probe moved.
"""

from __future__ import annotations

import os
import sys
import time

from service.api.middleware.auditing import SPOOL
from service.app import create_app
from service.config import Settings


def main() -> None:
    url, spool_dir, plan_id, reads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    moved = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    settings = Settings(
        database_url=url,
        secret_key=os.environ["SECRET_KEY"],
        environment="test",
        rate_limits_enabled=False,
        audit_spool_dir=spool_dir,
        audit_spool_flush_s=60,
    )
    app = create_app(settings)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {os.environ['CD20_PROBE_TOKEN']}"}
    for n in range(reads):
        answer = client.get(f"/api/v1/plans/{plan_id}", headers=headers)
        print(answer.headers["X-Request-ID"], answer.status_code, flush=True)
        if n + 1 == moved:
            app.extensions[SPOOL].flush()
    print("answered", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
