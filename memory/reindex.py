"""``marc reindex``: re-embed every stored event with the current encoder, into its collection.

Each vector collection holds the vectors of one encoder (:meth:`VectorStore.collection_name`), and
search reads only the current encoder's collection, so vectors of different encoders never mix.
After a switch of encoder (``MARC_ENCODER``, ``MARC_MODELS``) the archive is moved over one video
at a time::

    done video whose collection is not the current encoder's ──(already there)──> skip
      │
    find its file: its last path, else another path it was seen at (same size, same content)
      │
    decode with the encoder's geometry ─> N frames sampled in each *catalog* event ─> embed
      │                                   (the boundaries are kept: nothing is re-segmented)
    points upserted into the current collection (same ids and payload as ingest; durable)
      │
    videos.collection = the current collection  (one transaction)

At the end of a run, the points of moved videos are deleted from their old collections, so every
collection holds exactly the vectors of the videos the catalog places in it (what ``marc status``
counts). The old collections themselves are left in place, also once no video references them:
dropping a collection is for the operator to decide.

A video already in the current collection is skipped only while the store holds all its vectors
there (one facet count); otherwise it is re-embedded like a moved one. :meth:`Reindexer.repair`
(``marc repair``) goes further: it checks every stored vector (:func:`check_store`) and re-embeds
each damaged video from its file, setting aside a collection that cannot be read at all.

Interrupted, a rerun goes on where it stopped: moved videos are skipped, a half-moved one is done
again (event ids are deterministic, so its points are overwritten), and leftovers in old
collections are deleted. A video whose file is gone, changed or undecodable is reported and stays
in its old collection, searchable again once it is reindexed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from marc.memory.catalog import Event
from marc.memory.core.errors import MediaError, StoreError
from marc.memory.core.timeline import Span
from marc.memory.fingerprint import fingerprint
from marc.memory.health import check_store
from marc.memory.ingest import Failure, Progress, embed_spans, event_point, no_progress
from marc.memory.media import probe
from marc.memory.parts import ArchiveParts

__all__ = ["ReindexReport", "Reindexer", "RepairReport"]


@dataclass
class ReindexReport:
    """What one ``marc reindex`` did. ``to_json()`` is the CLI's ``--json`` contract.

    Attributes:
        collection: The current encoder's collection, where every reindexed video now is.
        reindexed: Videos moved into ``collection`` by this run.
        skipped: Videos that were in ``collection`` already.
        failed: Videos that could not be reindexed (they stay in their old collection).
        events: Events re-embedded by this run.
    """

    collection: str
    reindexed: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    events: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "reindexed": self.reindexed,
            "skipped": self.skipped,
            "failed": [asdict(f) for f in self.failed],
            "events": self.events,
            "collection": self.collection,
        }


@dataclass
class RepairReport:
    """What one ``marc repair`` did. ``to_json()`` is the CLI's ``--json`` contract.

    Attributes:
        collection: The current encoder's collection, where every repaired video now is.
        videos_checked: Committed videos compared with the store.
        vectors_checked: Stored vectors read and checked.
        repaired: Videos re-embedded from their files.
        failed: Damaged videos that could not be repaired (file gone, changed, undecodable).
        events: Events re-embedded.
        set_aside: Where unreadable collections were moved (rebuilt anew; delete them yourself).
    """

    collection: str
    videos_checked: int = 0
    vectors_checked: int = 0
    repaired: int = 0
    failed: list[Failure] = field(default_factory=list)
    events: int = 0
    set_aside: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repaired": self.repaired,
            "failed": [asdict(f) for f in self.failed],
            "events": self.events,
            "videos_checked": self.videos_checked,
            "vectors_checked": self.vectors_checked,
            "set_aside": self.set_aside,
            "collection": self.collection,
        }


@dataclass(frozen=True)
class _Job:
    """One video to move, read from the catalog: where its file may be, and its events."""

    id: str
    path: str
    camera: str
    fingerprint: str | None
    size_bytes: int | None
    seen: dict[str, tuple[int, int]]  # every known path -> (size, mtime_ns) seen there
    events: Sequence[Event]


class Reindexer(ArchiveParts):
    """Moves an archive's events into the current encoder's collection, and rebuilds missing or
    damaged vectors from the video files (:meth:`repair`). Models load on first need.

    ``progress(kind, **info)`` hears: ``videos`` (total=videos to move), ``video`` (path=),
    ``stage`` (path=, stage=locate|decode|embed|store), ``result`` (path=,
    outcome=reindexed|failed, events=, error=).
    """

    def reindex(self, *, progress: Progress = no_progress) -> ReindexReport:
        """Re-embed every done video that is not in the current encoder's collection.

        A video whose file cannot be found or decoded is reported in ``failed`` and the rest go
        on; any other error (catalog, store, model) ends the run, which a rerun resumes.

        Raises:
            StoreError: the catalog or the vector store failed.
            ModelError: the encoder could not be loaded.
        """
        coll = self.collection
        placed = self.catalog.placements()
        todo = {vid for vid, c in placed.items() if c != coll}
        todo |= self._incomplete(coll, placed)  # "already there", but its vectors are not
        report = ReindexReport(collection=coll, skipped=len(placed) - len(todo))
        done = self._redo(sorted(todo), coll, report.failed, progress, outcome="reindexed")
        report.reindexed, report.events = len(done), sum(done)
        return report

    def repair(self, *, progress: Progress = no_progress) -> RepairReport:
        """Re-embed from its file every committed video whose vectors are missing, extra or
        damaged (:func:`check_store` over every stored vector), into the current collection.

        A collection that cannot be read at all is first set aside (:meth:`VectorStore.quarantine`)
        and created anew; the rebuild reads the video files, never the damaged store.

        Raises:
            StoreError: the catalog or the vector store failed, or an unreadable collection
                cannot be set aside.
            ModelError: the encoder could not be loaded.
        """
        coll = self.collection
        health = check_store(self.catalog, self.store, sample=None)
        report = RepairReport(collection=coll, vectors_checked=health.checked_vectors)
        for name in health.unreadable:
            where = self.store.quarantine(name)
            if where is None:
                raise StoreError(f"{self.store.location}: collection {name} cannot be read")
            report.set_aside.append(where)
        report.videos_checked = len(self.catalog.placements())
        vids = [d.id for d in health.damaged]
        done = self._redo(vids, coll, report.failed, progress, outcome="repaired")
        report.repaired, report.events = len(done), sum(done)
        return report

    def _incomplete(self, coll: str, placed: dict[str, str | None]) -> set[str]:
        """Videos the catalog places in ``coll`` with another number of vectors there than
        events (one facet count of the store)."""
        mine = [vid for vid, c in placed.items() if c == coll]
        if not mine:
            return set()
        events = self.catalog.placed_events()
        stored = self.store.video_counts(coll) if coll in self.store.collections() else {}
        return {v for v in mine if v in events and stored.get(v, 0) != events[v][1]}

    def _redo(
        self,
        vids: list[str],
        coll: str,
        failed: list[Failure],
        progress: Progress,
        *,
        outcome: str,
    ) -> list[int]:
        """Embed videos ``vids`` from their files into ``coll``; the events of each one done.
        A video's own problem goes to ``failed`` and the rest go on."""
        progress("videos", total=len(vids))
        if vids:
            self.store.ensure_collection(coll, self.encoder.dim)
        done: list[int] = []
        for vid in vids:
            job = self._job(vid)
            if job is None:  # deleted meanwhile (its path now holds another video)
                continue
            progress("video", path=job.path)
            try:
                path = self._move(job, coll, progress)
            except MediaError as e:  # this video's problem: report it, go on with the rest
                failed.append(Failure(e.path, e.problem))
                progress("result", path=job.path, outcome="failed", error=e.problem)
                continue
            done.append(len(job.events))
            progress("result", path=path, outcome=outcome, events=len(job.events))
        if done:  # Qdrant Edge builds its HNSW index only when asked
            self.store.optimize(coll)
        self._drop_moved()
        return done

    def _job(self, vid: str) -> _Job | None:
        video = self.catalog.done_video(vid)  # paths and events loaded: usable detached
        if video is None:
            return None
        return _Job(
            id=video.id,
            path=video.path,
            camera=video.camera,
            fingerprint=video.fingerprint,
            size_bytes=video.size_bytes,
            seen={vp.path: (vp.size_bytes, vp.mtime_ns) for vp in video.paths},
            events=list(video.events),  # ordered by index
        )

    def _move(self, job: _Job, coll: str, progress: Progress) -> str:
        """Embed ``job``'s events from its file into ``coll``; returns the file used.

        Raises:
            MediaError: no readable copy of the video, or it could not be decoded.
        """
        progress("stage", path=job.path, stage="locate")
        path = _locate(job)
        progress("stage", path=path, stage="decode")
        with self.decode_for_encoder(path, probe(path)) as decoded:
            progress("stage", path=path, stage="embed")
            spans = [Span(e.start_s, e.end_s, decoded.fps) for e in job.events]
            vectors = embed_spans(
                self.encoder, decoded, spans, self.config.encoder.frames_per_event
            )
        progress("stage", path=path, stage="store")
        self.store.delete_video(coll, job.id)  # a half move of an interrupted run, if any
        self.store.upsert(
            coll,
            [
                event_point(e, job.id, job.camera, v)
                for e, v in zip(job.events, vectors, strict=True)
            ],
        )
        self.catalog.move_video(job.id, coll, path)
        return path

    def _drop_moved(self) -> None:
        """Delete from each other collection the points of done videos the catalog placed elsewhere.

        Points of videos the catalog does not know as done (a concurrent ingest's claims) are left
        alone; so are the collections themselves, and those not named like MARC's (a Qdrant server
        may hold other applications' collections).
        """
        placed = self.catalog.placements()
        current = self.collection
        for name in self.store.collections():
            if name == current or not name.startswith("events__"):
                continue
            for vid in self.store.video_ids(name):
                if placed.get(vid, name) != name:
                    self.store.delete_video(name, vid)


