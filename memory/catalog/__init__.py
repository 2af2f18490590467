"""The SQL catalog of videos, events and ingest runs (SQLAlchemy 2.0; SQLite or PostgreSQL).

Every SQL query of MARC is written in this package: :class:`Catalog`'s named methods
(:mod:`.queries` for the reads, :mod:`.claims` for the ingest's runs, claims and commits) are
what the ingest, reindex, search and status use. ``models`` holds the tables, ``migrations``
their Alembic history.
"""

from marc.memory.catalog.catalog import MIGRATION_LOCK, Catalog, upgrade
from marc.memory.catalog.models import Base, Event, IngestRun, Video, VideoPath

__all__ = [
    "MIGRATION_LOCK",
    "Base",
    "Catalog",
    "Event",
    "IngestRun",
    "Video",
    "VideoPath",
    "upgrade",
]
