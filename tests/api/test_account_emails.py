"""Making an account never reveals whether an e-mail address has an account in another clinic:
the refusal is the same whichever clinic (if any) the address belongs to."""

from __future__ import annotations

from tests.factories import PASSWORD, auth_headers, make_clinic, make_patient, make_user

USERS = "/api/v1/users"
ACTIVATE = "/api/v1/auth/activate"


def _seen(response):
    return response.status_code, response.get_json()


def test_staff_creation_answers_the_same_for_an_email_of_this_or_another_clinic(
    client, session, settings
):
    clinic, other = make_clinic(session), make_clinic(session)
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    make_user(session, settings, clinic, email="ours@example.org")
    make_user(session, settings, other, email="theirs@example.org")

    def create(email):
        return client.post(
            USERS, json={"email": email, "role": "clinician", "password": PASSWORD}, headers=admin
        )

    ours, theirs = _seen(create("ours@example.org")), _seen(create("THEIRS@example.org"))
    assert ours == theirs
    status, body = theirs
    assert (status, body["code"]) == (409, "already_exists")
    assert set(body["errors"]) == {"email"}
    assert str(other.id) not in str(body)


def test_invitation_answers_the_same_for_an_email_of_this_or_another_clinic(
    client, session, settings
):
    clinic, other = make_clinic(session), make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, clinic))
    make_user(session, settings, clinic, email="ours@example.org")
    make_user(session, settings, other, email="theirs@example.org")
    answers = []
    for email in ("ours@example.org", "theirs@example.org"):
        patient = make_patient(session, clinic, email=email)
        answers.append(
            _seen(client.post(f"/api/v1/patients/{patient.id}/invitation", headers=staff))
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == 409
    # And the same refusal as staff creation gives: one answer for every cause.
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    created = client.post(
        USERS,
        json={"email": "ours@example.org", "role": "clinician", "password": PASSWORD},
        headers=admin,
    )
    assert _seen(created) == answers[0]


def test_activation_answers_the_same_when_another_clinic_took_the_email_meanwhile(
    client, session, settings
):
    clinic, other = make_clinic(session), make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, clinic))
    answers = []
    for owner_clinic, email in ((clinic, "late1@example.org"), (other, "late2@example.org")):
        patient = make_patient(session, clinic, email=email)
        code = client.post(f"/api/v1/patients/{patient.id}/invitation", headers=staff).get_json()[
            "code"
        ]
        make_user(session, settings, owner_clinic, email=email)
        answers.append(_seen(client.post(ACTIVATE, json={"code": code, "password": PASSWORD})))
    assert answers[0] == answers[1]
    assert answers[0][0] == 409
