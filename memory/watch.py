"""``marc ingest --watch``: a long-lived ingest service for folders that recorders write into.

Two threads and two bounded maps::

    watcher (the caller's thread)                          worker (one thread)
    watchfiles events ─> stat ─> pending {path: (size, mtime_ns), since}
                                   │ unchanged for settle_s, looks like a video
                                   └─> ready {path: stamp} (FIFO) ──> Archive.ingest(<= MAX_BATCH)

- **Events** come from `watchfiles <https://watchfiles.helpmanual.io>`_ (Rust ``notify``:
  inotify, FSEvents, ReadDirectoryChangesW; a polling scan with ``poll_s`` for network file
  systems whose events never arrive). An event only says "look at this path again": the set a
  debounce window yields has no order, so the path's state is read back with ``os.stat``.
- **Complete** means: a regular, non-empty file whose size and ``mtime_ns`` have not changed for
  ``settle_s`` seconds (every event for it restarts the clock), that :func:`discover` would take
  as a video (its extension, else its first bytes). Files still growing stay pending. Hidden
  paths (any name below a watched folder starting with ``.``) and temporary names
  (:data:`TEMP_SUFFIXES`) are never looked at, so ``.clip.mp4.part`` renamed to ``clip.mp4`` is
  ingested once, under its final name. A folder that appears (moved in) is walked, since moving
  it in yields one event for the folder only.
- **Start** (and so a restart): the watch is set up first, then everything already under the
  paths is walked: a file last modified more than ``settle_s`` ago is complete, a newer one is
  pending like any changed file. Ingest's fast path skips what is stored (same path, size,
  mtime) and its content fingerprints skip copies, so a restart adds nothing twice; a file that
  changed while the service was down is ingested again and replaces its old version.
- **Ingest** runs in one worker thread, a batch of up to :data:`MAX_BATCH` files at a time, in the
  order they became complete, while the watcher goes on collecting (so several cameras' files
  settle while one is ingested). A file modified again after its ingest (a recorder appending)
  is ingested again once it settles; ingest replaces the old version.
- **Retention** (``retention_days``, ``MARC_RETENTION_DAYS``; off by default): at the start,
  after every batch and every :data:`RETENTION_CHECK_S` seconds while idle, the worker forgets
  the videos whose recording ended more than ``retention_days`` ago (:meth:`Archive.forget`, the
  function ``marc forget --before`` runs; the files are kept), and files last modified before
  then are never ingested, so a restart's catch-up does not bring them back.
- **Stop** (:meth:`IngestService.stop`, or ``KeyboardInterrupt`` in the watcher's thread): the
  worker leaves its batch at the next file or stage boundary, raising through ingest's progress
  callback. Ingest reports its last stage (``store``) before it writes vectors, so the file being
  ingested is either left without vectors (its claim is redone on the next start) or finished.
  Killing the process instead is safe too (ingest is crash-safe), just not tidy.

Errors: a file's problem (anything but the store's, the catalog's or a model's, see
``Ingestor._file_error``) and a folder that cannot be listed are in their batch's report and
the service goes on, exactly as ``marc ingest`` does; a store, catalog or model error ends
:meth:`IngestService.run` with that error, and a restart catches up.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import watchfiles

from marc.memory.archive import Archive
from marc.memory.core.errors import MediaError
from marc.memory.discover import discover, is_video_file
from marc.memory.forget import ForgetReport
from marc.memory.ingest import IngestReport, Progress, no_progress
from marc.memory.layout import CameraRule

#: Default quiet time (seconds) after which a file counts as complete.
SETTLE_S = 5.0
#: Most files per ``Archive.ingest`` call (keeps a catch-up's batches, runs and log lines small).
MAX_BATCH = 100
#: Names (lower case) that downloaders and copy tools give files they are still writing.
TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart", "~")

#: How often (seconds) an idle service applies its retention period.
RETENTION_CHECK_S = 600.0

#: Ingest's stages (``progress("stage", stage=...)``) reported before a file's vectors are written:
#: where a stop may leave a file.
_LEAVE_AT = frozenset({"hash", "busy", "decode", "segment", "embed", "store"})
#: ``(st_size, st_mtime_ns)``: what "has not changed" compares.
Stamp = tuple[int, int]


@dataclass
class Batch:
    """One ingest the service ran: the files that became complete together and what happened.

    ``results`` has one entry per file ingest reported on, in order: ``{"path", "outcome":
    "ingested", "events"}``, ``{"path", "outcome": "skipped"}`` or ``{"path", "outcome":
    "failed", "error"}``. ``to_json()`` is ``marc ingest --watch --json``'s line per batch.
    """

    files: list[Path]
    report: IngestReport
    results: list[dict[str, Any]]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**self.report.to_json(), "files": self.results, "seconds": round(self.seconds, 3)}


@dataclass
class WatchSummary:
    """What one :meth:`IngestService.run` did, summed over its batches.

    ``abandoned`` counts the files of the batch cut short by a stop (redone on the next start),
    ``forgotten`` the videos the retention period removed.
    """

    batches: int = 0
    ingested: int = 0
    skipped: int = 0
    failed: int = 0
    events_added: int = 0
    abandoned: int = 0
    forgotten: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Abandoned(Exception):
    """Raised through ingest's progress callback to leave a batch once a stop is asked for."""


