"""The embedded vector store: one Qdrant Edge shard per collection, in ``<path>/<collection>/``.

Facts about ``qdrant-edge-py`` 0.9.0 this module relies on (checked by ``tests/test_stores.py``):

* **Durability.** ``EdgeShard.update`` appends the operation to the shard's write-ahead log (an
  mmap'ed file under ``wal/``) before applying it, so it survives ``kill -9`` as soon as
  ``update`` returns; it does not ``fsync``. ``EdgeShard.flush()`` syncs the WAL and the segments
  (about 15 ms for 500 x 1024-d points), which also covers an OS crash or power loss. This store
  calls ``flush()`` at the end of every :meth:`EdgeStore.upsert` and :meth:`EdgeStore.delete_video`.
* **Concurrency.** A shard takes an exclusive, non-blocking lock on its WAL when opened; a second
  ``EdgeShard.load`` of the same folder -- from another process *or the same one* -- fails with
  ``WouldBlock`` until the first is closed (a killed process's lock goes with it). So one process
  at a time uses a collection, and within it one :class:`EdgeStore`; a second opener gets a
  :class:`StoreError` saying the shard is in use, and nothing is corrupted. Use the Qdrant server
  (``MARC_QDRANT_URL``) for concurrent readers and writers.
* **Datetime.** Edge has ``PayloadSchemaType.Datetime`` indexes and ``RangeDateTime`` filters on
  RFC 3339 strings with microseconds and any UTC offset, so ``start_at``/``end_at`` are filtered
  as datetimes, exactly as on the server.
* **Indexing.** Edge runs no background optimiser: points stay in a plain (exact, brute-force)
  segment until ``EdgeShard.optimize()`` builds HNSW (seconds per ten thousand 1024-d vectors;
  a no-op below the indexing threshold). Call :meth:`EdgeStore.optimize` after a large ingest.
* Point ids are UUIDs (returned as :class:`uuid.UUID`); errors are bare ``Exception`` whose text
  starts with ``Service runtime error:``; ``edge_config.json`` persists the vector config. A
  float payload value may come back one ulp off (``1022.3133854074423`` -> ``...424``).

In each shard folder this store also writes ``marc-collection.json`` (``{"dim": ..., "distance":
"cosine"}``): the marker :meth:`EdgeStore.collections` lists, and the dimension it checks.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from marc.memory.errors import one_line
from marc.memory.stores.base import (
    INDEXED_FIELDS,
    EventFilter,
    EventPoint,
    ScoredPoint,
    StoreError,
    VectorStore,
)

META_FILE = "marc-collection.json"
_BATCH = 512  # points per WAL record
_SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "datetime": qe.PayloadSchemaType.Datetime}


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
    return qe.Filter(must=must) if must else None


class EdgeStore(VectorStore):
    """Collections as Qdrant Edge shard folders under ``path``, opened lazily and kept open.

    Args:
        path: Folder holding one sub-folder per collection (created when needed).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, int] = {}
        self._closed = False
        self._lock = threading.RLock()  # one load per shard: a second would hit the WAL lock

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
                text = (
                    "the vector shard is in use by another process or store (Qdrant Edge allows "
                    "one opener at a time); stop it, or set MARC_QDRANT_URL to share a server"
                )
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

    def _shard(self, name: str) -> qe.EdgeShard:
        with self._lock:
            return self._open(name)

    def _open(self, name: str) -> qe.EdgeShard:
        if self._closed:
            raise StoreError(f"{self.location}: the vector store is closed")
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        where = self._dir(name)
        if self._meta(name) is None:
            raise StoreError(f"{where}: no such collection (ingest some videos first)")
        with self._backend(where):
            shard = qe.EdgeShard.load(str(where))
        self._shards[name] = shard
        return shard

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
        shard = self._shards.get(name)
        if shard is None:
            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
            )
            with self._backend(where):
                if not where.is_dir():  # also after a crash before META_FILE
                    self._create_shard(where, config)
                shard = qe.EdgeShard.load(str(where), config)  # checks the dimension
            self._shards[name] = shard
        with self._backend(where):
            have = shard.info().payload_schema
            for field, kind in INDEXED_FIELDS.items():
                if field not in have:
                    shard.update(qe.UpdateOperation.create_field_index(field, _SCHEMA[kind]))
            shard.flush()
        if meta is None:
            self._write_meta(name, dim)
        self._dims[name] = dim

    @staticmethod
    def _create_shard(where: Path, config: qe.EdgeConfig) -> None:
        """Create an empty shard at ``where`` atomically: built beside it, then renamed.

        A ``kill -9`` during creation leaves only a ``*.creating-<pid>`` folder, which the next
        creation removes, never a half-made shard that would fail to load.
        """
        where.parent.mkdir(parents=True, exist_ok=True)
        for stale in where.parent.glob(f"{where.name}.creating-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = where.with_name(f"{where.name}.creating-{os.getpid()}")
        tmp.mkdir()
        shard = qe.EdgeShard.create(str(tmp), config)
        shard.flush()
        shard.close()
        os.rename(tmp, where)

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
        shard = self._shard(name)
        with self._backend(self._dir(name)):
            for i in range(0, len(points), _BATCH):
                batch = [
                    qe.Point(p.id, p.vector.tolist(), p.payload) for p in points[i : i + _BATCH]
                ]
                shard.update(qe.UpdateOperation.upsert_points(batch))
            shard.flush()

    def delete_video(self, name: str, video_id: str) -> None:
        shard = self._shard(name)
        flt = qe.Filter(must=[qe.FieldCondition("video_id", match=qe.MatchValue(video_id))])
        with self._backend(self._dir(name)):
            shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
            shard.flush()

    # ------------------------------------------------------------------------------ reads
    def count(self, name: str) -> int:
        shard = self._shard(name)
        with self._backend(self._dir(name)):
            return shard.count(qe.CountRequest(exact=True))

    def video_ids(self, name: str) -> set[str]:
        shard = self._shard(name)
        found: set[str] = set()
        offset = None
        with self._backend(self._dir(name)):
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

    def _search(self, name: str, vector: np.ndarray, k: int, flt: EventFilter) -> list[ScoredPoint]:
        shard = self._shard(name)
        request = qe.QueryRequest(
            limit=k,
            query=qe.Query.Nearest(vector.tolist()),
            filter=_edge_filter(flt),
            with_payload=True,
            with_vector=False,
        )
        with self._backend(self._dir(name)):
            hits = shard.query(request)
        return [ScoredPoint(str(h.id), float(h.score), dict(h.payload or {})) for h in hits]

    # -------------------------------------------------------------------------- lifecycle
    def optimize(self, name: str) -> None:
        """Build HNSW and merge segments of ``name`` now (Edge has no background optimiser)."""
        shard = self._shard(name)
        with self._backend(self._dir(name)):
            shard.optimize()
            shard.flush()

    def close(self) -> None:
        """Flush and close every open shard, releasing their locks. Idempotent."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        errors = []
        for name, shard in self._shards.items():
            try:
                with self._backend(self._dir(name)):
                    shard.flush()
                    shard.close()
            except StoreError as err:
                errors.append(err)
        self._shards.clear()
        self._closed = True
        if errors:
            raise errors[0]
