"""Opening the catalog: engine set-up per backend and the Alembic upgrade to the current schema."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from marc.memory.catalog.models import Event, Video, VideoPath
from marc.memory.core.errors import StoreError
from marc.memory.fingerprint import fingerprint, video_id

_ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def _alembic_config() -> Config:
    cfg = Config(str(_ALEMBIC_INI))
    cfg.set_main_option("script_location", str(_ALEMBIC_INI.parent / "migrations"))
    return cfg


#: PostgreSQL advisory-lock key that serialises schema upgrades ("MARC" in ASCII).
_MIGRATION_LOCK = 0x4D415243


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the catalog's schema to ``revision`` (idempotent).

    Processes opening a new catalog at the same moment (two ``marc ingest`` at once) take turns:
    PostgreSQL through a transaction-scoped advisory lock, SQLite through a lock file beside the
    database, so the second one finds the schema made instead of creating it twice.
    """
    cfg = _alembic_config()
    with _sqlite_migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
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


class Catalog:
    """A connection to the catalog database at ``url``; the schema is upgraded on open."""

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
            raise StoreError(f"catalog at {self._safe_url()} is unusable: {_first_line(e)}") from e
        except ModuleNotFoundError as e:
            raise StoreError(f"catalog at {self._safe_url()}: driver missing ({e.name})") from e
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _safe_url(self) -> str:
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
                raise StoreError(f"catalog at {self._safe_url()}: {_first_line(e)}") from e
            except BaseException:
                s.rollback()
                raise

    def counts(self) -> dict[str, int]:
        """``videos`` (ingested), ``events`` and ``failed`` (files that could not be ingested)."""
        with self.session() as s:
            videos = s.scalar(select(func.count()).select_from(Video).where(Video.status == "done"))
            failed = s.scalar(
                select(func.count()).select_from(Video).where(Video.status == "failed")
            )
            events = s.scalar(
                select(func.count()).select_from(Event).join(Video).where(Video.status == "done")
            )
        return {"videos": videos or 0, "events": events or 0, "failed": failed or 0}

    def placements(self) -> dict[str, str | None]:
        """The vector collection of every committed (``done``) video, by video id."""
        with self.session() as s:
            rows = s.execute(select(Video.id, Video.collection).where(Video.status == "done"))
            return dict(rows.all())

    def collections(self) -> list[str]:
        """The vector collections that hold committed videos, sorted."""
        return sorted({c for c in self.placements().values() if c})

    def uncommitted_video_ids(self) -> list[str]:
        """Videos not ``done``: any vectors they have in a store are not part of the archive."""
        with self.session() as s:
            return sorted(s.scalars(select(Video.id).where(Video.status != "done")))

    def video_id_for(self, video: str | Path) -> str:
        """The id of a video given by id, by a path it was ingested from, or by a copy of it.

        Raises:
            FileNotFoundError: it is none of these.
        """
        with self.session() as s:
            if isinstance(video, str) and s.get(Video, video) is not None:
                return video
            vp = s.get(VideoPath, str(Path(video).absolute()))
            if vp is not None:
                return vp.video_id
        if Path(video).is_file():  # a copy or a moved file: identify it by content
            return video_id(fingerprint(Path(video)))
        raise FileNotFoundError(f"{video}: not in the archive and not a readable file")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__
