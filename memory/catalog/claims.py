"""The ingest's bookkeeping in the catalog, mixed into :class:`Catalog`: runs, claims, commits.

One ``marc ingest`` is an ``ingest_runs`` row (:meth:`~IngestClaims.start_run`,
:meth:`~IngestClaims.finish_run`); each file it works on is claimed (``videos.status =
pending``, :meth:`~IngestClaims.claim`), then committed with its events
(:meth:`~IngestClaims.commit_video`) or marked failed. A run whose process died leaves its claims
``pending``; :meth:`~IngestClaims.crash_runs` finds them. Every method is one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marc.memory.catalog.models import Event, IngestRun, Video, VideoPath, utcnow
from marc.memory.core.errors import StoreError
from marc.memory.fingerprint import path_video_id

Claim = Literal["claimed", "current", "busy"]


class IngestClaims:
    """The ingest's writes; :class:`~marc.memory.catalog.Catalog` provides ``session``.

    A video is *current* when it is ``done`` with the given segmentation key, in the given
    vector collection: an ingest with today's settings and encoder has nothing to redo.
    """

    def session(self) -> AbstractContextManager[Session]:  # pragma: no cover - Catalog's
        raise NotImplementedError

    # ----------------------------------------------------------------------------- runs
    def start_run(self, host: str, pid: int, args: list[str]) -> int:
        """Record a new ``running`` ingest run of process ``pid`` on ``host``; its id."""
        with self.session() as s:
            run = IngestRun(host=host, pid=pid, args=args)
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self,
        run_id: int,
        *,
        ingested: int,
        skipped: int,
        failed: int,
        events_added: int,
        status: str = "finished",
    ) -> None:
        """Mark run ``run_id`` ``finished`` (or ``interrupted``), with its counts."""
        with self.session() as s:
            run = s.get(IngestRun, run_id)
            run.status = status
            run.finished_at = utcnow()
            run.ingested, run.skipped = ingested, skipped
            run.failed, run.events_added = failed, events_added

    def crash_runs(self, host: str, alive: Callable[[int], bool]) -> tuple[list[int], list[str]]:
        """Mark ``crashed`` the runs still ``running`` on ``host`` whose process is not
        ``alive(pid)``.

        Returns:
            Their ids, and the ids of the videos they left ``pending`` (whose vectors, if any,
            are not part of the archive).
        """
        with self.session() as s:
            crashed = [
                r
                for r in s.scalars(select(IngestRun).where(IngestRun.status == "running"))
                if r.host == host and not alive(r.pid)
            ]
            if not crashed:
                return [], []
            ids = [r.id for r in crashed]
            stale = list(
                s.scalars(select(Video.id).where(Video.status == "pending", Video.run_id.in_(ids)))
            )
            for r in crashed:
                r.status = "crashed"
                r.finished_at = utcnow()
        return ids, stale

    def pending_video_ids(self, run_id: int) -> list[str]:
        """The videos run ``run_id`` has claimed and not finished (``pending``)."""
        with self.session() as s:
            return list(
                s.scalars(select(Video.id).where(Video.status == "pending", Video.run_id == run_id))
            )

    def release_claims(self, run_id: int) -> int:
        """Drop run ``run_id``'s claims on videos that have no stored events (first-time claims),
        so an interrupted run leaves no ``pending`` row behind; how many. Claims on videos with
        events (a re-ingest under new settings) stay ``pending``: the next run redoes them."""
        with self.session() as s:
            has_events = select(Event.video_id).where(Event.video_id == Video.id).exists()
            return s.execute(
                delete(Video)
                .where(Video.status == "pending", Video.run_id == run_id, ~has_events)
                .execution_options(synchronize_session=False)
            ).rowcount

    # --------------------------------------------------------------------------- claims
    def path_is_current(self, path: str, st: os.stat_result, key: str, collection: str) -> bool:
        """Whether the file at ``path``, of the size and mtime of ``st``, was last seen there
        unchanged as a current video (the fast path: nothing to hash)."""
        with self.session() as s:
            vp = s.get(VideoPath, path)
            return (
                vp is not None
                and vp.size_bytes == st.st_size
                and vp.mtime_ns == st.st_mtime_ns
                and _is_current(vp.video, key, collection)
            )

    def claim(
        self,
        vid: str,
        fp: str,
        path: str,
        st: os.stat_result,
        run_id: int,
        key: str,
        collection: str,
    ) -> Claim:
        """Take video ``vid`` (fingerprint ``fp``, read at ``path`` with stat ``st``) for run
        ``run_id``: ``"claimed"``, ``"current"`` (already stored; the path is remembered) or
        ``"busy"`` (another live ingest is working on it; that run will store it).

        The claim is one conditional ``UPDATE`` (or an ``INSERT`` against the primary key), so
        two ingests of the same files at once never both work on one video. A ``failed`` row
        of the path (the file was unreadable before) is dropped.
        """
        for _ in range(2):  # a second look after losing an INSERT race
            try:
                with self.session() as s:
                    video = s.get(Video, vid)
                    if video is not None and _is_current(video, key, collection):
                        _remember_path(s, video, path, st)
                        return "current"
                    if video is None:
                        s.add(Video(id=vid, fingerprint=fp, path=path, run_id=run_id))
                        s.flush()  # raises IntegrityError if another run inserted it first
                    else:
                        live = select(IngestRun.id).where(
                            IngestRun.status == "running", IngestRun.id != run_id
                        )
                        taken = s.execute(
                            update(Video)
                            .where(
                                Video.id == vid,
                                or_(
                                    Video.status != "pending",
                                    Video.run_id.is_(None),
                                    Video.run_id.not_in(live),
                                ),
                            )
                            .values(status="pending", error=None, run_id=run_id, path=path)
                            .execution_options(synchronize_session=False)
                        ).rowcount
                        if not taken:
                            return "busy"
                    s.execute(
                        delete(VideoPath).where(
                            VideoPath.path == path, VideoPath.video_id == path_video_id(path)
                        )
                    )
                    s.execute(delete(Video).where(Video.id == path_video_id(path)))
                return "claimed"
            except StoreError as e:
                if not isinstance(e.__cause__, IntegrityError):
                    raise
        return "busy"

    def commit_video(
        self, vid: str, events: Sequence[Event], path: str, st: os.stat_result, **columns: Any
    ) -> list[str]:
        """Store claimed video ``vid``'s ``events`` (replacing any it had), set its ``columns``
        (``camera``, ``fps``, ``collection``...) and mark it ``done``, seen at ``path``.

        Returns:
            Ids of the videos ``path`` pointed to before (a changed file); see
            :meth:`forget_if_orphaned`.
        """
        with self.session() as s:
            video = s.get(Video, vid)
            s.execute(delete(Event).where(Event.video_id == vid))
            s.add_all(events)
            for name, value in columns.items():
                setattr(video, name, value)
            video.status, video.error = "done", None
            return _remember_path(s, video, path, st)

    def fail_video(
        self, vid: str, problem: str, path: str, st: os.stat_result, camera: str = ""
    ) -> None:
        """Mark claimed video ``vid`` ``failed`` with ``problem``, seen at ``path`` (a file of
        ``camera``, so ``marc videos --camera`` lists it)."""
        with self.session() as s:
            video = s.get(Video, vid)
            video.status, video.error, video.camera = "failed", problem, camera
            _remember_path(s, video, path, st)

    def fail_unreadable(self, path: str, run_id: int, problem: str, camera: str = "") -> None:
        """Record a file of ``camera`` that could not be read at all (so it has no fingerprint:
        the row is keyed by its path)."""
        pid = path_video_id(path)
        with self.session() as s:
            video = s.get(Video, pid) or Video(id=pid, path=path)
            video.status, video.error, video.run_id = "failed", problem, run_id
            video.camera = camera
            s.merge(video)

    def forget_if_orphaned(self, vid: str) -> str | None:
        """Delete video ``vid`` (and its events) if no path is left that holds it.

        Returns:
            The vector collection of the deleted video, whose vectors of ``vid`` should go too;
            ``None`` when it was kept (or had none).
        """
        with self.session() as s:
            video = s.get(Video, vid)
            if video is None or video.paths:
                return None
            coll = video.collection
            s.delete(video)
        return coll


def _is_current(video: Video | None, key: str, collection: str) -> bool:
    return (
        video is not None
        and video.status == "done"
        and video.segmentation_key == key
        and video.collection == collection
    )


def _remember_path(s: Session, video: Video, path: str, st: os.stat_result) -> list[str]:
    """Point ``path`` at ``video``; returns ids of videos the path pointed to before."""
    vp = s.get(VideoPath, path)
    previous = []
    if vp is None:
        s.add(
            VideoPath(path=path, video_id=video.id, size_bytes=st.st_size, mtime_ns=st.st_mtime_ns)
        )
    else:
        if vp.video_id != video.id:
            previous.append(vp.video_id)
        vp.video_id, vp.size_bytes, vp.mtime_ns = video.id, st.st_size, st.st_mtime_ns
        vp.seen_at = utcnow()
    return previous
