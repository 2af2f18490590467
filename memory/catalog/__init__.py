"""The SQL catalog of videos, events and ingest runs (SQLAlchemy 2.0; SQLite or PostgreSQL)."""

from marc.memory.catalog.catalog import Catalog, upgrade
from marc.memory.catalog.models import Base, Event, IngestRun, Video, VideoPath

__all__ = ["Base", "Catalog", "Event", "IngestRun", "Video", "VideoPath", "upgrade"]
