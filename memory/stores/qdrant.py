"""The Qdrant server store, through ``qdrant-client`` (also its local modes, for tests).

``QdrantStore(url=...)`` talks to a server (``MARC_QDRANT_URL``); ``path=`` and ``location=
":memory:"`` use qdrant-client's in-process local mode, which speaks the same client API (it
ignores payload indexes and searches by brute force, so results are exact). Like qdrant-client's
own constructor, exactly one of ``url``/``path``/``location`` must be given;
:func:`client_args` maps a ``MARC_QDRANT_URL`` value (``http(s)://``, ``:memory:``, ``file:``) to
that one argument.

Writes use ``wait=True``: when :meth:`QdrantStore.upsert` returns the server has applied the
operation and written it to its WAL. The server serves any number of concurrent clients;
qdrant-client's local ``path`` mode, like Qdrant Edge, allows one opener at a time.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.common.version_check import is_compatible
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from marc.memory.core.errors import one_line
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


def _probe_failure(url: str, err: Exception, api_key: str | None) -> str:
    """One line saying what a failed ``GET /`` or ``GET /collections`` at ``url`` means."""
    not_qdrant, fix_url = "does not look like a Qdrant server", "(check MARC_QDRANT_URL)"
    if isinstance(err, UnexpectedResponse):
        said = f"Qdrant at {url} refused the request: HTTP {err.status_code} {err.reason_phrase}"
        if err.status_code in (401, 403):
            fix = "check MARC_QDRANT_API_KEY" if api_key else "set MARC_QDRANT_API_KEY"
            return f"{said} ({fix})"
        return f"{said}; that {not_qdrant} {fix_url}" if err.status_code == 404 else said
    cause = err.source if isinstance(err, ResponseHandlingException) else err
    if isinstance(cause, httpx.TimeoutException):
        return f"Qdrant at {url} is unreachable: no answer within {_PROBE_TIMEOUT_S} s"
    if isinstance(cause, httpx.ProtocolError):  # a TCP service that does not speak HTTP
        return f"{url} gave no HTTP answer ({one_line(cause, limit=80)}); it {not_qdrant} {fix_url}"
    if isinstance(cause, httpx.TransportError):
        return f"Qdrant at {url} is unreachable: {one_line(cause)}"
    # An answer qdrant-client cannot read: not JSON, or JSON that is not Qdrant's.
    return f"{url} {not_qdrant}: its answers are not Qdrant's JSON {fix_url}"


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
    must_not: list[models.Condition] = []
    if flt.exclude_video_ids:
        must_not.append(
            models.FieldCondition(
                key="video_id", match=models.MatchAny(any=list(flt.exclude_video_ids))
            )
        )
    if not (must or must_not):
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


class QdrantStore(VectorStore):
    """Collections in a Qdrant server (``url``) or in qdrant-client's local mode.

    Args:
        url: Server URL, e.g. ``http://localhost:6333``; checked at once (``GET /collections``,
            ``GET /``), so a wrong URL or key fails here, in seconds, with one line.
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
            if url:  # _probe checked the version, in the foreground (not in a thread, later)
                self.client = QdrantClient(
                    url=url, api_key=api_key, timeout=timeout, check_compatibility=False
                )
            elif path is not None:
                self.client = QdrantClient(path=str(Path(path).expanduser()))
            else:
                self.client = QdrantClient(location=location)

    def _probe(self, url: str, api_key: str | None) -> None:
        """Fail now, in a few seconds, unless a Qdrant server at ``url`` lists its collections.

        Warns (once, like qdrant-client) when the server's version is too far from the client's.
        """
        try:
            with warnings.catch_warnings():
                # The client opened after the probe gives this warning; once is enough.
                warnings.filterwarnings("ignore", message="Api key is used with an insecure")
                probe = QdrantClient(
                    url=url, api_key=api_key, timeout=_PROBE_TIMEOUT_S, check_compatibility=False
                )
            try:
                probe.get_collections()  # is it Qdrant, and does it take our API key?
                server_version = probe.info().version  # GET /
            finally:
                probe.close()
        except Exception as err:
            raise StoreError(_probe_failure(url, err, api_key)) from err
        client_version = importlib.metadata.version("qdrant-client")
        if not is_compatible(client_version, server_version):
            warnings.warn(
                f"Qdrant at {url} is version {server_version}, qdrant-client {client_version}: "
                "major versions should match and minor ones differ by 1 at most",
                UserWarning,
                stacklevel=4,
            )

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
    def count(self, name: str, *, exclude_video_ids: Sequence[str] = ()) -> int:
        flt = _qdrant_filter(EventFilter(exclude_video_ids=tuple(exclude_video_ids)))
        with self._backend(f"counting {name}"):
            return self._client().count(name, count_filter=flt, exact=True).count

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

    def _video_counts(self, name: str, video_ids: tuple[str, ...] | None) -> dict[str, int]:
        flt = _qdrant_filter(EventFilter(video_ids=video_ids))
        client = self._client()
        with self._backend(f"counting videos in {name}"):
            limit = len(video_ids) if video_ids else client.count(name, exact=True).count
            if limit == 0:
                return {}
            hits = client.facet(name, key="video_id", facet_filter=flt, limit=limit, exact=True)
        return {str(h.value): int(h.count) for h in hits.hits}

    def _vectors(
        self, name: str, limit: int | None
    ) -> Iterator[tuple[str, Sequence[float] | np.ndarray]]:
        client = self._client()
        offset, left = None, limit
        while left is None or left > 0:
            page = 256 if left is None else min(256, left)
            with self._backend(f"scrolling {name}"):
                records, offset = client.scroll(
                    name, limit=page, offset=offset, with_payload=["video_id"], with_vectors=True
                )
            for r in records:
                yield str((r.payload or {}).get("video_id", "")), r.vector  # type: ignore[misc]
            if left is not None:
                left -= len(records)
            if offset is None:
                return

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