def _locate(job: _Job) -> str:
    """A readable file with ``job``'s content: its last path, else another path it was seen at.

    Raises:
        MediaError: no known path holds the video any more (the message names every path tried).
    """
    candidates = [job.path, *sorted(set(job.seen) - {job.path})]
    problems = []
    for spath in candidates:
        problem = _mismatch(Path(spath), job)
        if problem is None:
            return spath
        problems.append(problem if spath == job.path else f"{spath}: {problem}")
    raise MediaError(job.path, "; ".join(problems))


def _mismatch(path: Path, job: _Job) -> str | None:
    """Why ``path`` is not a readable copy of ``job``'s video, or ``None`` when it is.

    A file of another size is another video. One of the size and mtime that ingest saw at that
    path is trusted as ingest trusts it; otherwise its content fingerprint must match.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return "no such file (moved or deleted since it was ingested?)"
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if not path.is_file():
        return "not a file"
    if job.size_bytes is not None and st.st_size != job.size_bytes:
        return f"changed since ingest ({st.st_size} bytes, was {job.size_bytes})"
    if job.seen.get(str(path)) == (st.st_size, st.st_mtime_ns) or job.fingerprint is None:
        return None
    try:
        same = fingerprint(path) == job.fingerprint
    except MediaError as e:
        return e.problem
    return None if same else "changed since ingest (other content)"
