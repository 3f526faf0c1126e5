"""Fast seeding for the runner benchmarks: one clinic, its patients, reminders by the thousand.

Everything is one INSERT ... SELECT FROM generate_series per call, so a million reminders take
seconds (PostgreSQL only). The caller's connection owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

BENCH_CLINIC_NAME = "cd20 runner bench"
KEY_PREFIX = "bench:"
# What a real "dose upcoming" reminder carries, so rendering costs what it costs in production.
DOSE_PAYLOAD = {
    "dose_sequence": 3,
    "amount_mg": 600,
    "drug": "ocrelizumab",
    "due_date": "2027-01-04",
    "appointment_at": "2027-01-04T08:30:00+00:00",
    "location": "Infusion unit 2",
    "lead_days": 1,
}


@dataclass(frozen=True)
class BenchClinic:
    clinic_id: int
    patient_ids: tuple[int, ...]


@dataclass(frozen=True)
class Seeded:
    """A block of reminders seeded by one call: ids first_id..last_id, keys bench:<first_key>..."""

    first_id: int
    last_id: int
    count: int


def seed_clinic(
    conn: Connection, *, patients: int = 1000, name: str = BENCH_CLINIC_NAME
) -> BenchClinic:
    """A clinic and `patients` patients in Europe/Berlin (unique MRNs within the clinic)."""
    clinic_id = conn.execute(
        text(
            "INSERT INTO clinic (name, time_zone, settings, created_at)"
            " VALUES (:name, 'Europe/Berlin', '{}'::json, now()) RETURNING id"
        ),
        {"name": name},
    ).scalar_one()
    patient_ids = conn.execute(
        text(
            """
            INSERT INTO patient (clinic_id, mrn, given_name, family_name, birth_date,
                time_zone, email, reminder_time, quiet_start, quiet_end, reminder_channels,
                version, created_at, updated_at)
            SELECT :clinic_id, 'BENCH' || lpad(i::text, 7, '0'), 'Bench', 'Patient ' || i,
                DATE '1985-03-14', 'Europe/Berlin', 'bench' || i || '@example.org',
                TIME '09:00', TIME '21:00', TIME '08:00', '[]'::json, 1, now(), now()
            FROM generate_series(1, :patients) AS i
            RETURNING id
            """
        ),
        {"clinic_id": clinic_id, "patients": patients},
    ).scalars()
    return BenchClinic(clinic_id=clinic_id, patient_ids=tuple(sorted(patient_ids)))


def seed_reminders(
    conn: Connection,
    clinic: BenchClinic,
    *,
    first_key: int,
    count: int,
    fire_at: datetime,
    spread_s: float = 0.0,
    channels: Sequence[str] = ("inbox",),
) -> Seeded:
    """`count` pending patient reminders with keys bench:<first_key>.., round-robin over
    patients, on `channels`.

    Reminder k (0-based) fires at fire_at + k * spread_s / count seconds.
    """
    if count <= 0:
        raise ValueError("count must be positive")
    row = conn.execute(
        text(
            """
            WITH made AS (
                INSERT INTO reminder (clinic_id, patient_id, audience, kind, subject_type,
                    subject_id, idempotency_key, local_date, local_time, time_zone, fire_at,
                    channels, status, due_at, attempts, payload, created_at, updated_at)
                SELECT :clinic_id, (CAST(:patients AS integer[]))[1 + (k % :patient_count)],
                    'patient', 'dose_upcoming', 'dose', :first_key + k,
                    :prefix || (:first_key + k), f.at::date, TIME '09:00', 'Europe/Berlin',
                    f.at, CAST(:channels AS json), 'pending', f.at, 0, CAST(:payload AS json),
                    now(), now()
                FROM generate_series(0, :count - 1) AS k,
                    LATERAL (SELECT CAST(:fire_at AS timestamptz)
                        + make_interval(secs => k * CAST(:step AS double precision))) AS f(at)
                ORDER BY k
                RETURNING id
            )
            SELECT min(id), max(id), count(*) FROM made
            """
        ),
        {
            "clinic_id": clinic.clinic_id,
            "patients": list(clinic.patient_ids),
            "patient_count": len(clinic.patient_ids),
            "first_key": first_key,
            "prefix": KEY_PREFIX,
            "count": count,
            "fire_at": fire_at,
            "step": spread_s / count,
            "payload": json.dumps(DOSE_PAYLOAD),
            "channels": json.dumps(list(channels)),
        },
    ).one()
    if row[1] - row[0] + 1 != row[2]:
        # The tallies select a block by id range: another writer took ids in between.
        raise RuntimeError("reminder ids of one seeded block are not contiguous")
    return Seeded(first_id=row[0], last_id=row[1], count=row[2])


def delete_bench_clinics(conn: Connection, *, name: str = BENCH_CLINIC_NAME) -> None:
    """Remove every clinic called `name` and all it holds (left over from an earlier run)."""
    clinic_ids = list(
        conn.execute(text("SELECT id FROM clinic WHERE name = :name"), {"name": name}).scalars()
    )
    if not clinic_ids:
        return
    ids = {"ids": clinic_ids}
    patients = "SELECT id FROM patient WHERE clinic_id = ANY(:ids)"
    conn.execute(text(f"DELETE FROM inbox_message WHERE patient_id IN ({patients})"), ids)
    conn.execute(text(f"DELETE FROM inbox_counter WHERE patient_id IN ({patients})"), ids)
    conn.execute(
        text(
            "DELETE FROM delivery WHERE reminder_id IN"
            " (SELECT id FROM reminder WHERE clinic_id = ANY(:ids))"
        ),
        ids,
    )
    conn.execute(text("DELETE FROM staff_alert WHERE clinic_id = ANY(:ids)"), ids)
    conn.execute(text("DELETE FROM reminder WHERE clinic_id = ANY(:ids)"), ids)
    conn.execute(text("DELETE FROM patient WHERE clinic_id = ANY(:ids)"), ids)
    conn.execute(text("DELETE FROM clinic WHERE id = ANY(:ids)"), ids)


@dataclass(frozen=True)
class Tally:
    """How a block of reminders ended up: in the inbox once, not at all, or more than once."""

    reminders: int
    delivered: int
    lost: int
    duplicates: int
    not_sent: int
    seq_gaps: int


def tally(conn: Connection, block: Seeded) -> Tally:
    """Count rows, not distinct ids: a second message for a reminder is a duplicate."""
    bounds = {"lo": block.first_id, "hi": block.last_id}
    reminders, not_sent = conn.execute(
        text(
            "SELECT count(*), count(*) FILTER (WHERE status <> 'sent') FROM reminder"
            " WHERE id BETWEEN :lo AND :hi"
        ),
        bounds,
    ).one()
    messages, delivered = conn.execute(
        text(
            "SELECT count(*), count(DISTINCT reminder_id) FROM inbox_message"
            " WHERE reminder_id BETWEEN :lo AND :hi"
        ),
        bounds,
    ).one()
    # The block's messages were posted after every earlier one of the same patients, so per
    # patient they must hold consecutive change numbers.
    seq_gaps = conn.execute(
        text(
            "SELECT count(*) FROM (SELECT patient_id FROM inbox_message"
            " WHERE reminder_id BETWEEN :lo AND :hi GROUP BY patient_id"
            " HAVING max(seq) - min(seq) + 1 <> count(*)) AS gapped"
        ),
        bounds,
    ).scalar_one()
    return Tally(
        reminders=reminders,
        delivered=delivered,
        lost=reminders - delivered,
        duplicates=messages - delivered,
        not_sent=not_sent,
        seq_gaps=seq_gaps,
    )


def patients_with_seq_gaps(conn: Connection, clinic_id: int) -> int:
    """Patients of the clinic whose inbox change numbers are not exactly 1, 2, ..., count."""
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM (SELECT m.patient_id FROM inbox_message m"
                " JOIN patient p ON p.id = m.patient_id WHERE p.clinic_id = :clinic_id"
                " GROUP BY m.patient_id HAVING min(m.seq) <> 1 OR max(m.seq) <> count(*))"
                " AS gapped"
            ),
            {"clinic_id": clinic_id},
        ).scalar_one()
    )


def delivered_count(conn: Connection, block: Seeded) -> int:
    """Messages in the inbox for the block (index-only on the reminder_id unique index)."""
    return int(
        conn.execute(
            text("SELECT count(*) FROM inbox_message WHERE reminder_id BETWEEN :lo AND :hi"),
            {"lo": block.first_id, "hi": block.last_id},
        ).scalar_one()
    )


@contextmanager
def scratch_database(url: str, suffix: str) -> Iterator[str]:
    """A migrated PostgreSQL database named <database of url>_<suffix>, dropped afterwards.

    Runner processes need committed rows, and deliver every due reminder they find: a
    database of their own keeps them away from everything else.
    """
    from service.migrations import upgrade_database

    base = make_url(url)
    name = f"{base.database}_{suffix}"
    scratch = base.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        upgrade_database(scratch)
        yield scratch
    finally:
        # The server may have been restarted meanwhile: the pool must not hand out a dead link.
        admin.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
