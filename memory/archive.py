"""``Archive``: the public entry point to an archive's event memory for the CLI and agent."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from marc.memory.catalog import Catalog
from marc.memory.core.config import MemoryConfig, as_config
from marc.memory.core.events import EventRef, Filters
from marc.memory.forget import ForgetReport, Forgetter
from marc.memory.health import STATUS_SAMPLE, check_store
from marc.memory.ingest import Ingestor, IngestReport, Progress, no_progress, segment_video
from marc.memory.media import temp_bytes
from marc.memory.reindex import Reindexer, ReindexReport, RepairReport
from marc.memory.retrieval import ImageQuery, Retriever
from marc.memory.stores import VectorStore, open_store


class Archive:
    """One archive: a catalog plus a vector store, configured by a :class:`MemoryConfig`.

    ``config`` may also be a ``Settings`` (its ``memory`` is taken); ``None``: the config's
    defaults (never the environment).

    >>> archive = Archive(Settings(home="/tmp/marc-doc-archive", models="tiny"))  # doctest: +SKIP
    >>> archive.ingest([Path("footage")]).to_json()  # doctest: +SKIP
    {'ingested': 3, 'skipped': 0, 'failed': [], 'events_added': 41}
    """

    def __init__(self, config: MemoryConfig | Any = None) -> None:
        self.config = as_config(config, MemoryConfig)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.config.store.catalog_url)

    @cached_property
    def store(self) -> VectorStore:
        return open_store(self.config.store)

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        camera: str | None = None,
        camera_from: str | None = None,
        progress: Progress = no_progress,
    ) -> IngestReport:
        """Ingest the videos under ``paths`` (:meth:`Ingestor.ingest
        <marc.memory.ingest.Ingestor.ingest>`: ``camera``/``camera_from`` name the cameras)."""
        return Ingestor(self.config, catalog=self.catalog, store=self.store).ingest(
            paths, camera=camera, camera_from=camera_from, progress=progress
        )

    def reindex(self, *, progress: Progress = no_progress) -> ReindexReport:
        """Re-embed every stored event with the current encoder (``marc reindex``)."""
        return Reindexer(self.config, catalog=self.catalog, store=self.store).reindex(
            progress=progress
        )

    def repair(self, *, progress: Progress = no_progress) -> RepairReport:
        """Re-embed, from their files, the videos whose vectors are missing or damaged (``marc
        repair``)."""
        return Reindexer(self.config, catalog=self.catalog, store=self.store).repair(
            progress=progress
        )

    def forget(
        self,
        *,
        videos: Sequence[str | Path] | None = None,
        cameras: Sequence[str] | None = None,
        before: datetime | None = None,
        dry_run: bool = False,
    ) -> ForgetReport:
        """Remove videos' events, vectors and catalog rows, never their files (``marc forget``;
        see :meth:`Forgetter.forget`)."""
        return Forgetter(self.config, catalog=self.catalog, store=self.store).forget(
            videos=videos, cameras=cameras, before=before, dry_run=dry_run
        )

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.config, catalog=self.catalog, store=self.store)

    def search(self, query: str | ImageQuery, k: int = 3, **filters: Any) -> list[EventRef]:
        """The ``k`` events closest to a text or an example picture; ``filters`` are
        :meth:`Retriever.search`'s (``cameras``, ``since``, ``until``, ``videos``)."""
        return self.retriever.search(query, k, **filters)

    def segment(self, path: Path) -> dict[str, Any]:
        """Cut one video into events without storing anything (the ``marc segment`` JSON).

        ``seconds`` is the wall time from the start of the decode to the events, TransNetV2's
        one-off load included (``load_seconds`` of it: the load happens in the first window the
        gate lets through, while ffmpeg goes on decoding), ``frames_per_second`` the frames over
        it; ``windows``/``evaluated`` count TransNetV2's windows and those the gate let run.
        """
        start = time.perf_counter()
        decoded, seg = segment_video(path, self.config.segmentation)
        seconds = time.perf_counter() - start
        decoded.close()
        return {
            "video": str(path),
            "fps": decoded.fps,
            "frames": seg.frames,
            "duration_s": decoded.duration_s,
            "cuts": list(seg.cuts),
            "events": [
                {"start_s": e.span.start_s, "end_s": e.span.end_s, "boundary": e.boundary}
                for e in seg.events
            ],
            "seconds": seconds,
            "load_seconds": seg.load_seconds,
            "frames_per_second": seg.frames / seconds if seconds > 0 else 0.0,
            "windows": seg.windows,
            "evaluated": seg.evaluated,
        }

    def events(
        self,
        video: Path | None = None,
        *,
        filters: Filters | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events (the ``marc events`` JSON), of one video file or of all, in time order.

        ``filters`` (:class:`~marc.memory.core.events.Filters`: cameras, since/until, videos)
        narrow them as they narrow a search; ``limit`` keeps the first so many.

        Raises:
            FileNotFoundError: ``video`` (or a filter's video) is not in the archive.
        """
        vid = self.catalog.video_id_for(video) if video is not None else None
        return [
            {
                "id": e.id,
                "video": v.path,
                "camera": v.camera,
                "start_s": e.start_s,
                "end_s": e.end_s,
                "start_at": e.start_at.isoformat(),
                "end_at": e.end_at.isoformat(),
                "boundary": e.boundary,
                "video_id": v.id,
                "index": e.index,
            }
            for e, v in self.catalog.events(vid, filters=filters, limit=limit)
        ]

    def videos(
        self, *, cameras: Sequence[str] | None = None, failed: bool = False
    ) -> list[dict[str, Any]]:
        """One row per video the catalog knows, by recording time (``marc videos --json``, also
        ``marc mcp``'s ``videos``); only those of ``cameras``, or only the ``failed`` ones.

        ``start_at`` is when the recording starts (``recorded_at``, from ``start_source``:
        ``container``, ``name``, ``folder+name`` or ``mtime``; see :mod:`marc.memory.layout`),
        ``end_at`` that plus ``duration_s`` (the decoded length); ``status`` is the catalog's:
        ``done`` once its events are stored, ``failed`` (with ``error``) or ``pending``;
        ``events`` counts its stored events. ``state`` is what a user can rely on now: ``ok``
        (done and its file is at ``path``), ``partial`` (done, but only ``duration_s`` of the
        ``declared_duration_s`` the container declares decoded: a cut-off recording),
        ``missing`` (done, but no file at ``path`` any more), ``failed`` or ``pending``.
        """
        out = []
        rows = self.catalog.videos_with_counts(
            cameras=cameras, statuses=["failed"] if failed else None
        )
        for v, n in rows:
            end = (
                v.recorded_at + timedelta(seconds=v.duration_s)
                if v.recorded_at is not None and v.duration_s is not None
                else None
            )
            out.append(
                {
                    "id": v.id,
                    "path": v.path,
                    "camera": v.camera,
                    "duration_s": v.duration_s,
                    "start_at": v.recorded_at.isoformat() if v.recorded_at else None,
                    "end_at": end.isoformat() if end else None,
                    "start_source": v.recorded_at_source,
                    "events": n,
                    "status": v.status,
                    "state": _state(v.status, v.path, v.declared_duration_s),
                    "declared_duration_s": v.declared_duration_s,
                    "error": v.error,
                    "fps": v.fps,
                    "width": v.width,
                    "height": v.height,
                    "size_bytes": v.size_bytes,
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        """Counts from the catalog and, independently, from the vector store (``marc status``).

        ``consistent`` also needs every committed video to have exactly one vector per event in
        its collection, and a sample of stored vectors to be sound (:func:`check_store`);
        ``damaged`` lists the videos that do not, ``problems`` says why in one line each.
        ``temp_bytes``: temporary disk in use under ``MARC_HOME/tmp`` (running decodes' spill
        files included).
        """
        counts = self.catalog.counts()
        collections = self.catalog.collections()
        # vectors of videos an ingest is still working on are not part of the archive yet
        uncommitted = self.catalog.uncommitted_video_ids()
        health = check_store(self.catalog, self.store, sample=STATUS_SAMPLE)
        # every readable collection the store holds, not only those the catalog names: vectors
        # the catalog does not know (a wiped or replaced catalog) make the archive inconsistent
        stored = set(self.store.collections()) - set(health.unreadable)
        vectors = sum(self.store.count(c, exclude_video_ids=uncommitted) for c in sorted(stored))
        return {
            "videos": counts["videos"],
            "events": counts["events"],
            "vectors": vectors,
            "failed": counts["failed"],
            "consistent": vectors == counts["events"] and health.ok,
            "damaged": [d.to_json() for d in health.damaged],
            "checked_vectors": health.checked_vectors,
            "bad_vectors": health.bad_vectors,
            "problems": health.problems,
            "cameras": self.catalog.camera_counts(),
            "start_sources": self.catalog.start_source_counts(),
            "partial": self.catalog.partial_count(),
            "collections": collections,
            "home": str(self.config.store.home),
            "catalog": self.catalog.display_url,
            "vector_store": self.config.store.qdrant_url or str(self.config.store.vectors_path),
            "temp_bytes": temp_bytes(self.tmp_dir),
        }

    @property
    def tmp_dir(self) -> Path:
        """Where decodes of long videos spill frames (``MARC_HOME/tmp``)."""
        return self.config.store.home / "tmp"

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "catalog" in self.__dict__:
            self.catalog.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _state(status: str, path: str, declared_duration_s: float | None = None) -> str:
    """``ok``/``partial``/``missing`` for an ingested video (is its file still there, did it
    decode whole?), else its status."""
    if status != "done":
        return status
    if not Path(path).is_file():
        return "missing"
    return "ok" if declared_duration_s is None else "partial"
