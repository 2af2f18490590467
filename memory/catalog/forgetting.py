"""``marc forget``'s catalog side, mixed into :class:`Catalog`: choose, mark, then drop videos.

Forgetting a video is three steps, each durable before the next (see
:mod:`marc.memory.forget`): its row is marked ``forgetting`` (one transaction; from then on it
is not part of the archive: search, ``marc events`` and ``marc status`` leave it out, as they
leave out an ingest's claims), its vectors are deleted, then its rows (video, paths, events) are
deleted together. A ``kill -9`` anywhere leaves rows marked ``forgetting``, which the next
``marc forget`` finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import and_, func, not_, or_, select, update
from sqlalchemy.orm import Session

from marc.memory.catalog.models import Event, IngestRun, Video

#: The status of a video being forgotten.
FORGETTING = "forgetting"


class Forgetting:
    """The forget's reads and writes; :class:`~marc.memory.catalog.Catalog` provides ``session``."""

    def session(self) -> AbstractContextManager[Session]:  # pragma: no cover - Catalog's
        raise NotImplementedError

    def forget_candidates(
        self,
        *,
        video_ids: Sequence[str] | None = None,
        cameras: Sequence[str] | None = None,
        before: datetime | None = None,
    ) -> list[tuple[Video, int]]:
        """The videos matching every selector given, with their event counts, by recording time.

        ``before``: videos whose recording ended before it (``recorded_at + duration_s``; a file
        that could not be ingested has no recording time: when it failed counts). Videos an
        ingest is working on now (``pending`` claims of a running run) are left out.
        """
        counts = select(Event.video_id, func.count().label("n")).group_by(Event.video_id).subquery()
        live = select(IngestRun.id).where(IngestRun.status == "running")
        q = (
            select(Video, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.video_id == Video.id)
            .where(not_(and_(Video.status == "pending", Video.run_id.in_(live))))
            .order_by(Video.recorded_at, Video.path)
        )
        if video_ids is not None:
            q = q.where(Video.id.in_(list(video_ids)))
        if cameras is not None:
            q = q.where(Video.camera.in_(list(cameras)))
        if before is not None:  # a coarse cut in SQL, the exact end time below
            q = q.where(
                or_(
                    Video.recorded_at < before,
                    and_(Video.recorded_at.is_(None), Video.updated_at < before),
                )
            )
        with self.session() as s:
            rows = [(v, int(n)) for v, n in s.execute(q).all()]
        if before is not None:
            rows = [(v, n) for v, n in rows if _ended(v) < before]
        return rows

    def mark_forgetting(self, vids: Sequence[str]) -> list[str]:
        """Mark videos ``vids`` ``forgetting`` (one transaction), except those an ingest claimed
        meanwhile; the ids marked."""
        if not vids:
            return []
        live = select(IngestRun.id).where(IngestRun.status == "running")
        with self.session() as s:
            s.execute(
                update(Video)
                .where(
                    Video.id.in_(list(vids)),
                    not_(and_(Video.status == "pending", Video.run_id.in_(live))),
                )
                .values(status=FORGETTING)
                .execution_options(synchronize_session=False)
            )
            return list(
                s.scalars(
                    select(Video.id).where(Video.id.in_(list(vids)), Video.status == FORGETTING)
                )
            )

    def forgetting(self) -> list[str]:
        """Ids of the videos marked ``forgetting`` (by this run or an interrupted one)."""
        with self.session() as s:
            return sorted(s.scalars(select(Video.id).where(Video.status == FORGETTING)))

    def drop_forgotten(self, vid: str) -> int | None:
        """Delete video ``vid`` with its paths and events (one transaction) if it is still marked
        ``forgetting``; the number of events deleted (``None`` when it is gone or was claimed)."""
        with self.session() as s:
            video = s.get(Video, vid)
            if video is None or video.status != FORGETTING:
                return None
            n = len(video.events)
            s.delete(video)  # cascades to its paths and events
            return n


def _ended(v: Video) -> datetime:
    """When ``v``'s recording ended (for a file never ingested: when it was last seen)."""
    if v.recorded_at is None:
        return v.updated_at
    return v.recorded_at + timedelta(seconds=v.duration_s or 0.0)
