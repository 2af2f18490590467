"""The vector store interface: event points in, scored event points out.

Every event memory is one point: its embedding (``float32 [dim]``, cosine distance) and a payload
naming the event (``event_id``, ``video_id``, ``camera``, ``start_s``/``end_s`` seconds into the
video, ``start_at``/``end_at`` absolute ISO-8601 times with a UTC offset). Two implementations sit
behind :class:`VectorStore`: :class:`~marc.memory.stores.edge.EdgeStore` (embedded Qdrant Edge,
the default) and :class:`~marc.memory.stores.qdrant.QdrantStore` (a Qdrant server, or
qdrant-client's local mode). Both index ``camera``, ``video_id`` (keyword) and ``start_at``,
``end_at`` (datetime), and apply every search filter inside Qdrant.

The public methods here validate their arguments once, for both backends, and then call the
backend's ``_upsert`` / ``_search``; backend failures surface as :class:`StoreError`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np

from marc.memory.core.errors import StoreError

__all__ = [
    "INDEXED_FIELDS",
    "PAYLOAD_KEYS",
    "EventFilter",
    "EventPoint",
    "ScoredPoint",
    "VectorCheck",
    "StoreError",
    "VectorStore",
]

#: Keys every event payload carries.
PAYLOAD_KEYS = ("event_id", "video_id", "camera", "start_s", "end_s", "start_at", "end_at")
#: Payload indexes each collection gets: field -> ``keyword`` | ``datetime``.
INDEXED_FIELDS = {
    "camera": "keyword",
    "video_id": "keyword",
    "start_at": "datetime",
    "end_at": "datetime",
}
#: How far a stored cosine vector's norm may be from 1 (Qdrant normalises them when stored).
NORM_TOLERANCE = 1e-3
#: How far a cosine score may leave [-1, 1] from float rounding (it is clipped back into it).
SCORE_TOLERANCE = 1e-3
#: Collection names: what Qdrant and a file system both accept.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def _aware(text: str, key: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"payload {key}={text!r} is not an ISO-8601 time") from None
    if t.tzinfo is None:
        raise ValueError(f"payload {key}={text!r} has no UTC offset; write e.g. '...+00:00'")
    return t


@dataclass(frozen=True, eq=False)  # eq=False: an ndarray field has no boolean ``==``
class EventPoint:
    """One event memory as the store keeps it.

    Attributes:
        id: The event id, a canonical UUID string (``str(uuid.UUID(...))``); upstream derives it
            deterministically, so re-ingesting overwrites instead of duplicating.
        vector: ``float32 [dim]`` embedding; any non-zero vector (cosine distance normalises it).
        payload: ``PAYLOAD_KEYS``; ``payload["event_id"] == id``; times as ISO-8601 strings with
            an offset, e.g. ``"2024-01-31T23:59:59+00:00"``. Extra keys are stored as given.
    """

    id: str
    vector: np.ndarray
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(self.id))
        except (TypeError, ValueError, AttributeError):
            raise ValueError(f"event id {self.id!r} is not a UUID string") from None
        if canonical != self.id:
            raise ValueError(f"event id {self.id!r} is not canonical; use {canonical!r}")
        vector = np.asarray(self.vector, dtype=np.float32)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError(f"event {self.id}: vector must be 1-D, got shape {vector.shape}")
        missing = [k for k in PAYLOAD_KEYS if k not in self.payload]
        if missing:
            raise ValueError(f"event {self.id}: payload lacks {', '.join(missing)}")
        if self.payload["event_id"] != self.id:
            raise ValueError(f"event {self.id}: payload event_id is {self.payload['event_id']!r}")
        for key in ("start_at", "end_at"):
            _aware(self.payload[key], key)
        payload = dict(self.payload)  # plain floats: numpy scalars do not serialise to Qdrant
        payload["start_s"], payload["end_s"] = float(payload["start_s"]), float(payload["end_s"])
        object.__setattr__(self, "vector", vector)
        object.__setattr__(self, "payload", payload)


@dataclass(frozen=True)
class ScoredPoint:
    """A search hit: the event id, its cosine similarity to the query, and its payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass
class VectorCheck:
    """What :meth:`VectorStore.check_vectors` found: how many points it read, and per video the
    points whose vector is not a finite unit vector (a damaged store: searches would score them
    outside [-1, 1])."""

    checked: int = 0
    bad: dict[str, int] = field(default_factory=dict)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


def _bad_vector(vector: Sequence[float] | np.ndarray) -> bool:
    """Whether a stored cosine vector is damaged: not finite, or not of unit length."""
    v = np.asarray(vector, dtype=np.float64)
    if v.ndim != 1 or not np.all(np.isfinite(v)):
        return True
    return abs(float(np.linalg.norm(v)) - 1.0) > NORM_TOLERANCE


