"""The Visual Memory Retriever: a question (or an example picture) in, the top-k events out.

As in the MARC paper, the query is embedded into the event encoder's space (the text tower for a
question, the image tower for an example frame) and the ``k`` nearest event memories are taken
(``k = 3`` by default). Camera, time and video restrictions are filters *inside* the vector store,
so ``k`` hits come back whenever ``k`` events match.

Only the current encoder's collection is searched, so vectors of different encoders never mix
(``marc reindex`` moves an archive to a new encoder). Only events the catalog has committed are
returned: videos an ingest is still working on are excluded inside the store as well.

>>> retriever = Retriever(Settings(models="tiny"))  # doctest: +SKIP
>>> hits = retriever.search("a white van leaving", cameras=["lot"])  # doctest: +SKIP
>>> [h.to_json() for h in hits]  # doctest: +SKIP
[{'id': '...', 'video': '/footage/lot/2024-01-31_18-00-00.mp4', 'camera': 'lot', ...}]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from marc.memory.core.errors import MediaError, StoreError
from marc.memory.core.events import EventRef, Filters
from marc.memory.core.timeline import Span
from marc.memory.parts import ArchiveParts
from marc.memory.stores import ScoredPoint

__all__ = ["ImageQuery", "Retriever"]

#: What may be searched for: a text (question or description) or an example picture.
ImageQuery = Path | Image.Image | np.ndarray
#: Times a search is redone when an ingest commits or claims a video between the two reads.
_RACE_RETRIES = 5


class Retriever(ArchiveParts):
    """Searches one archive's event memory. Cheap to create; the encoder loads on first search.

    ``Retriever(config, catalog=..., store=..., encoder=...)`` as :class:`ArchiveParts`: parts
    passed in are shared (e.g. an :class:`Archive`'s), the others are opened here.
    """

    # ------------------------------------------------------------------------------ search
    def search(
        self,
        query: str | ImageQuery,
        k: int = 3,
        *,
        filters: Filters | None = None,
        cameras: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        videos: Sequence[str | Path] | None = None,
    ) -> list[EventRef]:
        """The ``k`` events closest to ``query``, best first (each with its ``score``).

        Args:
            query: A text (embedded with the text tower), or an example picture: an image file
                path, a PIL image or an RGB ``uint8 [H, W, 3]`` array (the image tower).
            k: How many events at most.
            filters: Cameras, time window and videos to search in (:class:`Filters`).
            cameras, since, until, videos: shorthand for the same fields of ``filters`` (given
                together with ``filters`` they replace its fields): only these cameras, only
                events that end after / start before these aware datetimes, only these videos
                (file paths or video ids).

        Raises:
            MediaError: the example picture cannot be read.
            StoreError: nothing is embedded with the current encoder, or a store failed.
        """
        f = filters or Filters()
        shorthand = {"cameras": cameras, "since": since, "until": until, "videos": videos}
        if any(v is not None for v in shorthand.values()):
            f = Filters.parse(
                **{n: getattr(f, n) if v is None else v for n, v in shorthand.items()}
            )
        vector = self.embed_query(query)
        self._check_collection()
        video_ids = None if f.videos is None else [self.catalog.video_id_for(v) for v in f.videos]
        exclude = set(self.catalog.uncommitted_video_ids())
        for _ in range(_RACE_RETRIES):
            points = self.store.search(
                self.collection,
                vector,
                k,
                cameras=f.cameras,
                since=f.since,
                until=f.until,
                video_ids=video_ids,
                exclude_video_ids=sorted(exclude),
            )
            hits, unknown = self._resolve(points)
            if not unknown:
                break
            exclude |= unknown  # claimed by an ingest after we looked: not committed, skip it
        if len(hits) < k:
            self._check_missing(hits, k, f)
        return hits

    def embed_query(self, query: str | ImageQuery) -> np.ndarray:
        """``float32 [dim]`` unit vector of a text or an example picture."""
        if isinstance(query, str):
            if not query.strip():
                raise ValueError("the search text is empty")
            return self.encoder.embed_texts([query])[0]
        return self.encoder.embed_images(self.encoder.prepare([_picture(query)]))[0]

    # ----------------------------------------------------------------------------- helpers
    def _check_collection(self) -> None:
        """Fail clearly when no stored video is embedded by the current encoder."""
        collections = self.catalog.collections()
        if self.collection in collections and self.collection in self.store.collections():
            return
        if self.collection in collections:  # the catalog has events there, the store lost them
            raise StoreError(
                f"{self.store.location}: the vector store has lost collection {self.collection} "
                "that the catalog's events are in; run `marc repair` to rebuild it from the "
                "video files"
            )
        others = [c for c in collections if c != self.collection]
        if others:
            raise StoreError(
                f"the archive's events are embedded by another encoder ({others[0]}), not "
                f"{self.encoder.name}; run `marc reindex` to search with it"
            )
        raise StoreError(
            f"{self.config.home}: no events stored yet; run `marc ingest` on some videos first"
        )

    def _check_missing(self, hits: list[EventRef], k: int, f: Filters) -> None:
        """Warn when the store returned fewer hits than the catalog has matching events: it has
        lost vectors (one catalog query, only when a search comes back short)."""
        n = len(self.catalog.events(filters=f, limit=k, collection=self.collection))
        if len(hits) < n:
            warnings.warn(
                f"{self.store.location}: the vector store returned {len(hits)} hits where the "
                f"catalog has {n}{' or more' if n == k else ''} matching events; it has lost "
                "vectors (see `marc status`; `marc repair` rebuilds them from the video files)",
                UserWarning,
                stacklevel=3,
            )

    def _resolve(self, points: list[ScoredPoint]) -> tuple[list[EventRef], set[str]]:
        """Hits for ``points`` from the catalog, and the videos of points it has not committed."""
        if not points:
            return [], set()
        known = self.catalog.hits([p.id for p in points])
        hits, unknown = [], set()
        for p in points:
            if p.id not in known:
                unknown.add(str(p.payload.get("video_id", "")))
                continue
            e, v = known[p.id]
            hits.append(
                EventRef(
                    id=e.id,
                    video=v.path,
                    camera=v.camera,
                    span=Span(e.start_s, e.end_s, v.fps),
                    start_at=e.start_at,
                    end_at=e.end_at,
                    score=p.score,
                    video_id=v.id,
                )
            )
        return hits, unknown


def _picture(query: ImageQuery) -> Image.Image | np.ndarray:
    """An example picture as something :meth:`Encoder.prepare` takes; files are opened here."""
    if isinstance(query, Image.Image | np.ndarray):
        return query
    path = Path(query)
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except (UnidentifiedImageError, OSError) as err:
        raise MediaError(path, f"not a readable image ({type(err).__name__})") from err
