"""Bodies of polled reads, kept per process and served again while their freshness stamp holds.

A polled read (a plan, a patient, the app's /me views) first computes its stamp: the one cheap
statement that changes whenever its body would (service.patients.freshness), also used for its
ETag. Its rendered body is kept under that stamp's digest together with the URL, so asking again
while nothing changed skips loading and serializing; any change makes a new digest, and the old
body is never served again (it ages out of the least-recently-used store). The stamp already names
the patient or plan and the query, so one caller's body cannot answer another's request.

Each process keeps its own store, bounded in bytes (CD20_RENDER_STORE_BYTES, 0 turns it off):
nothing is shared, so there is nothing to invalidate across processes.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache
from flask import Flask, Response, current_app, g, request

EXTENSION = "cd20_rendered"


class RenderStore:
    def __init__(self, max_bytes: int) -> None:
        self._bodies: LRUCache[tuple[str, bytes, str], bytes] | None = (
            LRUCache(maxsize=max_bytes, getsizeof=len) if max_bytes > 0 else None
        )
        self._lock = threading.Lock()  # `cd20 serve` answers on threads

    def get(self, key: tuple[str, bytes, str]) -> bytes | None:
        if self._bodies is None:
            return None
        with self._lock:
            body: bytes | None = self._bodies.get(key)
        return body

    def clear(self) -> None:
        """Forget every body (a test's database is rolled back, and its ids used again)."""
        if self._bodies is not None:
            with self._lock:
                self._bodies.clear()

    def put(self, key: tuple[str, bytes, str], body: bytes) -> None:
        if self._bodies is None or len(body) > self._bodies.maxsize:
            return
        with self._lock:
            self._bodies[key] = body


def kept(validator: str) -> Response | None:
    """The body this process rendered for this URL and stamp (`validator`: the stamp's digest,
    as its ETag carries it), if it still has it; otherwise None, and the body the view renders is
    kept for the next request."""
    key = (request.path, request.query_string, validator)
    body = _store().get(key)
    if body is None:
        g.render_key = key
        return None
    return Response(body, mimetype="application/json")


def install(app: Flask, max_bytes: int) -> None:
    app.extensions[EXTENSION] = RenderStore(max_bytes)

    def keep_body(response: Response) -> Response:
        key = g.get("render_key")
        if key is not None and response.status_code == 200 and not response.is_streamed:
            _store().put(key, response.get_data())
        return response

    app.after_request(keep_body)


def store_of(app: Flask) -> RenderStore:
    store: RenderStore = app.extensions[EXTENSION]
    return store


def _store() -> RenderStore:
    store: RenderStore = current_app.extensions[EXTENSION]
    return store
