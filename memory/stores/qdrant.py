"""The Qdrant server store, through ``qdrant-client`` (also its local modes, for tests).

``QdrantStore(url=...)`` talks to a server (``MARC_QDRANT_URL``); ``path=`` and ``location=
":memory:"`` use qdrant-client's in-process local mode, which speaks the same client API (it
ignores payload indexes and searches by brute force, so results are exact). Like qdrant-client's
own constructor, exactly one of ``url``/``path``/``location`` must be given.

Writes use ``wait=True``: when :meth:`QdrantStore.upsert` returns the server has applied the
operation and written it to its WAL. The server serves any number of concurrent clients;
qdrant-client's local ``path`` mode, like Qdrant Edge, allows one opener at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from marc.memory.errors import one_line
from marc.memory.stores.base import (
    INDEXED_FIELDS,
    EventFilter,
    EventPoint,
    ScoredPoint,
    StoreError,
    VectorStore,
)

_BATCH = 256  # points per request (~2.5 MB of JSON at 1024-d)
_PROBE_TIMEOUT_S = 3  # seconds the reachability check at open may take, at most
_SCHEMA = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "datetime": models.PayloadSchemaType.DATETIME,
}


def _qdrant_filter(flt: EventFilter) -> models.Filter | None:
    must: list[models.Condition] = []
    if flt.cameras is not None:
        must.append(
            models.FieldCondition(key="camera", match=models.MatchAny(any=list(flt.cameras)))
        )
    if flt.video_ids is not None:
        must.append(
            models.FieldCondition(key="video_id", match=models.MatchAny(any=list(flt.video_ids)))
        )
    if flt.since is not None:
        must.append(models.FieldCondition(key="end_at", range=models.DatetimeRange(gt=flt.since)))
    if flt.until is not None:
        must.append(models.FieldCondition(key="start_at", range=models.DatetimeRange(lt=flt.until)))
    return models.Filter(must=must) if must else None


class QdrantStore(VectorStore):
    """Collections in a Qdrant server (``url``) or in qdrant-client's local mode.

    Args:
        url: Server URL, e.g. ``http://localhost:6333``; checked at once with a cheap call.
        path: Folder for qdrant-client's persistent local mode.
        location: ``":memory:"`` for qdrant-client's in-memory local mode.
        api_key: The server's API key, if it needs one.
        timeout: Seconds a server request may take.

    Raises:
        ValueError: not exactly one of ``url``, ``path``, ``location``.
        StoreError: the server is unreachable or refuses us, or the local folder is in use.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        path: Path | str | None = None,
        location: str | None = None,
        api_key: str | None = None,
        timeout: int = 10,
    ) -> None:
        given = [x for x in (url, path, location) if x not in (None, "")]
        if len(given) != 1:
            raise ValueError("QdrantStore needs exactly one of url, path or location")
        self.location = str(given[0])
        self.remote = bool(url)
        self._dims: dict[str, int] = {}
        self._closed = False
        if url:
            self._probe(url, api_key)
        with self._backend("open"):
            if url:
                self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout)
            elif path is not None:
                self.client = QdrantClient(path=str(Path(path).expanduser()))
            else:
                self.client = QdrantClient(location=location)

    def _probe(self, url: str, api_key: str | None) -> None:
        """Fail now, in a few seconds, if no Qdrant answers at ``url``."""
        try:
            probe = QdrantClient(
                url=url, api_key=api_key, timeout=_PROBE_TIMEOUT_S, check_compatibility=False
            )
            try:
                probe.get_collections()
            finally:
                probe.close()
        except UnexpectedResponse as err:
            hint = " (check MARC_QDRANT_API_KEY)" if err.status_code in (401, 403) else ""
            raise StoreError(
                f"Qdrant at {url} refused the request: HTTP {err.status_code} "
                f"{err.reason_phrase}{hint}"
            ) from err
        except Exception as err:
            raise StoreError(f"Qdrant at {url} is unreachable: {one_line(err)}") from err

    @contextmanager
    def _backend(self, what: str) -> Iterator[None]:
        """Turn a qdrant-client failure into a one-line :class:`StoreError` naming the store."""
        try:
            yield
        except StoreError:
            raise
        except ResponseHandlingException as err:
            raise StoreError(f"Qdrant at {self.location} is unreachable: {one_line(err)}") from err
        except UnexpectedResponse as err:
            raise StoreError(
                f"Qdrant at {self.location}: {what} failed: HTTP {err.status_code} "
                f"{err.reason_phrase}: {one_line(err)}"
            ) from err
        except Exception as err:
            if isinstance(err, RuntimeError) and "already accessed" in str(err):
                raise StoreError(
                    f"{self.location}: the local Qdrant folder is in use by another client"
                ) from err
            raise StoreError(f"Qdrant at {self.location}: {what} failed: {one_line(err)}") from err

    def _client(self) -> QdrantClient:
        if self._closed:
            raise StoreError(f"Qdrant at {self.location}: the vector store is closed")
        return self.client

    # ------------------------------------------------------------------------ collections
    def ensure_collection(self, name: str, dim: int) -> None:
        self._check_name(name)
        if not (isinstance(dim, int) and dim > 0):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        client = self._client()
        with self._backend(f"creating collection {name}"):
            if not client.collection_exists(name):
                try:
                    client.create_collection(
                        name,
                        vectors_config=models.VectorParams(
                            size=dim, distance=models.Distance.COSINE
                        ),
                    )
                except (UnexpectedResponse, ValueError):  # created meanwhile by another client
                    if not client.collection_exists(name):
                        raise
        have = self.dim(name)
        if have != dim:
            raise StoreError(f"Qdrant at {self.location}: {name} has dimension {have}, not {dim}")
        with self._backend(f"indexing collection {name}"), warnings.catch_warnings():
            # Local mode warns that payload indexes are a no-op there; the server builds them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            schema = client.get_collection(name).payload_schema or {}
            for field, kind in INDEXED_FIELDS.items():
                if field not in schema:
                    client.create_payload_index(name, field, _SCHEMA[kind], wait=True)

    def collections(self) -> list[str]:
        with self._backend("listing collections"):
            return sorted(c.name for c in self._client().get_collections().collections)

    def dim(self, name: str) -> int:
        if name not in self._dims:
            with self._backend(f"reading collection {name}"):
                vectors = self._client().get_collection(name).config.params.vectors
            if not isinstance(vectors, models.VectorParams):
                raise StoreError(f"Qdrant at {self.location}: {name} has named vectors, not MARC's")
            self._dims[name] = vectors.size
        return self._dims[name]

    # ----------------------------------------------------------------------------- writes
    def _upsert(self, name: str, points: Sequence[EventPoint]) -> None:
        client = self._client()
        with self._backend(f"upserting into {name}"):
            for i in range(0, len(points), _BATCH):
                batch = [
                    models.PointStruct(id=p.id, vector=p.vector.tolist(), payload=p.payload)
                    for p in points[i : i + _BATCH]
                ]
                client.upsert(name, points=batch, wait=True)

    def delete_video(self, name: str, video_id: str) -> None:
        flt = models.Filter(
            must=[models.FieldCondition(key="video_id", match=models.MatchValue(value=video_id))]
        )
        with self._backend(f"deleting video {video_id} from {name}"):
            self._client().delete(
                name, points_selector=models.FilterSelector(filter=flt), wait=True
            )

    # ------------------------------------------------------------------------------ reads
    def count(self, name: str) -> int:
        with self._backend(f"counting {name}"):
            return self._client().count(name, exact=True).count

    def video_ids(self, name: str) -> set[str]:
        client = self._client()
        found: set[str] = set()
        offset = None
        with self._backend(f"scrolling {name}"):
            while True:
                records, offset = client.scroll(
                    name, limit=1024, offset=offset, with_payload=["video_id"], with_vectors=False
                )
                found.update(r.payload["video_id"] for r in records if r.payload)
                if offset is None:
                    return found

    def _search(self, name: str, vector: np.ndarray, k: int, flt: EventFilter) -> list[ScoredPoint]:
        with self._backend(f"searching {name}"):
            hits = (
                self._client()
                .query_points(
                    name,
                    query=vector.tolist(),
                    limit=k,
                    query_filter=_qdrant_filter(flt),
                    with_payload=True,
                    with_vectors=False,
                )
                .points
            )
        return [ScoredPoint(str(h.id), float(h.score), dict(h.payload or {})) for h in hits]

    # -------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the client (and a local folder's lock). Idempotent."""
        if not self._closed:
            self._closed = True
            with self._backend("closing"):
                self.client.close()
