"""``marc forget``: remove videos from the archive (events, vectors, catalog rows), never files.

Which videos: those of a file (``--video``), of cameras (``--camera``), recorded before a time
(``--before``: the recording ended before it), or every one that matches all of the selectors
given. ``marc ingest --watch`` applies a retention period (``MARC_RETENTION_DAYS``) with the same
function. For each run::

    choose the matching videos (a dry run stops here and reports them)
      │
    mark them videos.status = forgetting        (one transaction: no longer part of the archive)
      │
    per video: delete its points from every MARC collection     (durable)
      │        delete its row, paths and events                  (one transaction)

Crash safety: a ``kill -9`` anywhere leaves videos marked ``forgetting``, which search, ``marc
events`` and ``marc status`` already leave out (so ``status`` stays consistent), and which every
later ``marc forget`` finishes first: the same command again is done. The video files are only
ever read by ingest, never written or deleted; forgotten files are ingested again if a later
``marc ingest`` names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from marc.memory.parts import ArchiveParts

__all__ = ["ForgetReport", "Forgetter"]


@dataclass
class ForgetReport:
    """What one ``marc forget`` did (or, ``dry_run``, would do). ``to_json()`` is its ``--json``.

    Attributes:
        videos: The videos chosen, by recording time: ``{"id", "path", "camera", "status",
            "events", "start_at", "end_at"}``.
        forgotten: Videos removed by this run (also those an interrupted run had marked).
        events: Events removed with them.
        dry_run: Nothing was changed.
    """

    dry_run: bool = False
    videos: list[dict[str, Any]] = field(default_factory=list)
    forgotten: int = 0
    events: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "forgotten": self.forgotten,
            "events": self.events,
            "videos": self.videos,
        }


class Forgetter(ArchiveParts):
    """Removes videos from one catalog and its vector store (no model is loaded)."""

    def forget(
        self,
        *,
        videos: Sequence[str | Path] | None = None,
        cameras: Sequence[str] | None = None,
        before: datetime | None = None,
        dry_run: bool = False,
    ) -> ForgetReport:
        """Forget the videos matching every selector given (at least one must be).

        Args:
            videos: Files (an ingested path or a copy) or video ids.
            cameras: Camera names.
            before: An aware datetime: videos whose recording ended before it.
            dry_run: Only report what would be forgotten.

        Raises:
            ValueError: no selector, or a naive ``before``.
            FileNotFoundError: a ``videos`` entry is neither in the archive nor a readable file.
            StoreError: the catalog or the vector store failed (a rerun finishes the work).
        """
        if videos is None and cameras is None and before is None:
            raise ValueError("say what to forget: --video PATH, --camera NAME or --before TIME")
        if before is not None and before.tzinfo is None:
            raise ValueError(f"before={before.isoformat()} has no timezone; pass an aware datetime")
        ids = None if videos is None else sorted({self.catalog.video_id_for(v) for v in videos})
        chosen = self.catalog.forget_candidates(video_ids=ids, cameras=cameras, before=before)
        report = ForgetReport(dry_run=dry_run, videos=[_row(v, n) for v, n in chosen])
        if dry_run:
            return report
        self.catalog.mark_forgetting([v.id for v, _ in chosen])
        for vid in self.catalog.forgetting():  # this run's, and any an interrupted run left
            for name in self.store.collections():
                if name.startswith("events__"):  # a Qdrant server may hold others' collections
                    self.store.delete_video(name, vid)
            n = self.catalog.drop_forgotten(vid)
            if n is not None:
                report.forgotten += 1
                report.events += n
        return report


def _row(v: Any, events: int) -> dict[str, Any]:
    end = (
        v.recorded_at + timedelta(seconds=v.duration_s)
        if v.recorded_at is not None and v.duration_s is not None
        else None
    )
    return {
        "id": v.id,
        "path": v.path,
        "camera": v.camera,
        "status": v.status,
        "events": events,
        "start_at": v.recorded_at.isoformat() if v.recorded_at else None,
        "end_at": end.isoformat() if end else None,
    }
