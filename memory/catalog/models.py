"""The catalog's tables (SQLAlchemy 2.0 typed ORM). Schema changes go through Alembic migrations.

- ``videos``: one row per distinct video *content* (a whole-file fingerprint); a renamed or copied
  file is the same video seen at another path. ``status`` is ``pending`` while an ingest works on
  it, ``done`` once its events and vectors are stored, ``failed`` (with ``error``) when it could not
  be ingested. A file that could not even be read gets a ``failed`` row keyed by its path. A
  ``done`` video with ``declared_duration_s`` is *partial*: only ``duration_s`` of it decoded
  (a recorder that lost power), and that part is stored.
- ``video_paths``: every path a video was seen at, with the size and mtime seen, so an unchanged
  file is skipped on the next run without hashing it again.
- ``events``: the event memories, tiling each video: ``[start_s, end_s)`` and absolute times.
- ``ingest_runs``: one row per ``marc ingest`` invocation, with its counts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from marc.memory.core.paths import from_stored, to_stored


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the catalog; attach a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FilePath(TypeDecorator[str]):
    """A file path, stored losslessly even when its name is not UTF-8.

    Python holds such a name's undecodable bytes as lone surrogates (``os.fsdecode``), which
    neither SQLite nor PostgreSQL text accepts; they are stored percent-escaped with a trailing
    ``/`` (:func:`marc.memory.core.paths.to_stored`) and read back exactly. UTF-8 paths are stored
    as they are, so existing catalogs need no migration.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return None if value is None else to_stored(value)

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return None if value is None else from_stored(value)


class FilePathText(FilePath):
    """:class:`FilePath` in a ``TEXT`` column."""

    impl = Text
    cache_ok = True


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Video(Base):
    __tablename__ = "videos"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(FilePathText)  # where it was last seen
    camera: Mapped[str] = mapped_column(String(255), default="")
    duration_s: Mapped[float | None] = mapped_column(Float)  # as decoded
    # the container's duration of a recording that decoded only in part (None: whole)
    declared_duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    frames: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # where recorded_at came from: container|name|folder+name|mtime (marc.memory.layout)
    recorded_at_source: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    segmentation_key: Mapped[str | None] = mapped_column(String(32))
    collection: Mapped[str | None] = mapped_column(
        String(255)
    )  # vector collection holding its events
    run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    paths: Mapped[list[VideoPath]] = relationship(
        back_populates="video", cascade="all, delete-orphan"
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="video", cascade="all, delete-orphan", order_by="Event.index"
    )


class VideoPath(Base):
    __tablename__ = "video_paths"

    path: Mapped[str] = mapped_column(FilePath(4096), primary_key=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    video: Mapped[Video] = relationship(back_populates="paths")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("video_id", "index", name="uq_events_video_index"),
        Index("ix_events_start_at", "start_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # deterministic UUID
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    boundary: Mapped[str] = mapped_column(String(16))  # start|cut|activity|length|gap

    video: Mapped[Video] = relationship(back_populates="events")


class IngestRun(Base):
    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    args: Mapped[list] = mapped_column(JSON, default=list)
    # running|finished|interrupted|crashed
    status: Mapped[str] = mapped_column(String(16), default="running")
    ingested: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    events_added: Mapped[int] = mapped_column(Integer, default=0)
