"""The catalog's and the thread store's migrations take different PostgreSQL advisory locks, so
neither waits for the other when both live in one database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from marc.agent.threads import THREADS_SETUP_LOCK, open_checkpointer
from marc.memory.catalog import MIGRATION_LOCK, Catalog
from marc.memory.core.settings import Settings

WAIT_S = 60.0  # a migration on an idle server takes well under a second; the machine is loaded


def test_the_two_migration_locks_differ():
    assert MIGRATION_LOCK != THREADS_SETUP_LOCK
    for key in (MIGRATION_LOCK, THREADS_SETUP_LOCK):
        assert isinstance(key, int) and -(2**63) <= key < 2**63  # a bigint advisory-lock key


def finishes_while(lock_sql: str, url: str, work: Callable[[], None]) -> None:
    """Run ``work`` on a thread while another session holds a lock (taken by ``lock_sql``);
    fail (after releasing the lock, so the thread ends) if ``work`` waits for it."""
    engine = sa.create_engine(url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    try:
        with engine.connect() as holder:
            holder.exec_driver_sql(lock_sql)
            t = threading.Thread(target=run, daemon=True)
            t.start()
            t.join(WAIT_S)
            blocked = t.is_alive()
            holder.rollback()  # ends a transaction-scoped lock
            holder.exec_driver_sql("SELECT pg_advisory_unlock_all()")  # and a session one
            t.join(WAIT_S)
        assert not blocked, "it waited for the other store's migration lock"
        assert not errors, errors
    finally:
        engine.dispose()


def open_thread_store(url: str, home: Path) -> Callable[[], None]:
    def work() -> None:
        with open_checkpointer(Settings(home=home, threads_url=url)) as saver:
            assert saver.get_tuple({"configurable": {"thread_id": "none"}}) is None

    return work


@pytest.mark.postgres
def test_a_catalog_upgrade_does_not_wait_for_a_thread_store_setup(new_postgres_database):
    url = new_postgres_database()
    # a thread store setting up in the same database holds its lock (a session lock)
    finishes_while(
        f"SELECT pg_advisory_lock({THREADS_SETUP_LOCK})", url, lambda: Catalog(url).close()
    )
    with Catalog(url) as catalog:  # the schema was made
        assert catalog.counts() == {"videos": 0, "events": 0, "failed": 0}


@pytest.mark.postgres
def test_a_thread_store_setup_does_not_wait_for_a_catalog_upgrade(new_postgres_database, tmp_path):
    url = new_postgres_database()
    # a catalog upgrading in the same database holds its lock (for its transaction)
    finishes_while(
        f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})", url, open_thread_store(url, tmp_path)
    )


@pytest.mark.postgres
def test_catalog_and_thread_store_migrate_one_new_database_at_once(new_postgres_database, tmp_path):
    url = new_postgres_database()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def both(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(WAIT_S)
                work()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        return run

    threads = [
        threading.Thread(target=both(lambda: Catalog(url).close())),
        threading.Thread(target=both(open_thread_store(url, tmp_path))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * WAIT_S)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"videos", "events", "alembic_version", "checkpoints"} <= tables
