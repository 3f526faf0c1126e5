"""On a SQLite file, a unit of work that reads, then writes, waits for other writers."""

from __future__ import annotations

import threading

from sqlalchemy import select, update

from service.db import SessionFactory, create_db_engine, unit_of_work
from service.migrations import upgrade_database
from service.models import Clinic


def test_read_then_write_survives_another_process_committing_in_between(tmp_path, engine):
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    upgrade_database(url)
    sqlite = create_db_engine(url)
    with sqlite.begin() as connection:
        connection.execute(
            Clinic.__table__.insert().values(id=1, name="A", time_zone="UTC", settings={})
        )
    read_done, other_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_writer() -> None:
        read_done.wait(timeout=10)
        try:
            with sqlite.begin() as connection:
                connection.execute(update(Clinic).values(name="B"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            other_done.set()

    SessionFactory.configure(bind=sqlite)
    try:
        writer = threading.Thread(target=other_writer)
        writer.start()
        with unit_of_work() as session:
            session.scalar(select(Clinic.name))
            read_done.set()
            # The other writer waits for our lock instead of slipping in between.
            assert not other_done.wait(timeout=0.5)
            session.execute(update(Clinic).values(name="C"))
        writer.join(timeout=20)
    finally:
        SessionFactory.configure(bind=engine)
        sqlite.dispose()
    assert errors == []
    check = create_db_engine(url)
    with check.connect() as connection:
        assert connection.scalar(select(Clinic.name)) == "B"
    check.dispose()
