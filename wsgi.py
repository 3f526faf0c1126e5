"""What a WSGI server serves: `waitress-serve wsgi:app` or `gunicorn wsgi:app`."""

from __future__ import annotations

from service import create_app

app = create_app()