class IngestService:
    """Watch ``paths`` and ingest each new or changed video into ``archive`` once it is complete.

    >>> with Archive(Settings(models="tiny")) as archive:  # doctest: +SKIP
    ...     service = IngestService(archive, [Path("cams/gate"), Path("cams/lot")], settle_s=5)
    ...     summary = service.run()  # until Ctrl-C or service.stop() from another thread

    Args:
        archive: Where to ingest; used by the worker thread only while :meth:`run` runs.
        paths: Folders (watched recursively) or files; they must exist.
        camera: Camera name for every file (default: the rule of :mod:`marc.memory.layout`, as
            ``marc ingest``).
        camera_from: Where to read each file's camera (``parent``, ``grandparent`` or a
            regular expression with a named group), as ``marc ingest --camera-from``.
        settle_s: How long a file's size and mtime must stay the same before it is complete.
        poll_s: Look for changes by scanning every ``poll_s`` seconds instead of waiting for
            file-system events (NFS, SMB and other network mounts do not report other machines'
            writes); ``None``: events.
        progress: Ingest's progress callback, called from the worker thread (``files`` starts a
            batch).
        on_batch: Called from the worker thread after each batch.
        retention_days: Forget videos whose recording ended more than this many days ago, and
            ingest no file last modified before then; ``None``: keep everything.
        on_forget: Called from the worker thread when the retention period forgot videos.
    """

    def __init__(
        self,
        archive: Archive,
        paths: Sequence[Path],
        *,
        camera: str | None = None,
        camera_from: str | None = None,
        settle_s: float = SETTLE_S,
        poll_s: float | None = None,
        progress: Progress = no_progress,
        on_batch: Callable[[Batch], None] | None = None,
        retention_days: float | None = None,
        on_forget: Callable[[ForgetReport], None] | None = None,
    ) -> None:
        if retention_days is not None and not retention_days > 0:
            raise ValueError(f"retention must be > 0 days, not {retention_days}")
        self.retention_days = retention_days
        self._on_forget = on_forget
        self._retained_at = -math.inf  # monotonic time retention was last applied
        if settle_s < 0:
            raise ValueError(f"settle time must be >= 0 seconds, not {settle_s}")
        if poll_s is not None and poll_s <= 0:
            raise ValueError(f"poll interval must be > 0 seconds, not {poll_s}")
        self.archive = archive
        self.roots = [Path(p).absolute() for p in paths]
        for root in self.roots:
            if not os.path.lexists(root):
                raise FileNotFoundError(f"{root}: no such file or directory")
        self.camera, self.settle_s, self.poll_s = camera, settle_s, poll_s
        self.camera_from = camera_from
        CameraRule(camera, camera_from)  # ConfigError for a bad pattern, before any watching
        self._user_progress = progress
        self._on_batch = on_batch
        home = archive.config.home.absolute()  # MARC's own files, unless a root lies inside it
        self._skip = None if any(r.is_relative_to(home) for r in self.roots) else home
        self._lock = threading.Condition()
        self._pending: dict[Path, tuple[Stamp, float]] = {}  # guarded by _lock
        self._ready: dict[Path, Stamp] = {}  # guarded by _lock; insertion order = FIFO
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._max_batches: int | None = None
        self._results: list[dict[str, Any]] = []  # the running batch's, worker thread only
        self.summary = WatchSummary()

    # --------------------------------------------------------------------------- public API
    def run(self, *, max_batches: int | None = None) -> WatchSummary:
        """Catch up, then watch and ingest until :meth:`stop`, ``KeyboardInterrupt`` or an error.

        ``max_batches`` stops after that many ingests (tests). Raises the error that ended the
        worker (a :class:`~marc.memory.core.errors.MarcError` other than a file's own problem).
        """
        self._max_batches = max_batches
        worker = threading.Thread(target=self._work, name="marc-ingest-watch", daemon=True)
        try:
            worker.start()
            self._watch()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            while worker.is_alive():  # the worker leaves at its next file or stage boundary
                try:
                    worker.join()
                except KeyboardInterrupt:
                    continue
        if self._error is not None:
            raise self._error
        return self.summary

    def stop(self) -> None:
        """Ask :meth:`run` to return; safe from any thread (not from a signal handler)."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()

    # ------------------------------------------------------------------------------ watcher
    def _watch(self) -> None:
        """Watch until stopped. The watcher cannot name a file whose name is not UTF-8
        (watchfiles raises on its event): then it starts again, and its catch-up walk, which
        reads every name, finds the file; stored files are skipped by ingest's fast path."""
        while not self._stop.is_set():
            try:
                self._watch_once()
            except RuntimeError as e:  # watchfiles' WatchfilesRustInternalError
                if "decode path" not in str(e):
                    raise

    def _watch_once(self) -> None:
        tick_ms = round(min(max(self.settle_s / 4, 0.05), 1.0) * 1000)
        changes_seen = watchfiles.watch(
            *self.roots,
            watch_filter=lambda _change, path: not self._ignored(Path(path)),
            debounce=tick_ms,
            rust_timeout=tick_ms,
            yield_on_timeout=True,  # an empty set every tick: the settle clock runs without events
            stop_event=self._stop,
            force_polling=self.poll_s is not None,
            poll_delay_ms=round((self.poll_s or 0.3) * 1000),
            ignore_permission_denied=True,
        )
        started = False
        for changes in changes_seen:
            if not started:  # the watch is up: nothing can fall between the walk and the events
                self._consider(discover(self.roots, on_error=self._unreadable))
                started = True
            added = {Path(p) for change, p in changes if change == watchfiles.Change.added}
            self._look_again({Path(p) for _, p in changes}, added)
            self._settle()

    def _ignored(self, path: Path) -> bool:
        name = path.name.lower()
        if name.endswith(TEMP_SUFFIXES):
            return True
        if self._skip is not None and path.is_relative_to(self._skip):
            return True
        for root in self.roots:
            if path.is_relative_to(root):
                return any(part.startswith(".") for part in path.relative_to(root).parts)
        return False

    def _look_again(self, paths: Iterable[Path], added: set[Path]) -> None:
        """Paths events named: restart the clock of files, walk new folders, forget gone ones.

        A folder moved in brings one event, for itself: its files are walked (a folder's other
        events, e.g. a polling scan's new mtime for each file added, are not)."""
        now = time.monotonic()
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                if path in added:
                    self._consider(discover([path], on_error=self._unreadable))
                continue
            with self._lock:
                self._ready.pop(path, None)
                if st is None or not stat.S_ISREG(st.st_mode):
                    self._pending.pop(path, None)
                else:
                    self._pending[path] = ((st.st_size, st.st_mtime_ns), now)

    def _consider(self, files: Iterable[Path]) -> None:
        """Files found by walking, that no event named: complete if last modified ``settle_s``
        seconds ago or earlier, else pending; never those older than the retention period."""
        found: list[tuple[Path, os.stat_result]] = []
        cutoff = self._cutoff()
        for path in files:
            with contextlib.suppress(OSError):
                if not self._ignored(path):
                    st = path.stat()
                    if cutoff is None or st.st_mtime >= cutoff.timestamp():
                        found.append((path, st))
        now, wall = time.monotonic(), time.time()
        with self._lock:  # all at once: a catch-up's first batch is not cut short
            for path, st in found:
                stamp = (st.st_size, st.st_mtime_ns)
                if path in self._ready or path in self._pending:
                    continue
                if wall - st.st_mtime >= self.settle_s and st.st_size > 0:
                    self._ready[path] = stamp
                else:
                    self._pending[path] = (stamp, now)
            self._lock.notify()

    def _unreadable(self, error: MediaError) -> None:
        """A folder the walk could not list: its batch's ingest walks it again and reports it as
        a failure, as ``marc ingest`` does (once per start, or when it is moved in again)."""
        with self._lock:
            self._ready[Path(error.path)] = (0, 0)
            self._lock.notify()

    def _settle(self) -> None:
        """Move the files that stayed unchanged for ``settle_s`` seconds to the worker."""
        now = time.monotonic()
        with self._lock:
            due = [p for p, (_, since) in self._pending.items() if now - since >= self.settle_s]
        for path in due:
            try:
                st = path.stat()
                stamp = (st.st_size, st.st_mtime_ns)
                video = stat.S_ISREG(st.st_mode) and st.st_size > 0 and is_video_file(path)
            except OSError:
                stamp, video = None, False
            with self._lock:
                seen = self._pending.get(path)
                if seen is None or now - seen[1] < self.settle_s:
                    continue  # an event restarted its clock meanwhile
                if stamp is not None and stamp != seen[0]:
                    self._pending[path] = (stamp, now)  # still growing, without events (NFS)
                    continue
                del self._pending[path]
                if video:
                    self._ready[path] = stamp
                    self._lock.notify()

    # ------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        try:
            self._retain()
            while (files := self._take()) is not None:
                if files:
                    self._ingest(files)
                    if self._max_batches is not None and self.summary.batches >= self._max_batches:
                        break
                self._retain(force=bool(files))
        except _Abandoned:
            pass
        except BaseException as e:  # handed to run(), which raises it in the caller's thread
            self._error = e
        finally:
            self.stop()

    def _cutoff(self) -> datetime | None:
        """The retention period's start: older recordings are forgotten (``None``: keep all)."""
        if self.retention_days is None:
            return None
        return datetime.now(UTC) - timedelta(days=self.retention_days)

    def _retain(self, *, force: bool = True) -> None:
        """Forget what the retention period has passed (after a batch, else when it is due)."""
        cutoff = self._cutoff()
        now = time.monotonic()
        if cutoff is None or (not force and now - self._retained_at < RETENTION_CHECK_S):
            return
        self._retained_at = now
        report = self.archive.forget(before=cutoff)
        self.summary.forgotten += report.forgotten
        if report.forgotten and self._on_forget is not None:
            self._on_forget(report)

    def _take(self) -> list[Path] | None:
        """Up to :data:`MAX_BATCH` complete files, oldest first; ``None`` once stopping; ``[]``
        when the retention period is due to be applied while idle."""
        with self._lock:
            while not self._ready and not self._stop.is_set():
                if self.retention_days is None:
                    self._lock.wait()
                elif not self._lock.wait(timeout=RETENTION_CHECK_S):
                    return []
            if self._stop.is_set():
                return None
            files = list(itertools.islice(self._ready, MAX_BATCH))
            for f in files:
                del self._ready[f]
            return files

    def _ingest(self, files: list[Path]) -> None:
        start = time.monotonic()
        self._results = []
        report = None
        try:
            for _ in range(3):  # ingest checks every path first: one may have gone since
                files = [f for f in files if os.path.lexists(f)]
                if not files:
                    return
                try:
                    report = self.archive.ingest(
                        files,
                        camera=self.camera,
                        camera_from=self.camera_from,
                        progress=self._progress,
                    )
                    break
                except FileNotFoundError:
                    if all(os.path.lexists(f) for f in files):
                        raise
            else:
                return
        except _Abandoned:
            self.summary.abandoned += len(files) - len(self._results)
            raise
        self.summary.batches += 1
        if self._on_batch is not None and report is not None:
            self._on_batch(Batch(files, report, self._results, time.monotonic() - start))

    def _progress(self, kind: str, **info: Any) -> None:
        if self._stop.is_set() and (kind == "file" or info.get("stage") in _LEAVE_AT):
            raise _Abandoned  # before the file's vectors are written: its claim is redone later
        if kind == "result":
            self._tally(info)
        self._user_progress(kind, **info)

    def _tally(self, info: dict[str, Any]) -> None:
        s, outcome = self.summary, info["outcome"]
        result: dict[str, Any] = {"path": str(info["path"]), "outcome": outcome}
        if outcome == "ingested":
            s.ingested += 1
            s.events_added += info["events"]
            result["events"] = info["events"]
        elif outcome == "skipped":
            s.skipped += 1
        else:
            s.failed += 1
            result["error"] = info["error"]
        self._results.append(result)
