"""Account use cases on the real database, with the clock moved through `now=`."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.accounts import users
from service.accounts.tokens import authenticate
from service.clinics.settings import create_clinic, validate_clinic_settings
from service.db import utcnow
from service.errors import (
    AccountLocked,
    AlreadyExists,
    InvalidCode,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    ValidationFailed,
)
from service.models import Clinic, Invitation, LoginLock, RefreshToken, User
from tests.factories import PASSWORD, actor_of, make_clinic, make_patient, make_user

NEW_PASSWORD = "patient's own passphrase"


def fail(session, settings, email, now, times=1, address="192.0.2.1"):
    for _ in range(times):
        outcome = users.log_in(
            session, settings, username=email, password="wrong!", client_address=address, now=now
        )
        assert outcome.refusal is not None
    return outcome


def test_lock_lasts_fifteen_minutes_then_counting_starts_over(session, settings):
    clinic = make_clinic(session)
    user = make_user(session, settings, clinic, email="l@example.org")
    start = utcnow()

    locked = fail(session, settings, "l@example.org", start, times=10)
    assert isinstance(locked.refusal, AccountLocked)
    assert locked.refusal.headers == {"Retry-After": str(15 * 60)}
    # The lock is the address's (changed from a lock on the account itself).
    lock = session.scalar(select(LoginLock).where(LoginLock.client_address == "192.0.2.1"))
    assert lock.locked_until == start + timedelta(minutes=15)
    assert lock.account_key == hashlib.sha256(b"l@example.org").hexdigest()

    def right_password(at, address="192.0.2.1"):
        return users.log_in(
            session,
            settings,
            username="l@example.org",
            password=PASSWORD,
            client_address=address,
            now=at,
        )

    almost = right_password(start + timedelta(minutes=14, seconds=30))
    assert isinstance(almost.refusal, AccountLocked)
    assert almost.refusal.headers == {"Retry-After": "30"}
    # Another address is not locked out: the right password works there meanwhile.
    assert right_password(start + timedelta(minutes=1), "198.51.100.7").tokens().access_token

    later = start + timedelta(minutes=15, seconds=1)
    # After the lock, one failure is just a failure again.
    assert isinstance(fail(session, settings, "l@example.org", later).refusal, InvalidCredentials)
    ok = right_password(later)
    assert ok.tokens().access_token
    assert user.failed_logins == 0
    assert session.scalar(select(LoginLock).where(LoginLock.id == lock.id)) is None


def test_failure_counts_untouched_for_a_day_are_forgotten(session, settings):
    start = utcnow()
    fail(session, settings, "made.up@example.org", start, times=3)
    fail(session, settings, "other@example.org", start, times=10)  # locked, then idle
    assert len(session.scalars(select(LoginLock)).all()) == 2
    fail(session, settings, "third@example.org", start + timedelta(days=1, minutes=1))
    remaining = session.scalars(select(LoginLock).execution_options(populate_existing=True)).all()
    assert [lock.account_key for lock in remaining] == [
        hashlib.sha256(b"third@example.org").hexdigest()
    ]


def test_refusal_is_raised_only_when_asked(session, settings):
    outcome = fail(session, settings, "nobody@example.org", utcnow())
    with pytest.raises(InvalidCredentials):
        outcome.tokens()


def test_refresh_token_expires(session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="e@example.org")
    start = utcnow()
    pair = users.log_in(
        session, settings, username="e@example.org", password=PASSWORD, now=start
    ).tokens()

    late = start + timedelta(seconds=settings.refresh_token_ttl_s)
    outcome = users.refresh_session(session, settings, refresh_token=pair.refresh_token, now=late)
    assert isinstance(outcome.refusal, InvalidToken)


def test_refresh_tokens_are_stored_only_as_hashes_in_one_family(session, settings):
    clinic = make_clinic(session)
    user = make_user(session, settings, clinic, email="h@example.org")
    first = users.log_in(session, settings, username="h@example.org", password=PASSWORD).tokens()
    second = users.refresh_session(session, settings, refresh_token=first.refresh_token).tokens()

    rows = session.scalars(
        select(RefreshToken).where(RefreshToken.user_id == user.id).order_by(RefreshToken.id)
    ).all()
    assert [r.token_hash for r in rows] == [
        hashlib.sha256(t.refresh_token.encode()).hexdigest() for t in (first, second)
    ]
    assert rows[0].family_id == rows[1].family_id
    assert rows[0].used_at is not None
    assert rows[1].used_at is None


def test_invitation_expires_and_is_stored_hashed(session, settings):
    clinic = make_clinic(session)
    staff = actor_of(make_user(session, settings, clinic))
    patient = make_patient(session, clinic)
    start = utcnow()
    issued = users.invite_patient(session, staff, settings, patient_id=patient.id, now=start)

    stored = session.scalar(select(Invitation).where(Invitation.patient_id == patient.id))
    assert issued.code not in stored.code_hash
    assert stored.expires_at == start + timedelta(seconds=settings.invitation_ttl_s)
    with pytest.raises(InvalidCode):
        users.activate_account(
            session,
            settings,
            code=issued.code,
            password=NEW_PASSWORD,
            now=stored.expires_at,
        )
    assert session.scalar(select(User).where(User.patient_id == patient.id)) is None


def test_deactivated_patient_account_comes_back_through_a_new_invitation(session, settings):
    clinic = make_clinic(session)
    admin = actor_of(make_user(session, settings, clinic, "admin"))
    patient = make_patient(session, clinic, email="back@example.org")
    code = users.invite_patient(session, admin, settings, patient_id=patient.id).code
    users.activate_account(session, settings, code=code, password=NEW_PASSWORD)
    account = session.scalar(select(User).where(User.patient_id == patient.id))
    old_actor = actor_of(account)
    old_token = users.log_in(
        session, settings, username="back@example.org", password=NEW_PASSWORD
    ).tokens()

    users.update_user(session, admin, account, {"is_active": False})
    code = users.invite_patient(session, admin, settings, patient_id=patient.id).code
    users.activate_account(session, settings, code=code, password="yet another passphrase")

    assert account.is_active
    assert session.scalar(select(User.id).where(User.patient_id == patient.id)) == old_actor.user_id
    with pytest.raises(InvalidToken):
        authenticate(session, settings, old_token.access_token)
    again = users.log_in(
        session, settings, username="back@example.org", password="yet another passphrase"
    )
    assert again.tokens()


def test_invitation_needs_staff_and_the_account_must_not_exist(session, settings):
    clinic, other = make_clinic(session), make_clinic(session)
    staff = actor_of(make_user(session, settings, clinic))
    patient = make_patient(session, clinic)
    make_user(session, settings, clinic, "patient", patient=patient)

    with pytest.raises(AlreadyExists):
        users.invite_patient(session, staff, settings, patient_id=patient.id)
    with pytest.raises(NotFound):
        users.invite_patient(session, staff, settings, patient_id=make_patient(session, other).id)


def test_create_clinic_with_its_admin(session, settings):
    clinic, admin = create_clinic(
        session,
        settings,
        name="  New Clinic ",
        time_zone="America/New_York",
        admin_email="Head@Example.org",
        admin_password=PASSWORD,
    )
    assert clinic.name == "New Clinic"
    assert (admin.clinic_id, admin.role, admin.email) == (clinic.id, "admin", "head@example.org")
    with pytest.raises(ValidationFailed) as bad_zone:
        create_clinic(
            session,
            settings,
            name="X",
            time_zone="Europe/Atlantis",
            admin_email="x@example.org",
            admin_password=PASSWORD,
        )
    assert set(bad_zone.value.errors) == {"time_zone"}


def test_clinic_settings_are_checked_against_the_catalog(session, settings):
    valid = {
        "ocrelizumab-iv": {"min_interval": "twenty_weeks"},
        "reminders": {"anything": ["goes", 1]},
    }
    assert validate_clinic_settings(valid) == valid
    with pytest.raises(ValidationFailed) as refused:
        validate_clinic_settings({"ocrelizumab-iv": {"min_interval": "weekly"}})
    assert set(refused.value.errors["settings"]["ocrelizumab-iv"]) == {"min_interval"}


@pytest.fixture
def committed_login(requires_postgres, settings):
    """A user and a refresh token committed for real, so that two connections can race."""
    with Session(requires_postgres) as setup:
        clinic = make_clinic(setup)
        make_user(setup, settings, clinic, email="race@example.org")
        pair = users.log_in(
            setup, settings, username="race@example.org", password=PASSWORD
        ).tokens()
        setup.commit()
        clinic_id = clinic.id
    yield pair.refresh_token
    with Session(requires_postgres) as cleanup:
        clinic_users = select(User.id).where(User.clinic_id == clinic_id)
        cleanup.execute(delete(RefreshToken).where(RefreshToken.user_id.in_(clinic_users)))
        cleanup.execute(delete(User).where(User.clinic_id == clinic_id))
        cleanup.execute(delete(Clinic).where(Clinic.id == clinic_id))
        cleanup.commit()


def test_two_concurrent_refreshes_with_one_token_get_the_same_pair(
    requires_postgres, settings, committed_login
):
    token_hash = hashlib.sha256(committed_login.encode()).hexdigest()
    both_loaded = threading.Barrier(2)
    pairs: list[users.TokenPair | None] = []

    def refresh() -> None:
        with Session(requires_postgres) as session:
            # Both see the token unused before either claims it.
            session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
            both_loaded.wait(timeout=10)
            outcome = users.refresh_session(session, settings, refresh_token=committed_login)
            session.commit()
            pairs.append(outcome.pair)

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # One rotation; the request that lost the race repeats it instead of ending the session.
    assert len(pairs) == 2
    assert pairs[0] is not None
    assert pairs[1] is not None
    assert pairs[0].access_token == pairs[1].access_token
    assert pairs[0].refresh_token == pairs[1].refresh_token
    with Session(requires_postgres) as session:
        family = session.scalars(select(RefreshToken).where(RefreshToken.revoked_at.is_(None)))
        assert len(family.all()) == 2
        renewed = users.refresh_session(session, settings, refresh_token=pairs[0].refresh_token)
        assert renewed.refusal is None
        session.commit()
