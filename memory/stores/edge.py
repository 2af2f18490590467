"""The embedded vector store: one Qdrant Edge shard per collection, in ``<path>/<collection>/``.

Facts about ``qdrant-edge-py`` 0.9.0 this module relies on (checked by ``tests/test_stores.py``):

* **Durability.** ``EdgeShard.update`` appends the operation to the shard's write-ahead log (an
  mmap'ed file under ``wal/``) before applying it, so it survives ``kill -9`` as soon as
  ``update`` returns; it does not ``fsync``. ``EdgeShard.flush()`` syncs the WAL and the segments
  (about 15 ms for 500 x 1024-d points), which also covers an OS crash or power loss. This store
  calls ``flush()`` at the end of every :meth:`EdgeStore.upsert` and :meth:`EdgeStore.delete_video`.
* **Concurrency.** A shard takes an exclusive, non-blocking lock on its WAL when opened; a second
  ``EdgeShard.load`` of the same folder -- from another process *or the same one* -- fails with
  ``WouldBlock`` until the first is closed (a killed process's lock goes with it). This store
  therefore shares a shard between processes by *time*: it opens a shard for an operation, keeps
  it open while operations keep coming, and closes it after ``release_after_s`` idle seconds (a
  background thread does this), so that another process -- ``marc search`` during ``marc ingest``,
  or a second ingest -- can take its turn. An opener that finds the shard busy retries for up to
  ``wait_s`` seconds, then raises a one-line :class:`StoreError`. Loading a shard costs ~0.15 s
  at 20 k points; every write is durable before the shard is released, so a reader always sees
  every finished write. A *failed* ``EdgeShard.load`` is not harmless: it opens the segments
  before it finds the WAL locked, and two ingests racing that way corrupted the holder's payload
  index ("Tracker journal ... is shorter than expected" on its next flush). So this store takes an
  ``flock`` on ``.<collection>.lock`` beside the shard before it calls ``load`` at all, and holds
  it until the shard is closed: Edge never sees a second opener.
* **Datetime.** Edge has ``PayloadSchemaType.Datetime`` indexes and ``RangeDateTime`` filters on
  RFC 3339 strings with microseconds and any UTC offset, so ``start_at``/``end_at`` are filtered
  as datetimes, exactly as on the server.
* **Indexing.** Edge runs no background optimiser: points stay in a plain (exact, brute-force)
  segment until ``EdgeShard.optimize()`` builds HNSW (seconds per ten thousand 1024-d vectors;
  a no-op below the indexing threshold). Call :meth:`EdgeStore.optimize` after a large ingest.
  New shards get the HNSW settings :data:`HNSW_M` / :data:`HNSW_EF_CONSTRUCT` and int8 scalar
  quantization; searches use ``hnsw_ef`` (default :data:`SEARCH_EF`) and rescore
  :data:`OVERSAMPLING` x k quantized candidates with the float vectors, chosen with
  ``bench/retrieval.py`` for recall@3 >= 0.99 on embedding-like data.
* Point ids are UUIDs (returned as :class:`uuid.UUID`); errors are bare ``Exception`` whose text
  starts with ``Service runtime error:``; ``edge_config.json`` persists the vector config. A
  float payload value may come back one ulp off (``1022.3133854074423`` -> ``...424``).

In each shard folder this store also writes ``marc-collection.json`` (``{"dim": ..., "distance":
"cosine"}``): the marker :meth:`EdgeStore.collections` lists, and the dimension it checks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from marc.memory.core.errors import one_line
from marc.memory.process import pid_alive
from marc.memory.stores.base import (
    INDEXED_FIELDS,
    EventFilter,
    EventPoint,
    ScoredPoint,
    StoreError,
    VectorStore,
)

META_FILE = "marc-collection.json"
#: Free disk a new shard needs: its two mapped 32 MiB write-ahead-log segments.
SHARD_FREE_BYTES = 64 << 20
_BATCH = 512  # points per WAL record
_SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "datetime": qe.PayloadSchemaType.Datetime}
#: HNSW graph degree and build beam of new shards (Qdrant's defaults are 16 and 100).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 128
#: Segments smaller than this many KB are searched exactly (Qdrant's default).
FULL_SCAN_THRESHOLD_KB = 10_000
#: HNSW beam width at search time.
SEARCH_EF = 256
#: Searches of quantized shards score ``OVERSAMPLING * k`` candidates with the int8 vectors, then
#: rescore them with the original float vectors (recall 0.998-1.000 instead of 0.95-0.98).
OVERSAMPLING = 4.0
_BUSY = (
    "the vector shard is in use by another process or store (Qdrant Edge allows one opener at a "
    "time) and was not released within {wait:g} s; try again, or set MARC_QDRANT_URL to share a "
    "Qdrant server"
)


class _Busy(Exception):
    """The shard's WAL lock is held by another opener."""


