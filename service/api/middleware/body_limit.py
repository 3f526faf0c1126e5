"""A chunked body over MAX_CONTENT_LENGTH is 413, like one whose Content-Length says so.

Werkzeug checks the Content-Length header up front; a chunked body (no length) is read through a
stream that stops at the maximum, so without this check a body that is too large reaches the
view cut short and fails as malformed JSON (400) instead of being refused as too large.
"""

from __future__ import annotations

from flask import Flask, request

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def install(app: Flask) -> None:
    app.before_request(refuse_oversized_stream)


def refuse_oversized_stream() -> None:
    limit = request.max_content_length
    if request.method not in BODY_METHODS or limit is None or request.content_length is not None:
        return
    if len(request.get_data(cache=True)) >= limit:
        # The stream stopped at the maximum: reading on raises RequestEntityTooLarge (413).
        request.stream.read(1)
