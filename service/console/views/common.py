"""What every page's view does: try a change, hold its commit, or keep the refusal to show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, request
from werkzeug.wrappers import Response

from service.console.context import db, hold_commit
from service.errors import DomainError


def attempt(change: Callable[[], Any]) -> DomainError | None:
    """Run one use case; it commits with the request's audit event once the page is answered
    (context.finish). A refusal rolls everything back and is returned to show."""
    try:
        change()
        hold_commit()
    except DomainError as refusal:
        db().rollback()
        return refusal
    return None


def done(message: str, to: str) -> Response:
    """After a change: say what happened, and show the page again (post, redirect, get)."""
    flash(message)
    return redirect(to)


def posted(form_id: str) -> dict[str, Any]:
    """The failed form's input, for the page that shows it again (nothing is lost)."""
    return {"form_id": form_id, "values": request.form.to_dict(flat=True)}