def _edge_filter(flt: EventFilter) -> qe.Filter | None:
    must: list[qe.FieldCondition] = []
    if flt.cameras is not None:
        must.append(qe.FieldCondition("camera", match=qe.MatchAny(list(flt.cameras))))
    if flt.video_ids is not None:
        must.append(qe.FieldCondition("video_id", match=qe.MatchAny(list(flt.video_ids))))
    if flt.since is not None:
        must.append(qe.FieldCondition("end_at", range=qe.RangeDateTime(gt=flt.since)))
    if flt.until is not None:
        must.append(qe.FieldCondition("start_at", range=qe.RangeDateTime(lt=flt.until)))
    must_not = []
    if flt.exclude_video_ids:
        must_not.append(
            qe.FieldCondition("video_id", match=qe.MatchAny(list(flt.exclude_video_ids)))
        )
    return qe.Filter(must=must or None, must_not=must_not or None) if must or must_not else None


class EdgeStore(VectorStore):
    """Collections as Qdrant Edge shard folders under ``path``, opened on use, released when idle.

    Args:
        path: Folder holding one sub-folder per collection (created when needed).
        hnsw_ef: HNSW beam width of searches (higher: better recall, slower).
        quantize: Give new shards int8 scalar quantization (kept in RAM, a quarter of the float
            vectors' size): 2.6-4.5x faster index builds and ~3x faster searches at the same
            recall, with rescoring (``bench/retrieval.md``). Existing shards keep their config.
        oversampling: Candidates per hit rescored with the float vectors on quantized shards.
        release_after_s: Close a shard after this many idle seconds so other processes can open
            it; ``None`` keeps shards open until :meth:`close` (a single-process tool).
        wait_s: How long to keep retrying when another opener holds a shard.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        hnsw_ef: int = SEARCH_EF,
        quantize: bool = True,
        oversampling: float = OVERSAMPLING,
        release_after_s: float | None = 1.0,
        wait_s: float = 120.0,
    ) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.hnsw_ef = hnsw_ef
        self.quantize = quantize
        self.oversampling = oversampling
        self.release_after_s = release_after_s
        self.wait_s = wait_s
        self._shards: dict[str, qe.EdgeShard] = {}
        self._locks: dict[Path, int] = {}  # shard folder -> fd holding its flock
        self._last_used: dict[str, float] = {}
        self._dims: dict[str, int] = {}
        self._closed = False
        # One lock for every shard operation: the reaper never closes a shard mid-operation, and
        # threads of this process never load a shard twice (a second load would hit the WAL lock).
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._reaper: threading.Thread | None = None

    # ---------------------------------------------------------------------------- helpers
    def _dir(self, name: str) -> Path:
        self._check_name(name)
        return self.path / name

    @contextmanager
    def _backend(self, where: Path) -> Iterator[None]:
        """Turn a Qdrant Edge failure into a one-line :class:`StoreError` naming ``where``."""
        try:
            yield
        except (StoreError, ValueError, TypeError):
            raise
        except Exception as err:
            text = one_line(err).removeprefix("Service runtime error: ")
            if "WouldBlock" in text:
                raise _Busy(text) from err
            raise StoreError(f"{where}: {text}") from err

    def _meta(self, name: str) -> dict | None:
        f = self._dir(name) / META_FILE
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError) as err:
            raise StoreError(f"{f}: unreadable collection metadata: {one_line(err)}") from err

    def _write_meta(self, name: str, dim: int) -> None:
        f = self._dir(name) / META_FILE
        tmp = f.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump({"name": name, "dim": dim, "distance": "cosine"}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, f)

    @contextmanager
    def _use(self, name: str) -> Iterator[qe.EdgeShard]:
        """The open shard of ``name`` for one operation (opened, waiting if busy, when needed)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.location}: the vector store is closed")
            shard = self._shards.get(name)
            if shard is None:
                where = self._dir(name)
                if self._meta(name) is None:
                    raise StoreError(f"{where}: no such collection (ingest some videos first)")
                shard = self._load(where)
                self._shards[name] = shard
                self._start_reaper()
            try:
                with self._backend(self._dir(name)):
                    yield shard
            finally:
                self._last_used[name] = time.monotonic()

    def _load(self, where: Path, config: qe.EdgeConfig | None = None) -> qe.EdgeShard:
        """``EdgeShard.load``, retrying while another opener holds the shard (up to ``wait_s``)."""
        deadline = time.monotonic() + self.wait_s
        delay = 0.01
        while True:
            try:
                self._lock_shard(where)
                try:
                    with self._backend(where):
                        return qe.EdgeShard.load(str(where), config)
                except BaseException:
                    self._unlock_shard(where)
                    raise
            except _Busy as err:
                if time.monotonic() >= deadline:
                    raise StoreError(f"{where}: {_BUSY.format(wait=self.wait_s)}") from err
            # Sleeping with the lock held is fine: this thread needs the shard to go on anyway.
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _lock_shard(self, where: Path) -> None:
        """Take the inter-process lock of ``where`` (raises :class:`_Busy` if another holds it)."""
        fd = os.open(where.parent / f".{where.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            os.close(fd)
            raise _Busy(f"{where} is locked") from err
        except BaseException:
            os.close(fd)
            raise
        self._locks[where] = fd

    def _unlock_shard(self, where: Path) -> None:
        fd = self._locks.pop(where, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock

    def _start_reaper(self) -> None:
        if self.release_after_s is None or self._reaper is not None:
            return
        self._reaper = threading.Thread(
            target=self._reap, name=f"marc-edge-release:{self.path.name}", daemon=True
        )
        self._reaper.start()

    def _reap(self) -> None:
        """Background thread: close shards idle for ``release_after_s`` seconds."""
        idle = float(self.release_after_s or 0)
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                for name in [n for n, t in self._last_used.items() if now - t >= idle]:
                    # A failed release is reported by the next operation, which reopens the shard.
                    with contextlib.suppress(StoreError):
                        self._release(name)
                due = [t + idle - now for n, t in self._last_used.items() if n in self._shards]
                self._wake.wait(timeout=max(min(due, default=idle), 0.01))

    def _release(self, name: str) -> None:
        """Flush and close ``name``'s shard, if open (caller holds the lock)."""
        self._last_used.pop(name, None)
        shard = self._shards.get(name)
        if shard is None:
            return
        try:
            with self._backend(self._dir(name)):
                shard.flush()
                shard.close()
        finally:
            del self._shards[name]
            self._unlock_shard(self._dir(name))

    # ------------------------------------------------------------------------ collections
    def ensure_collection(self, name: str, dim: int) -> None:
        if not (isinstance(dim, int) and dim > 0):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        with self._lock:
            self._ensure(name, dim)

    def _ensure(self, name: str, dim: int) -> None:
        where = self._dir(name)
        meta = self._meta(name)
        if meta is not None and meta.get("dim") != dim:
            raise StoreError(f"{where}: collection has dimension {meta.get('dim')}, not {dim}")
        if self._closed:
            raise StoreError(f"{self.location}: the vector store is closed")
        if meta is None and name not in self._shards:
            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                hnsw_config=qe.HnswIndexConfig(
                    m=HNSW_M,
                    ef_construct=HNSW_EF_CONSTRUCT,
                    full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
                ),
                quantization_config=(
                    qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True)
                    if self.quantize
                    else None
                ),
            )
            with self._backend(where):
                if not where.is_dir():  # also after a crash before META_FILE
                    self._create_shard(where, config)
            self._shards[name] = self._load(where, config)  # checks the dimension
            self._start_reaper()
        with self._use(name) as shard:
            have = shard.info().payload_schema
            missing = [f for f in INDEXED_FIELDS if f not in have]
            for field in missing:
                shard.update(
                    qe.UpdateOperation.create_field_index(field, _SCHEMA[INDEXED_FIELDS[field]])
                )
            if missing:
                shard.flush()
        if meta is None:
            self._write_meta(name, dim)
        self._dims[name] = dim

    @staticmethod
    def _create_shard(where: Path, config: qe.EdgeConfig) -> None:
        """Create an empty shard at ``where`` atomically: built beside it, then renamed.

        A ``kill -9`` during creation leaves only a ``*.creating-<pid>`` folder, which the next
        creation removes, never a half-made shard that would fail to load. Two processes creating
        the same shard at once each build their own; the first rename wins.
        """
        where.parent.mkdir(parents=True, exist_ok=True)
        for stale in where.parent.glob(f"{where.name}.creating-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if not (pid.isdigit() and pid_alive(int(pid))):
                shutil.rmtree(stale, ignore_errors=True)
        # Qdrant Edge maps its write-ahead log and segments as files it then writes through the
        # mapping: on a disk without room for them, a write is a SIGBUS, not an error.
        free = shutil.disk_usage(where.parent).free
        if free < SHARD_FREE_BYTES:
            raise StoreError(
                f"{where.parent}: a new vector collection needs {SHARD_FREE_BYTES >> 20} MiB free "
                f"on its disk (Qdrant Edge maps its write-ahead log), {free / 2**20:.1f} MiB is "
                "free; free some space or set MARC_HOME to a larger disk"
            )
        tmp = where.with_name(f"{where.name}.creating-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        shard = qe.EdgeShard.create(str(tmp), config)
        shard.flush()
        shard.close()
        try:
            os.rename(tmp, where)
        except OSError:  # another process created it first
            shutil.rmtree(tmp, ignore_errors=True)
            if not where.is_dir():
                raise

    def collections(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(d.name for d in self.path.iterdir() if (d / META_FILE).is_file())

    def dim(self, name: str) -> int:
        if name not in self._dims:
            meta = self._meta(name)
            if meta is None:
                raise StoreError(
                    f"{self._dir(name)}: no such collection (ingest some videos first)"
                )
            self._dims[name] = int(meta["dim"])
        return self._dims[name]

    # ----------------------------------------------------------------------------- writes
    def _upsert(self, name: str, points: Sequence[EventPoint]) -> None:
        with self._use(name) as shard:
            for i in range(0, len(points), _BATCH):
                batch = [
                    qe.Point(p.id, p.vector.tolist(), p.payload) for p in points[i : i + _BATCH]
                ]
                shard.update(qe.UpdateOperation.upsert_points(batch))
            shard.flush()

    def delete_video(self, name: str, video_id: str) -> None:
        flt = qe.Filter(must=[qe.FieldCondition("video_id", match=qe.MatchValue(video_id))])
        with self._use(name) as shard:
            shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
            shard.flush()

    # ------------------------------------------------------------------------------ reads
    def count(self, name: str, *, exclude_video_ids: Sequence[str] = ()) -> int:
        flt = _edge_filter(EventFilter(exclude_video_ids=tuple(exclude_video_ids)))
        with self._use(name) as shard:
            return shard.count(qe.CountRequest(exact=True, filter=flt))

    def video_ids(self, name: str) -> set[str]:
        found: set[str] = set()
        offset = None
        with self._use(name) as shard:
            while True:
                records, offset = shard.scroll(
                    qe.ScrollRequest(
                        offset=offset,
                        limit=1024,
                        with_payload=qe.PayloadSelector.Include(["video_id"]),
                        with_vector=False,
                    )
                )
                found.update(r.payload["video_id"] for r in records if r.payload)
                if offset is None:
                    return found

    def _video_counts(self, name: str, video_ids: tuple[str, ...] | None) -> dict[str, int]:
        flt = _edge_filter(EventFilter(video_ids=video_ids))
        with self._use(name) as shard:
            if "video_id" not in shard.info().payload_schema:  # a damaged shard lost its index
                return self._scroll_counts(shard, flt)
            limit = len(video_ids) if video_ids else shard.count(qe.CountRequest(exact=True))
            if limit == 0:
                return {}
            hits = shard.facet(qe.FacetRequest(key="video_id", limit=limit, exact=True, filter=flt))
        return {str(h.value): int(h.count) for h in hits.hits}

    @staticmethod
    def _scroll_counts(shard: qe.EdgeShard, flt: qe.Filter | None) -> dict[str, int]:
        """Points per video read point by point (for a shard without its ``video_id`` index)."""
        counts: dict[str, int] = {}
        offset = None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=1024,
                    filter=flt,
                    with_payload=qe.PayloadSelector.Include(["video_id"]),
                    with_vector=False,
                )
            )
            for r in records:
                vid = str((r.payload or {}).get("video_id", ""))
                counts[vid] = counts.get(vid, 0) + 1
            if offset is None:
                return counts

    def _vectors(
        self, name: str, limit: int | None
    ) -> Iterator[tuple[str, Sequence[float] | np.ndarray]]:
        offset, left = None, limit
        while left is None or left > 0:
            page = 256 if left is None else min(256, left)
            with self._use(name) as shard:  # one page at a time: others may use the shard between
                records, offset = shard.scroll(
                    qe.ScrollRequest(
                        offset=offset,
                        limit=page,
                        with_payload=qe.PayloadSelector.Include(["video_id"]),
                        with_vector=True,
                    )
                )
            for r in records:
                vector = r.vector
                if isinstance(vector, dict):  # named vectors: MARC's is the unnamed one
                    vector = vector.get("", next(iter(vector.values()), []))
                yield str((r.payload or {}).get("video_id", "")), vector
            if left is not None:
                left -= len(records)
            if offset is None:
                return

    def quarantine(self, name: str) -> str | None:
        """Rename shard folder ``name`` to ``name.damaged-<UTC time>`` (kept for inspection; delete
        it yourself) so that :meth:`ensure_collection` creates it anew."""
        where = self._dir(name)
        with self._lock:
            with contextlib.suppress(StoreError):
                self._release(name)
            self._dims.pop(name, None)
            if not where.exists():
                return None
            aside = where.with_name(
                f"{name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            os.rename(where, aside)
        return str(aside)

    def _search(self, name: str, vector: np.ndarray, k: int, flt: EventFilter) -> list[ScoredPoint]:
        request = qe.QueryRequest(
            limit=k,
            query=qe.Query.Nearest(vector.tolist()),
            filter=_edge_filter(flt),
            params=qe.SearchParams(
                hnsw_ef=self.hnsw_ef,
                quantization=qe.QuantizationSearchParams(
                    rescore=True, oversampling=self.oversampling
                ),
            ),
            with_payload=True,
            with_vector=False,
        )
        with self._use(name) as shard:
            hits = shard.query(request)
        return [ScoredPoint(str(h.id), float(h.score), dict(h.payload or {})) for h in hits]

    # -------------------------------------------------------------------------- lifecycle
    def optimize(self, name: str) -> None:
        """Build HNSW and merge segments of ``name`` now (Edge has no background optimiser)."""
        with self._use(name) as shard:
            shard.optimize()
            shard.flush()

    def release(self) -> None:
        """Close every open shard now, letting other processes in; later calls reopen them."""
        with self._lock:
            errors = self._release_all()
        if errors:
            raise errors[0]

    def _release_all(self) -> list[StoreError]:
        errors = []
        for name in list(self._shards):
            try:
                self._release(name)
            except StoreError as err:
                errors.append(err)
        return errors

    def close(self) -> None:
        """Flush and close every open shard, releasing their locks. Idempotent."""
        with self._lock:
            errors = self._release_all()
            self._closed = True
            self._wake.notify_all()
        if self._reaper is not None and self._reaper is not threading.current_thread():
            self._reaper.join(timeout=5)
        if errors:
            raise errors[0]
