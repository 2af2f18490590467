"""The catalog's named reads (and the reindex's one write), mixed into :class:`Catalog`.

Search, ``marc events``/``status``, the reindex and the evaluation ask the catalog through these
methods; no SQL is written outside :mod:`marc.memory.catalog`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from marc.memory.catalog.models import Event, Video, VideoPath
from marc.memory.core.events import Filters
from marc.memory.core.paths import is_utf8
from marc.memory.fingerprint import fingerprint, video_id


class CatalogQueries:
    """Reads of the archive's state; :class:`~marc.memory.catalog.Catalog` provides ``session``.

    Only ``done`` videos are part of the archive: the others are an ingest's claims (``pending``)
    or files that could not be ingested (``failed``).
    """

    def session(self) -> AbstractContextManager[Session]:  # pragma: no cover - Catalog's
        raise NotImplementedError

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

    def placed_events(self) -> dict[str, tuple[str | None, int, str, str]]:
        """Every committed video's ``(collection, events, path, camera)`` by id: what its
        collection must hold (one vector per event), for ``marc status`` and ``marc repair``."""
        counts = select(Event.video_id, func.count().label("n")).group_by(Event.video_id).subquery()
        q = (
            select(
                Video.id, Video.collection, func.coalesce(counts.c.n, 0), Video.path, Video.camera
            )
            .outerjoin(counts, counts.c.video_id == Video.id)
            .where(Video.status == "done")
        )
        with self.session() as s:
            return {vid: (c, int(n), p, cam) for vid, c, n, p, cam in s.execute(q).all()}

    def event_count(self, vid: str) -> int:
        """How many events video ``vid`` has in the catalog."""
        with self.session() as s:
            n = s.scalar(select(func.count()).select_from(Event).where(Event.video_id == vid))
        return int(n or 0)

    def collections(self) -> list[str]:
        """The vector collections that hold committed videos, sorted."""
        return sorted({c for c in self.placements().values() if c})

    def uncommitted_video_ids(self) -> list[str]:
        """Videos not ``done``: any vectors they have in a store are not part of the archive."""
        with self.session() as s:
            return sorted(s.scalars(select(Video.id).where(Video.status != "done")))

    def video_ids(self, *statuses: str) -> set[str]:
        """Ids of the videos whose status is one of ``statuses``."""
        with self.session() as s:
            return set(s.scalars(select(Video.id).where(Video.status.in_(statuses))))

    def done_paths(self) -> set[str]:
        """Every path a committed video was seen at."""
        with self.session() as s:
            return set(s.scalars(select(VideoPath.path).join(Video).where(Video.status == "done")))

    def done_video(self, vid: str) -> Video | None:
        """Committed video ``vid`` with its ``paths`` and ``events`` (by index) loaded, usable
        after the session; ``None`` when it is unknown or not ``done``."""
        with self.session() as s:
            video = s.get(
                Video, vid, options=[selectinload(Video.paths), selectinload(Video.events)]
            )
            return video if video is not None and video.status == "done" else None

    def hits(self, event_ids: Sequence[str]) -> dict[str, tuple[Event, Video]]:
        """The events of committed videos among ``event_ids``, with their video, by event id
        (ids of other or unknown events are left out)."""
        if not event_ids:
            return {}
        with self.session() as s:
            rows = s.execute(
                select(Event, Video)
                .join(Video)
                .where(Event.id.in_(list(event_ids)), Video.status == "done")
            ).all()
        return {e.id: (e, v) for e, v in rows}

    def events(
        self,
        vid: str | None = None,
        *,
        filters: Filters | None = None,
        limit: int | None = None,
        collection: str | None = None,
    ) -> list[tuple[Event, Video]]:
        """Events of committed videos (or of video ``vid``) with their video, in time order:
        by the videos' recording time and path, then by index.

        ``filters`` narrow them as a search does (cameras; events that end after ``since`` and
        start before ``until``; videos given by id, ingested path or a copy), ``limit`` keeps the
        first so many, ``collection`` only the videos whose vectors are in that collection.
        """
        q = (
            select(Event, Video)
            .join(Video)
            .where(Video.status == "done")
            .order_by(Video.recorded_at, Video.path, Event.index)
        )
        if vid is not None:
            q = q.where(Video.id == vid)
        if collection is not None:
            q = q.where(Video.collection == collection)
        if filters is not None:
            if filters.cameras is not None:
                q = q.where(Video.camera.in_(filters.cameras))
            if filters.since is not None:
                q = q.where(Event.end_at > filters.since)
            if filters.until is not None:
                q = q.where(Event.start_at < filters.until)
            if filters.videos is not None:
                q = q.where(Video.id.in_([self.video_id_for(v) for v in filters.videos]))
        if limit is not None:
            q = q.limit(limit)
        with self.session() as s:
            return [(e, v) for e, v in s.execute(q).all()]

    def videos_with_counts(
        self, *, cameras: Sequence[str] | None = None, statuses: Sequence[str] | None = None
    ) -> list[tuple[Video, int]]:
        """Every video the catalog knows (any status, or one of ``statuses``; of any camera, or
        one of ``cameras``) with its number of stored events, by recording time then path."""
        counts = select(Event.video_id, func.count().label("n")).group_by(Event.video_id).subquery()
        q = (
            select(Video, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.video_id == Video.id)
            .order_by(Video.recorded_at, Video.path)
        )
        if cameras is not None:
            q = q.where(Video.camera.in_(list(cameras)))
        if statuses is not None:
            q = q.where(Video.status.in_(list(statuses)))
        with self.session() as s:
            return [(v, int(n)) for v, n in s.execute(q).all()]

    def camera_counts(self) -> dict[str, dict[str, int]]:
        """Per camera: ``videos`` (ingested), ``events`` (of those) and ``failed`` files, by
        camera name (``marc status``'s ``cameras``); cameras with only claims are left out."""
        n_events = (
            select(Event.video_id, func.count().label("n")).group_by(Event.video_id).subquery()
        )
        q = (
            select(Video.camera, Video.status, func.count(), func.sum(n_events.c.n))
            .outerjoin(n_events, n_events.c.video_id == Video.id)
            .where(Video.status.in_(["done", "failed"]))
            .group_by(Video.camera, Video.status)
        )
        out: dict[str, dict[str, int]] = {}
        with self.session() as s:
            for camera, status, videos, events in s.execute(q).all():
                row = out.setdefault(camera or "", {"videos": 0, "events": 0, "failed": 0})
                if status == "done":
                    row["videos"], row["events"] = int(videos), int(events or 0)
                else:
                    row["failed"] = int(videos)
        return dict(sorted(out.items()))

    def start_source_counts(self) -> dict[str, int]:
        """Ingested videos by where their start time came from (``container``, ``name``,
        ``folder+name``, ``mtime``), each source listed; ``marc status``'s ``start_sources``."""
        q = (
            select(Video.recorded_at_source, func.count())
            .where(Video.status == "done")
            .group_by(Video.recorded_at_source)
        )
        out = dict.fromkeys(("container", "name", "folder+name", "mtime"), 0)
        with self.session() as s:
            for source, n in s.execute(q).all():
                out[source or "unknown"] = int(n)
        return out

    def partial_count(self) -> int:
        """Ingested videos that decoded only in part (``declared_duration_s`` set)."""
        with self.session() as s:
            q = select(func.count()).select_from(Video)
            q = q.where(Video.status == "done", Video.declared_duration_s.is_not(None))
            return int(s.scalar(q) or 0)

    def move_video(self, vid: str, collection: str, path: str) -> None:
        """Record that video ``vid``'s vectors are now in ``collection``, embedded from ``path``
        (the reindex); nothing when the video is gone."""
        with self.session() as s:
            video = s.get(Video, vid)
            if video is not None:
                video.collection, video.path = collection, path

    def video_id_for(self, video: str | Path) -> str:
        """The id of a video given by id, by a path it was ingested from, or by a copy of it.

        Raises:
            FileNotFoundError: it is none of these.
        """
        with self.session() as s:
            # ids are ASCII; a file name need not even be UTF-8
            if isinstance(video, str) and is_utf8(video) and s.get(Video, video) is not None:
                return video
            vp = s.get(VideoPath, str(Path(video).absolute()))
            if vp is not None:
                return vp.video_id
        if Path(video).is_file():  # a copy or a moved file: identify it by content
            return video_id(fingerprint(Path(video)))
        raise FileNotFoundError(f"{video}: not in the archive and not a readable file")
