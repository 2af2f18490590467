"""Persistent conversation threads: LangGraph's own checkpointers, SQLite or PostgreSQL.

A :class:`~marc.memory.core.config.ThreadsConfig` (``settings.threads``) names the store:
``MARC_THREADS_URL``, empty = the catalog's PostgreSQL database when ``MARC_DATABASE_URL`` is one,
else a SQLite file ``MARC_HOME/threads.db``; or an explicit ``postgresql://...`` /
``sqlite:///path`` URL. A thread is a LangGraph ``thread_id``; every turn is
checkpointed after each node, so an interrupted answer leaves the thread at its last complete step
and the next question continues from there (the checkpointers' guarantees).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from marc.memory.core.config import ThreadsConfig, as_config
from marc.memory.core.errors import ConfigError, StoreError, one_line

__all__ = [
    "THREADS_SETUP_LOCK",
    "ThreadExists",
    "UnknownThread",
    "list_threads",
    "open_checkpointer",
    "thread_exists",
    "threads_url",
]


class UnknownThread(ConfigError):
    """A thread id to continue that no conversation has (a typo, or another thread store)."""

    def __init__(self, thread: str) -> None:
        super().__init__(f"{thread}: no such thread")
        self.thread = thread


class ThreadExists(ConfigError):
    """A thread id to start that a conversation already has."""

    def __init__(self, thread: str) -> None:
        super().__init__(f"{thread}: a thread with this id exists already")
        self.thread = thread


THREADS_SETUP_LOCK = 0x4D524354
"""PostgreSQL advisory-lock key held around the thread store's migrations
(``PostgresSaver.setup()``), so two first-time processes do not run them at once (``"MRCT"`` in
ASCII). It differs from the catalog's :data:`marc.memory.catalog.MIGRATION_LOCK`: both stores
may live in one database, and a catalog upgrade must not wait for a thread-store setup."""


def threads_url(config: ThreadsConfig | Any) -> str:
    """Where threads are kept, as a URL (``sqlite:///...`` or ``postgresql://...``); ``config``
    may also be a ``Settings`` (its ``threads``)."""
    return as_config(config, ThreadsConfig).url


@contextmanager
def open_checkpointer(config: ThreadsConfig | Any) -> Iterator:
    """A ready (set-up) LangGraph checkpointer for ``config``'s thread store (a
    :class:`ThreadsConfig`, or a ``Settings``: its ``threads``).

    Raises:
        StoreError: the database cannot be opened or reached (one line, naming it).
    """
    url = threads_url(config)
    if url.startswith("sqlite:///"):
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # several processes (concurrent asks on different threads) share the file
            conn = sqlite3.connect(path, check_same_thread=False, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{path}: cannot open the thread store ({one_line(e)})") from e
        try:
            saver = SqliteSaver(conn)
            saver.setup()
            yield saver
        finally:
            conn.close()
        return
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    try:
        cm = PostgresSaver.from_conn_string(url)
        saver = cm.__enter__()
    except psycopg.Error as e:
        raise StoreError(f"{_safe(url)}: cannot reach the thread store ({one_line(e)})") from e
    try:
        # two first-time processes must not run the migrations at once
        saver.conn.execute("SELECT pg_advisory_lock(%s)", (THREADS_SETUP_LOCK,))
        try:
            saver.setup()
        finally:
            saver.conn.execute("SELECT pg_advisory_unlock(%s)", (THREADS_SETUP_LOCK,))
        yield saver
    finally:
        cm.__exit__(None, None, None)


def thread_exists(checkpointer, thread: str) -> bool:
    """Whether ``thread`` has any checkpoint in ``checkpointer``'s store."""
    return checkpointer.get_tuple({"configurable": {"thread_id": thread}}) is not None


def list_threads(checkpointer) -> list[tuple[str, datetime | None]]:
    """``(thread_id, time of its last checkpoint)`` of every thread, most recent first."""
    last: dict[str, datetime | None] = {}
    for item in checkpointer.list(None):
        thread = item.config["configurable"]["thread_id"]
        ts = item.checkpoint.get("ts")
        when = datetime.fromisoformat(ts) if ts else None
        if thread not in last or (when and (last[thread] is None or when > last[thread])):
            last[thread] = when
    return sorted(last.items(), key=lambda kv: kv[1] or datetime.min, reverse=True)


def _safe(url: str) -> str:
    """``url`` without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: say nothing of it
        return "the thread store"
