"""The floor for the API benchmark: a bare Flask app answering every GET with a fixed JSON body.

`gunicorn tests.bench.bare_app:app` with BENCH_BARE_BODY naming a file of the body to answer
(the API benchmark writes a real plan's body there, so both servers send as many bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response

app = Flask(__name__)
_BODY = (
    Path(os.environ["BENCH_BARE_BODY"]).read_bytes() if "BENCH_BARE_BODY" in os.environ else b"{}"
)


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def answer(path: str) -> Response:
    return Response(_BODY, mimetype="application/json")
