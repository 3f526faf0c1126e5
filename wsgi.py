"""What a WSGI server serves: `waitress-serve wsgi:app` or `gunicorn wsgi:app`.

Refuses to start without a strong SECRET_KEY (see service.config), unless CD20_ENV=development.
"""

from __future__ import annotations

from service import create_app

app = create_app()
