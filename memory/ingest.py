"""The ingest pipeline: files -> event memories (catalog rows + vectors), resumable and crash-safe.

For each video file::

    stat ──(same path, size, mtime as a done video, its vectors all in the store)──> skip
      │
    fingerprint ──(content already done, its vectors all in the store)──> skip, remember the path
      │
    claim: videos.status = pending  (committed)
      │
    probe + decode once (ffmpeg) ─> segment as frames arrive (TransNetV2 cuts behind the
      │                               change gate + activity + max length)
      │                          ─> embed N frames per event, event vector = normalised mean
    vectors upserted, durable      (deterministic ids: a repeat overwrites, never duplicates)
      │
    events + videos.status = done  (one transaction)

Crash safety: a ``kill -9`` anywhere leaves either a ``pending`` claim (its run's process is gone)
or a finished video. The next run deletes the vectors of stale claims and reconciles the vector
store against the catalog, then does the work again; ids are deterministic, so the result equals
a clean run's. An interrupted run (Ctrl-C, or any exception ending it) does that clean-up itself
before it returns: it deletes the vectors of the claims it leaves ``pending`` and marks itself
``interrupted``; :class:`IngestInterrupted` carries the report of what it finished.

Cameras and start times come from the recorder's folder layout and file names
(:mod:`marc.memory.layout`). A recording that decodes only in part is stored as far as it decodes
and reported as *partial* (a warning, not a failure).
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from marc.memory.catalog import Event
from marc.memory.core.config import SegmentationConfig, as_config
from marc.memory.core.errors import ConfigError, MediaError, ModelError, StoreError, one_line
from marc.memory.core.paths import printable
from marc.memory.core.timeline import Span
from marc.memory.discover import discover
from marc.memory.encoders import Encoder, event_vector
from marc.memory.fingerprint import event_id, fingerprint, video_id
from marc.memory.layout import TIME_SOURCES, CameraRule, recorded_at
from marc.memory.media import Decoded, VideoInfo, clean_spill_files, decode, probe
from marc.memory.parts import ArchiveParts
from marc.memory.process import pid_alive
from marc.memory.segment import ChangeGate, Segmentation, SegmentStream
from marc.memory.sparse import retime_segmentation
from marc.memory.stores import EventPoint

#: ``progress(kind, **info)``: ``files`` (total=n), ``file`` (path=), ``stage`` (path=, stage=),
#: ``result`` (path=, outcome=ingested|skipped|failed, events=, error=, warning=): ``warning``
#: (a partial recording's, else ``None``) comes with ``ingested``.
Progress = Callable[..., None]


def no_progress(kind: str, **info: Any) -> None:
    pass


@dataclass
class Failure:
    path: str
    error: str


@dataclass
class Partial:
    """A recording that decoded only in part (cut off): ``decoded_s`` of ``declared_s`` stored."""

    path: str
    decoded_s: float
    declared_s: float

    @property
    def warning(self) -> str:
        return (
            f"{self.path}: partial recording: decoded {self.decoded_s:.1f} s of "
            f"{self.declared_s:.1f} s (the file is cut off); the decoded part is stored"
        )


@dataclass
class IngestReport:
    """What one ``marc ingest`` did. ``to_json()`` is the CLI's ``--json`` contract.

    Besides the counts: ``partial`` lists the recordings stored as far as they decode,
    ``start_sources`` counts the ingested videos by where their start time came from
    (:data:`~marc.memory.layout.TIME_SOURCES`), ``mtime_fallback`` names those dated by their
    modification time only, ``timezone`` is the zone names and folders were read in, and
    ``interrupted`` says the run was stopped before its end.
    """

    ingested: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    events_added: int = 0
    partial: list[Partial] = field(default_factory=list)
    start_sources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIME_SOURCES, 0))
    mtime_fallback: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    interrupted: bool = False

    def warnings(self) -> list[str]:
        """One line per partial recording, and one for the batch if some start time is a
        modification time."""
        lines = [p.warning for p in self.partial]
        if n := len(self.mtime_fallback):
            first = self.mtime_fallback[0]
            lines.append(
                f"{n} video(s) carry no recording time in their container, name or folders "
                f"(first: {first}); their start time is the file's modification time, which "
                "copying resets: see docs/ingest.md#cameras-and-start-times"
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "ingested": self.ingested,
            "skipped": self.skipped,
            "failed": [asdict(f) for f in self.failed],
            "events_added": self.events_added,
            "partial": [asdict(p) for p in self.partial],
            "start_sources": dict(self.start_sources),
            "mtime_fallback": list(self.mtime_fallback),
            "timezone": self.timezone,
            "warnings": self.warnings(),
            "interrupted": self.interrupted,
        }


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C (``KeyboardInterrupt``) during :meth:`Ingestor.ingest`, after its clean-up:
    ``report`` is what the run finished (``interrupted`` set); the rest resumes on the next run.
    """

    def __init__(self, report: IngestReport) -> None:
        super().__init__("ingest interrupted")
        self.report = report