@dataclass(frozen=True)
class EventFilter:
    """Search restrictions, normalised; backends translate it into one Qdrant filter.

    ``None`` means "no restriction". Time: an event ``[start_at, end_at)`` matches a window
    ``[since, until)`` when they overlap, i.e. ``end_at > since`` and ``start_at < until``.
    """

    cameras: tuple[str, ...] | None = None
    video_ids: tuple[str, ...] | None = None
    since: str | None = None  # ISO-8601 UTC
    until: str | None = None
    #: Videos whose events never match (e.g. videos still being ingested).
    exclude_video_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether nothing can match (an empty camera or video list)."""
        return self.cameras == () or self.video_ids == ()


def _names(values: Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of strings, not the string {values!r}")
    return tuple(str(v) for v in values)


def _utc(t: datetime | None, what: str) -> datetime | None:
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValueError(f"{what}={t.isoformat()} has no timezone; pass an aware datetime")
    return t.astimezone(UTC)


class VectorStore(ABC):
    """Where event embeddings live. Use as a context manager, or call :meth:`close`."""

    #: Where the data lives (a folder or a URL); every :class:`StoreError` names it.
    location: str

    # ----------------------------------------------------------------------------- naming
    @staticmethod
    def collection_name(encoder_name: str, dim: int) -> str:
        """The collection holding events embedded by ``encoder_name`` into ``dim`` dimensions.

        The encoder name is lower-cased and reduced to ``[a-z0-9-]``; when that changes it, eight
        hex digits of its SHA-256 keep different encoders apart.

        >>> VectorStore.collection_name("tiny", 64)
        'events__tiny__64'
        >>> VectorStore.collection_name("hf-hub:timm/PE-Core-B-16", 1024)
        'events__hf-hub-timm-pe-core-b-16-820d2f40__1024'
        """
        if not encoder_name:
            raise ValueError("encoder_name must not be empty")
        if not (isinstance(dim, int) and dim > 0):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        slug = re.sub(r"[^a-z0-9]+", "-", encoder_name.lower()).strip("-")[:64] or "encoder"
        if slug != encoder_name:
            slug = f"{slug}-{hashlib.sha256(encoder_name.encode()).hexdigest()[:8]}"
        return f"events__{slug}__{dim}"

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"collection name {name!r} must match {_NAME_RE.pattern}")

    # ------------------------------------------------------------------------ collections
    @abstractmethod
    def ensure_collection(self, name: str, dim: int) -> None:
        """Create collection ``name`` (cosine, ``dim``, payload indexes) unless it exists.

        Raises:
            StoreError: it exists with another dimension, or the backend failed.
        """

    @abstractmethod
    def collections(self) -> list[str]:
        """Names of the collections in this store, sorted."""

    @abstractmethod
    def dim(self, name: str) -> int:
        """Vector dimension of collection ``name`` (``StoreError`` if it does not exist)."""

    # ----------------------------------------------------------------------------- writes
    def upsert(self, name: str, points: Sequence[EventPoint]) -> None:
        """Insert or overwrite ``points`` by id. Durable when it returns (survives ``kill -9``).

        Raises:
            ValueError: a vector's length is not the collection's dimension, or it is zero.
        """
        if not points:
            return
        dim = self.dim(name)
        for p in points:
            if p.vector.shape != (dim,):
                raise ValueError(
                    f"event {p.id}: vector has shape {p.vector.shape}, {name} is {dim}"
                )
        norms = np.linalg.norm(np.stack([p.vector for p in points]), axis=1)  # [N]
        if not np.all(np.isfinite(norms) & (norms > 0)):
            bad = points[int(np.argmin(np.isfinite(norms) & (norms > 0)))]
            raise ValueError(f"event {bad.id}: vector is zero or not finite")
        self._upsert(name, points)

    @abstractmethod
    def _upsert(self, name: str, points: Sequence[EventPoint]) -> None: ...

    @abstractmethod
    def delete_video(self, name: str, video_id: str) -> None:
        """Delete every point of ``video_id`` (durably); nothing happens if it has none."""

    # ------------------------------------------------------------------------------ reads
    @abstractmethod
    def count(self, name: str, *, exclude_video_ids: Sequence[str] = ()) -> int:
        """Exact number of points in collection ``name``, not counting those of the videos
        ``exclude_video_ids``."""

    @abstractmethod
    def video_ids(self, name: str) -> set[str]:
        """Distinct ``video_id`` payload values in collection ``name``."""

    def video_counts(self, name: str, video_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Exact number of points per ``video_id`` in collection ``name`` (of every video, or of
        ``video_ids`` only); videos without points are left out. One request: a facet on the
        indexed ``video_id`` payload, which reads the index, not the points."""
        ids = _names(video_ids, "video_ids")
        if ids == ():
            return {}
        return self._video_counts(name, ids)

    @abstractmethod
    def _video_counts(self, name: str, video_ids: tuple[str, ...] | None) -> dict[str, int]: ...

    def check_vectors(self, name: str, *, limit: int | None = None) -> VectorCheck:
        """Read the stored vectors of ``name`` (all, or the first ``limit`` by id: ids are
        hashes, so that is a sample spread over the whole store) and count, per video, those
        that are not finite unit vectors. Qdrant stores cosine vectors normalised, so any other
        vector is damage (e.g. overwritten storage files)."""
        check = VectorCheck()
        for vid, vector in self._vectors(name, limit):
            check.checked += 1
            if _bad_vector(vector):
                check.bad[vid] = check.bad.get(vid, 0) + 1
        return check

    @abstractmethod
    def _vectors(
        self, name: str, limit: int | None
    ) -> Iterator[tuple[str, Sequence[float] | np.ndarray]]:
        """``(video_id, vector)`` of the points of ``name`` in id order (the first ``limit``)."""

    def quarantine(self, name: str) -> str | None:
        """Set an unreadable collection aside so that it can be created anew; where it went, or
        ``None`` when this backend cannot (then nothing changed)."""
        return None

    def search(
        self,
        name: str,
        vector: np.ndarray,
        k: int = 3,
        *,
        cameras: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        video_ids: Sequence[str] | None = None,
        exclude_video_ids: Sequence[str] = (),
    ) -> list[ScoredPoint]:
        """The ``k`` events most similar to ``vector`` (``float32 [dim]``), best first.

        Filters run inside Qdrant, so ``k`` hits come back whenever ``k`` events match.

        Args:
            name: Collection to search.
            vector: Query embedding, ``[dim]``.
            k: How many hits at most.
            cameras: Only events of these cameras (``None``: any; empty: none).
            since: Only events ending after this aware datetime.
            until: Only events starting before this aware datetime.
            video_ids: Only events of these videos (``None``: any; empty: none).
            exclude_video_ids: Never events of these videos.
        """
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = np.asarray(vector, dtype=np.float32)
        dim = self.dim(name)
        if q.shape != (dim,):
            raise ValueError(f"query vector has shape {q.shape}, collection {name} is {dim}")
        if not (np.all(np.isfinite(q)) and np.any(q)):
            raise ValueError("query vector is zero or not finite")
        lo, hi = _utc(since, "since"), _utc(until, "until")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"since ({lo.isoformat()}) is after until ({hi.isoformat()})")
        flt = EventFilter(
            cameras=_names(cameras, "cameras"),
            video_ids=_names(video_ids, "video_ids"),
            since=lo.isoformat() if lo else None,
            until=hi.isoformat() if hi else None,
            exclude_video_ids=_names(exclude_video_ids, "exclude_video_ids") or (),
        )
        if flt.empty:
            return []
        hits = [self._checked(name, h) for h in self._search(name, q, k, flt)]
        return sorted(hits, key=lambda h: -h.score)

    def _checked(self, name: str, hit: ScoredPoint) -> ScoredPoint:
        """``hit`` with its cosine score clipped into [-1, 1] (float rounding); a score further
        out can only come from a damaged stored vector: :class:`StoreError`."""
        s = hit.score
        if not (np.isfinite(s) and abs(s) <= 1 + SCORE_TOLERANCE):
            raise StoreError(
                f"{self.location}: collection {name} is damaged: event {hit.id} scored {s:.3g}, "
                "not a cosine in [-1, 1]; run `marc repair` to rebuild it from the video files"
            )
        if abs(s) > 1:
            return ScoredPoint(hit.id, float(np.clip(s, -1.0, 1.0)), hit.payload)
        return hit

    @abstractmethod
    def _search(
        self, name: str, vector: np.ndarray, k: int, flt: EventFilter
    ) -> list[ScoredPoint]: ...

    # -------------------------------------------------------------------------- lifecycle
    def optimize(self, name: str) -> None:
        """Build the vector (HNSW) index of ``name`` now, if the backend does not do it itself.

        A no-op by default: a Qdrant server optimises in the background.
        """
        return None

    @abstractmethod
    def close(self) -> None:
        """Flush and release the store; further calls raise :class:`StoreError`."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"
