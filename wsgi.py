"""What a WSGI server serves: `waitress-serve wsgi:app` or `gunicorn wsgi:app`.

Refuses to start without a strong SECRET_KEY (see service.config), unless CD20_ENV=development.
"""

from __future__ import annotations

import gc

from service import create_app

app = create_app()
# What the app built at start (mappers, schemas, the OpenAPI document) lives as long as the
# process: frozen, the collector's full passes stop walking it every few dozen requests, which
# was a pause of 100 ms and more in the middle of a request.
gc.freeze()