def segment_stream(fps: float, config: SegmentationConfig | Any) -> SegmentStream:
    """A :class:`SegmentStream` for a video at ``fps`` with the segmentation ``config`` (or a
    ``Settings``' ``segmentation``)."""
    config = as_config(config, SegmentationConfig)
    gate = ChangeGate(config.gate_threshold) if config.gate_threshold > 0 else None
    return SegmentStream(
        fps,
        cut_threshold=config.cut_threshold,
        max_event_s=config.max_event_s,
        min_event_s=config.min_event_s,
        device=config.device,
        runtime=config.runtime,
        gate=gate,
    )


def segment_video(path: Path, config: SegmentationConfig | Any) -> tuple[Decoded, Segmentation]:
    """Decode ``path`` once and cut it into events as it decodes, storing nothing."""
    info = probe(path)
    stream = segment_stream(info.fps, config)
    decoded = decode(path, image_size=32, sample_fps=0.5, info=info, on_small=stream.feed)
    return decoded, retime_segmentation(stream.finish(), decoded.timeline)


def embed_spans(
    encoder: Encoder, decoded: Decoded, spans: Sequence[Span], frames_per_event: int
) -> list[np.ndarray]:
    """One vector per span: the normalised mean of N frames sampled evenly inside it.

    Each of the ``frames_per_event`` times of :meth:`Span.sample_times` takes the decoded sample
    nearest to it; every distinct sample is embedded once. Ingest and ``marc reindex`` both embed
    through here, so a reindexed event gets the vector a fresh ingest would give it.

    Args:
        encoder: The encoder; ``decoded`` must have been decoded at its ``image_size``.
        decoded: The video's decoded samples.
        spans: The events' spans, in seconds.
        frames_per_event: N.

    Returns:
        ``float32 [encoder.dim]`` unit vectors, one per span, in order.
    """
    n = frames_per_event
    picks = [
        [int(np.abs(decoded.sample_times - t).argmin()) for t in span.sample_times(n)]
        for span in spans
    ]
    unique = sorted({i for p in picks for i in p})
    embs = encoder.embed_images(np.asarray(decoded.samples[unique]))
    row = {i: r for r, i in enumerate(unique)}
    return [event_vector(embs[[row[i] for i in p]]) for p in picks]


@dataclass
class _Claimed:
    """A file this run has claimed (``videos.status = pending``) and will decode and store."""

    path: Path
    spath: str  # absolute path, the catalog's key
    st: os.stat_result
    fp: str  # content fingerprint
    vid: str
    key: str  # segmentation key
    camera: str
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Pending:
    claimed: _Claimed
    future: Future


