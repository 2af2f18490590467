"""Opening the catalog: engine set-up per backend and the Alembic upgrade to the current schema."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from marc.memory.catalog.claims import IngestClaims
from marc.memory.catalog.forgetting import Forgetting
from marc.memory.catalog.queries import CatalogQueries
from marc.memory.core.errors import StoreError

_ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def _alembic_config() -> Config:
    cfg = Config(str(_ALEMBIC_INI))
    cfg.set_main_option("script_location", str(_ALEMBIC_INI.parent / "migrations"))
    return cfg


MIGRATION_LOCK = 0x4D415243
"""PostgreSQL advisory-lock key that serialises the catalog's schema upgrades (``"MARC"`` in
ASCII). Other advisory locks on the same database must use other keys, or unrelated migrations
wait for each other: the thread store's is ``marc.agent.threads.THREADS_SETUP_LOCK``."""


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the catalog's schema to ``revision`` (idempotent).

    Processes opening a new catalog at the same moment (two ``marc ingest`` at once) take turns:
    PostgreSQL through a transaction-scoped advisory lock, SQLite through a lock file beside the
    database, so the second one finds the schema made instead of creating it twice.
    """
    cfg = _alembic_config()
    with _sqlite_migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database in (None, "", ":memory:"):
        yield
        return
    with open(f"{database}.migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (marc status, search) never block the ingest writer; a crash never corrupts.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Catalog(CatalogQueries, IngestClaims, Forgetting):
    """A connection to the catalog database at ``url``; the schema is upgraded on open.

    Its methods are the catalog's whole interface: the reads of :class:`.CatalogQueries` and
    the ingest's writes of :class:`.IngestClaims`, ``marc forget``'s of :class:`.Forgetting` (no
    SQL is written outside this package).
    :meth:`session` is for those methods and for tests.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            u = make_url(url)
            if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(u, pool_pre_ping=True)
            if u.get_backend_name() == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            upgrade(self.engine)
        except SQLAlchemyError as e:
            raise StoreError(f"catalog at {self.display_url} is unusable: {_first_line(e)}") from e
        except ModuleNotFoundError as e:
            raise StoreError(f"catalog at {self.display_url}: driver missing ({e.name})") from e
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """:attr:`url` without its password, to show (``marc status``, error messages)."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return self.url

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or rolls back on error."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except SQLAlchemyError as e:
                s.rollback()
                raise StoreError(f"catalog at {self.display_url}: {_first_line(e)}") from e
            except BaseException:
                s.rollback()
                raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__
