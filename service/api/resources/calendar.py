"""Calendar feeds: the patient's doses and the clinic's chair schedule as iCalendar, by login or
by a secret feed URL that calendar apps subscribe to."""

from __future__ import annotations

from typing import Any

from flask import Response, g, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.calendar import CalendarFeedSchema, ChairRangeArgsSchema
from service.api.context import actor, db, login_required
from service.api.contract import INTEGRATIONS, PATIENT_APP, STAFF, operation
from service.exports import calendar, feeds

blp = Blueprint("calendar", __name__, description="Calendar feeds (iCalendar, RFC 5545)")

ICS = {"type": "string", "description": "An iCalendar document (RFC 5545)"}
NOT_MODIFIED = "Not modified: the If-None-Match ETag is current"
FEED_ENDPOINT = "calendar.SecretFeed"


def ics_response(document: calendar.CalendarDocument) -> Response:
    """The document with its ETag; 304 when the poller already has it."""
    response = Response(document.body, mimetype=calendar.MEDIA_TYPE)
    response.headers["Content-Disposition"] = 'inline; filename="calendar.ics"'
    response.set_etag(document.etag)
    response.make_conditional(request)
    return response


def feed_urls(new: feeds.NewFeed) -> dict[str, Any]:
    url = url_for(FEED_ENDPOINT, feed_token=new.token, _external=True)
    return {
        "url": url,
        "webcal_url": "webcal://" + url.split("://", 1)[1],
        "created_at": new.feed.created_at,
    }


@blp.route("/me/calendar.ics")
class MyCalendar(MethodView):
    decorators = [login_required]

    @operation("getMyCalendar", PATIENT_APP)
    @blp.response(200, ICS, content_type=calendar.MEDIA_TYPE)
    @blp.alt_response(304, description=NOT_MODIFIED)
    def get(self) -> Any:
        """Read my doses and monitoring tasks as a calendar."""
        return ics_response(calendar.patient_calendar(db(), actor()))


@blp.route("/me/calendar-feed")
class MyCalendarFeed(MethodView):
    decorators = [login_required]

    @operation("createMyCalendarFeed", PATIENT_APP)
    @blp.response(201, CalendarFeedSchema)
    def post(self) -> Any:
        """Make my secret calendar feed URL (shown once; an earlier one stops working)."""
        new = feeds.create_patient_feed(db(), actor())
        db().commit()
        return feed_urls(new)

    @operation("revokeMyCalendarFeed", PATIENT_APP)
    @blp.response(204)
    def delete(self) -> None:
        """Revoke my calendar feed URL."""
        feeds.revoke_my_patient_feed(db(), actor())
        db().commit()


@blp.route("/patients/<int:patient_id>/calendar-feed")
class PatientCalendarFeed(MethodView):
    decorators = [login_required]

    @operation("revokePatientCalendarFeed", STAFF)
    @blp.response(204)
    def delete(self, patient_id: int) -> None:
        """Revoke a patient's calendar feed URL (staff)."""
        feeds.revoke_patient_feed(db(), actor(), patient_id)
        db().commit()


@blp.route("/staff/schedule.ics")
class ChairCalendar(MethodView):
    decorators = [login_required]

    @operation("getChairCalendar", STAFF)
    @blp.arguments(ChairRangeArgsSchema(), location="query")
    @blp.response(200, ICS, content_type=calendar.MEDIA_TYPE)
    @blp.alt_response(304, description=NOT_MODIFIED)
    def get(self, args: dict[str, Any]) -> Any:
        """Read the clinic's chair schedule as a calendar (default: a week back, 8 weeks on)."""
        return ics_response(calendar.chair_calendar(db(), actor(), **args))


@blp.route("/staff/calendar-feed")
class StaffCalendarFeed(MethodView):
    decorators = [login_required]

    @operation("createChairCalendarFeed", STAFF)
    @blp.response(201, CalendarFeedSchema)
    def post(self) -> Any:
        """Make my secret chair-schedule feed URL (shown once; an earlier one stops working)."""
        new = feeds.create_chair_feed(db(), actor())
        db().commit()
        return feed_urls(new)

    @operation("revokeChairCalendarFeed", STAFF)
    @blp.response(204)
    def delete(self) -> None:
        """Revoke my chair-schedule feed URL."""
        feeds.revoke_my_chair_feed(db(), actor())
        db().commit()


@blp.route("/feeds/<string:feed_token>/calendar.ics")
class SecretFeed(MethodView):
    @operation("getCalendarFeed", INTEGRATIONS)
    @blp.doc(security=[])
    @blp.arguments(ChairRangeArgsSchema(), location="query")
    @blp.response(200, ICS, content_type=calendar.MEDIA_TYPE)
    @blp.alt_response(304, description=NOT_MODIFIED)
    def get(self, args: dict[str, Any], feed_token: str) -> Any:
        """Read a calendar by its secret feed URL (no login; rate-limited, audited)."""
        opened = feeds.open_feed(db(), feed_token)
        # The audit names the feed's owner and, for a patient's feed, the patient.
        g.actor = opened.owner
        g.audit_details = {"calendar_feed_id": opened.feed.id}
        if opened.feed.kind == feeds.FeedKind.PATIENT:
            document = calendar.patient_calendar(db(), opened.owner)
            g.audit_subjects = [("patient", opened.feed.patient_id)]
        else:
            # Names stay behind a login: a subscribed URL's content leaves the clinic.
            document = calendar.chair_calendar(db(), opened.owner, with_names=False, **args)
        return ics_response(document)