class Ingestor(ArchiveParts):
    """Runs ingests against one catalog and one vector store. Models load on first need."""

    def recover(self) -> int:
        """Clean up after crashed runs on this host; returns how many stale claims were undone.

        A run still marked ``running`` whose process is gone crashed: its ``pending`` videos may
        have vectors without events. Those vectors are deleted, and vectors of videos the catalog
        does not know as done or pending are removed (a crash between the two halves of a
        replacement). The claims stay ``pending`` and are redone when their files are seen.
        """
        crashed, stale = self.catalog.crash_runs(socket.gethostname(), pid_alive)
        if not crashed:
            return 0
        self.store.ensure_collection(self.collection, self.encoder.dim)
        for vid in stale:
            self.store.delete_video(self.collection, vid)
        # The store first, then the catalog: a concurrent ingest claims a video (committed)
        # before it writes the video's vectors, so every vector seen here belongs to a video the
        # catalog read below knows, unless it really is an orphan.
        stored = self.store.video_ids(self.collection)
        known = self.catalog.video_ids("done", "pending")  # live runs' claims keep their vectors
        for vid in stored - (known - set(stale)):
            self.store.delete_video(self.collection, vid)
        return len(stale)

    # ------------------------------------------------------------------------------- ingest
    def ingest(
        self,
        paths: Sequence[Path],
        *,
        camera: str | None = None,
        camera_from: str | None = None,
        progress: Progress = no_progress,
    ) -> IngestReport:
        """Ingest every video found under ``paths``. Bad files are reported, never fatal.

        ``camera`` names every file's camera; ``camera_from`` (``parent``, ``grandparent`` or a
        regular expression with a named group) says where to read it; neither: the default rule
        of :mod:`marc.memory.layout` (date folders are not cameras).

        A folder that cannot be listed is a failure of the report, like a file that cannot be
        read.

        Raises:
            FileNotFoundError: a given path does not exist (before any work).
            ConfigError: ``camera_from`` is neither a keyword nor a usable pattern.
            IngestInterrupted: Ctrl-C; the run cleaned up after itself first (its report is
                attached). Any other exception ending the run cleans up the same way.
        """
        rule = CameraRule(camera, camera_from)
        unreadable: list[MediaError] = []  # folders the walk could not enter or list
        files = list(discover([Path(p) for p in paths], on_error=unreadable.append))
        progress("files", total=len(unreadable) + len(files))
        report = IngestReport(timezone=self.config.timezone)
        self.recover()
        clean_spill_files(self.tmp_dir)  # left by older versions when killed
        run_id = self.catalog.start_run(
            socket.gethostname(),
            os.getpid(),
            [printable(str(p)) for p in paths]
            + ([printable(rule.describe())] if rule.describe() else []),
        )
        try:
            callback = _Callback(progress)
            for e in unreadable:  # reported, not recorded: a folder is not a video
                self._report(report, Path(e.path), e, callback)
            self._run(files, rule, run_id, report, callback)
        except BaseException as e:
            report.interrupted = True
            self._abandon(run_id, report)
            if isinstance(e, KeyboardInterrupt) and not isinstance(e, IngestInterrupted):
                raise IngestInterrupted(report) from e
            raise
        self._close_run(run_id, report, "finished")
        return report

    def _run(
        self,
        files: list[Path],
        rule: CameraRule,
        run_id: int,
        report: IngestReport,
        progress: _Callback,
    ) -> None:
        # Two files in flight at most: while one is embedded and stored here, the next one is
        # decoded and segmented on a worker thread (ffmpeg on one core, the network on the
        # other). Everything that touches the catalog's claims happens on this thread, in file
        # order; the worker only reads the file.
        in_flight: list[_Claimed] = []  # submitted to the worker and not stored yet
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marc-decode") as pool:
            try:
                pending: _Pending | None = None
                for path in files:
                    progress("file", path=path)
                    try:
                        claimed = self._prepare(path, rule, run_id, progress)
                    except MediaError as e:  # recorded by _prepare
                        self._report(report, path, self._file_error(path, e, progress), progress)
                        continue
                    except Exception as e:
                        err = self._file_error(path, e, progress)
                        self._record(path, run_id, err, rule)
                        self._report(report, path, err, progress)
                        continue
                    if claimed is None:
                        report.skipped += 1
                        progress("result", path=path, outcome="skipped")
                        continue
                    self.encoder  # noqa: B018 - loaded here, not raced for by the worker
                    progress("stage", path=path, stage="decode")
                    in_flight.append(claimed)
                    nxt = _Pending(claimed, pool.submit(self._decode, claimed))
                    if pending is not None:
                        self._finish(pending, report, progress)
                        in_flight.remove(pending.claimed)
                    pending = nxt
                if pending is not None:
                    self._finish(pending, report, progress)
                    in_flight.remove(pending.claimed)
            finally:
                for c in in_flight:  # interrupted: stop the worker's ffmpeg at once
                    c.cancel.set()

    def _close_run(self, run_id: int, report: IngestReport, status: str) -> None:
        if report.ingested:  # Qdrant Edge builds its HNSW index only when asked
            self.store.optimize(self.collection)
        self.catalog.finish_run(
            run_id,
            ingested=report.ingested,
            skipped=report.skipped,
            failed=len(report.failed),
            events_added=report.events_added,
            status=status,
        )

    def _abandon(self, run_id: int, report: IngestReport) -> None:
        """Clean up after an interrupted run: the vectors of the videos it claimed and did not
        finish go, first-time claims are dropped (the others stay ``pending``), and the run is
        marked ``interrupted``. The next run does those files again.

        Best effort: if this fails too (the store is down, a second Ctrl-C), the run stays
        ``running`` and the next run's :meth:`recover` does the same once this process is gone.
        """
        try:
            stale = self.catalog.pending_video_ids(run_id)
            if stale and self.collection in self.store.collections():
                for vid in stale:
                    self.store.delete_video(self.collection, vid)
            self.catalog.release_claims(run_id)
            self._close_run(run_id, report, "interrupted")
        except Exception:  # noqa: BLE001 - the original exception is what the caller sees
            pass

    def _report(self, report: IngestReport, path: Path, e: MediaError, progress: Progress) -> None:
        """A file's own problem: reported, and the run goes on with the rest."""
        report.failed.append(Failure(str(path), e.problem))
        progress("result", path=path, outcome="failed", error=e.problem)

    def _record(self, path: Path, run_id: int, err: MediaError, rule: CameraRule) -> None:
        """Record an unexpected failure before the file was claimed, if the catalog can."""
        try:
            spath = str(path.absolute())
            self.catalog.fail_unreadable(spath, run_id, err.problem, _camera_or_none(rule, path))
        except (StoreError, ModelError, ConfigError):
            raise
        except Exception:  # noqa: S110 - the catalog cannot hold it: the report still says it
            pass

    @staticmethod
    def _file_error(path: Path, e: Exception, progress: _Callback) -> MediaError:
        """``e``, raised while working on the file ``path``, as that file's :class:`MediaError`;
        raised again when it ends the run instead.

        Only what would fail every file ends a run: the store or the catalog
        (:class:`StoreError`), a model (:class:`ModelError`), a setting (:class:`ConfigError`),
        and whatever the progress callback raised (``marc ingest --watch`` leaves a batch that
        way). Anything else is this file's problem, a bug included (its type is named, so it can
        be reported): the batch and the watch service go on.
        """
        if isinstance(e, StoreError | ModelError | ConfigError) or progress.raised(e):
            raise e
        if isinstance(e, MediaError):
            return e
        problem = f"unexpected error: {type(e).__name__}: {printable(one_line(e, limit=300))}"
        return MediaError(path, problem)

    def _finish(self, pending: _Pending, report: IngestReport, progress: Progress) -> None:
        """Wait for ``pending``'s decode, then embed and store it (this thread)."""
        path = pending.claimed.path
        try:
            added, source, partial = self._store(pending.claimed, pending.future, progress)
        except Exception as e:
            self._report(report, path, self._file_error(path, e, progress), progress)
            return
        report.ingested += 1
        report.events_added += added
        report.start_sources[source] += 1
        if source == "mtime":
            report.mtime_fallback.append(str(path))
        if partial is not None:
            report.partial.append(partial)
        warning = None if partial is None else partial.warning
        progress("result", path=path, outcome="ingested", events=added, warning=warning)

    def _prepare(
        self, path: Path, rule: CameraRule, run_id: int, progress: Progress
    ) -> _Claimed | None:
        """Stat, hash and claim one file; ``None`` when it is already stored (or busy)."""
        spath = str(path.absolute())
        key = self.config.segmentation.key()
        try:
            st = path.stat()
        except OSError as e:
            problem = f"unreadable: {e.strerror or e}"
            self.catalog.fail_unreadable(spath, run_id, problem, _camera_or_none(rule, path))
            raise MediaError(path, problem) from e
        if not stat.S_ISREG(st.st_mode):  # opening a FIFO blocks, /dev/zero never ends
            problem = f"not a regular file ({_kind(st.st_mode)}); only regular files are ingested"
            self.catalog.fail_unreadable(spath, run_id, problem)
            raise MediaError(path, problem)
        if not 0 <= st.st_mtime_ns < 2**63:  # the catalog keeps it as a 64-bit integer
            problem = f"modification time out of range ({st.st_mtime:.0f} s); set it with touch"
            self.catalog.fail_unreadable(spath, run_id, problem, _camera_or_none(rule, path))
            raise MediaError(path, problem)

        current = self.catalog.current_video_at(spath, st, key, self.collection)
        if current is not None and self._stored_whole(current):
            return None  # fast path: same file as last time, nothing to hash
        try:
            camera = rule.camera_for(path)
        except MediaError as e:  # --camera-from REGEX does not match: nothing is guessed
            self.catalog.fail_unreadable(spath, run_id, e.problem)
            raise

        progress("stage", path=path, stage="hash")
        try:
            fp = fingerprint(path)
        except MediaError as e:
            self.catalog.fail_unreadable(spath, run_id, e.problem, camera)
            raise
        vid = video_id(fp)
        claim = self.catalog.claim(vid, fp, spath, st, run_id, key, self.collection)
        if claim == "current" and not self._stored_whole(vid):  # the store lost its vectors
            claim = self.catalog.claim(vid, fp, spath, st, run_id, key, self.collection, redo=True)
        if claim != "claimed":
            if claim == "busy":
                progress("stage", path=path, stage="busy")
            return None
        return _Claimed(path, spath, st, fp, vid, key, camera)

    def _decode(self, c: _Claimed) -> tuple[VideoInfo, Decoded, Segmentation]:
        """Probe, decode and segment a claimed file (the worker thread: reads the file only)."""
        info = probe(c.path)
        # the small frames go straight from ffmpeg into segmentation, as they are decoded
        stream = segment_stream(info.fps, self.config.segmentation)

        def feed(frames: np.ndarray) -> None:
            if c.cancel.is_set():
                raise MediaError(c.path, "ingest interrupted")
            stream.feed(frames)

        decoded = self.decode_for_encoder(c.path, info, on_small=feed)
        try:
            return info, decoded, retime_segmentation(stream.finish(), decoded.timeline)
        except BaseException:
            decoded.close()
            raise

    def _store(
        self, c: _Claimed, future: Future, progress: _Callback
    ) -> tuple[int, str, Partial | None]:
        """Embed and store a decoded file: the number of events added, where its start time
        came from, and whether it is partial.

        A problem of the file (see :meth:`_file_error`) marks its claim ``failed``, without
        vectors; the store's, the catalog's or a model's leaves the claim ``pending``.
        """
        try:
            info, decoded, seg = future.result()
            with decoded:
                progress("stage", path=c.path, stage="embed")
                vectors = self._embed(decoded, seg)
            origin, origin_source = recorded_at(c.path, info, self.config.timezone)
            events = self._events(c, seg, origin)
        except Exception as e:
            err = self._file_error(c.path, e, progress)
            self.catalog.fail_video(c.vid, err.problem, c.spath, c.st, c.camera)
            raise err from e
        try:
            return self._commit(c, info, decoded, events, vectors, origin, origin_source, progress)
        except Exception as e:
            err = self._file_error(c.path, e, progress)
            # its vectors may be written: the claim goes failed without them
            if self.collection in self.store.collections():
                self.store.delete_video(self.collection, c.vid)
            self.catalog.fail_video(c.vid, err.problem, c.spath, c.st, c.camera)
            raise err from e

    def _events(self, c: _Claimed, seg: Segmentation, origin: datetime) -> list[Event]:
        """The catalog rows of ``seg``'s events, dated from the recording's start ``origin``."""
        return [
            Event(
                id=event_id(c.fp, c.key, ev.index),
                video_id=c.vid,
                index=ev.index,
                start_s=ev.span.start_s,
                end_s=ev.span.end_s,
                start_at=ev.span.at(origin)[0],
                end_at=ev.span.at(origin)[1],
                boundary=ev.boundary,
            )
            for ev in seg.events
        ]

    def _commit(
        self,
        c: _Claimed,
        info: VideoInfo,
        decoded: Decoded,
        events: list[Event],
        vectors: list[np.ndarray],
        origin: datetime,
        origin_source: str,
        progress: Progress,
    ) -> tuple[int, str, Partial | None]:
        """Write ``events``' vectors, then the events and ``done`` (one transaction)."""
        path, spath, st, vid, key = c.path, c.spath, c.st, c.vid, c.key
        cam = c.camera
        partial = (
            Partial(str(path), decoded.duration_s, info.duration_s) if decoded.partial else None
        )
        progress("stage", path=path, stage="store")
        coll = self.collection
        self.store.ensure_collection(coll, self.encoder.dim)
        self.store.delete_video(coll, vid)  # events of earlier settings, if any
        self.store.upsert(
            coll, [event_point(e, vid, cam, vec) for e, vec in zip(events, vectors, strict=True)]
        )

        replaced = self.catalog.commit_video(
            vid,
            events,
            spath,
            st,
            camera=cam,
            duration_s=decoded.duration_s,
            declared_duration_s=info.duration_s if partial else None,
            fps=decoded.fps,
            frames=decoded.frames,
            width=info.width,
            height=info.height,
            size_bytes=st.st_size,
            recorded_at=origin,
            recorded_at_source=origin_source,
            segmentation_key=key,
            collection=coll,
        )
        for old in replaced:
            self._drop_if_orphaned(old)
        return len(events), origin_source, partial

    # ------------------------------------------------------------------------------ helpers
    def _stored_whole(self, vid: str) -> bool:
        """Whether the current collection holds one vector per catalog event of done video
        ``vid`` (two indexed counts). When not (a lost or damaged store), ingest redoes it."""
        if self.collection not in self.store.collections():
            return self.catalog.event_count(vid) == 0
        have = self.store.video_counts(self.collection, [vid]).get(vid, 0)
        return have == self.catalog.event_count(vid)

    def _embed(self, decoded: Decoded, seg: Segmentation) -> list[np.ndarray]:
        """One vector per event: normalised mean of N frames sampled evenly inside it."""
        spans = [ev.span for ev in seg.events]
        return embed_spans(self.encoder, decoded, spans, self.config.encoder.frames_per_event)

    def _drop_if_orphaned(self, vid: str) -> None:
        """A changed file replaced video ``vid`` at its path: forget ``vid`` if no path is left.

        The catalog rows go first, then the vectors; a crash in between leaves vectors that the
        next run's reconciliation removes.
        """
        coll = self.catalog.forget_if_orphaned(vid)
        if coll and coll in self.store.collections():  # any encoder's collection, as it is
            self.store.delete_video(coll, vid)


class _Callback:
    """The caller's progress callback, remembering what it raised: that is never a file's
    problem (``marc ingest --watch`` raises through it to leave a batch)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._raised: BaseException | None = None

    def __call__(self, kind: str, **info: Any) -> None:
        try:
            self.progress(kind, **info)
        except BaseException as e:
            self._raised = e
            raise

    def raised(self, e: BaseException) -> bool:
        return e is self._raised


def event_point(e: Event, vid: str, camera: str, vector: np.ndarray) -> EventPoint:
    """The vector-store point of catalog event ``e`` of video ``vid``."""
    return EventPoint(
        id=e.id,
        vector=vector.astype(np.float32),
        payload={
            "event_id": e.id,
            "video_id": vid,
            "camera": camera,
            "start_s": e.start_s,
            "end_s": e.end_s,
            "start_at": _iso(e.start_at),
            "end_at": _iso(e.end_at),
        },
    )


def _camera_or_none(rule: CameraRule, path: Path) -> str:
    """``path``'s camera for a failure row, ``""`` when the rule finds none."""
    try:
        return rule.camera_for(path)
    except MediaError:
        return ""


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character "
             "device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a file")


def _iso(t: datetime) -> str:
    return t.isoformat()
