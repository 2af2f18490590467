"""Does the vector store hold what the catalog says it holds? (``marc status``, ``marc repair``)

The catalog is the archive's record: every committed (``done``) video has its events there and
one vector per event in its collection. :func:`check_store` compares the two per video, cheaply:
one facet count per collection (the store's ``video_id`` index, not the points), plus a read of
stored vectors (a sample for ``marc status``, all of them for ``marc repair``): Qdrant keeps
cosine vectors normalised, so a vector that is not a finite unit vector is damage, and would
score a search outside [-1, 1].

A video is *damaged* when its collection is missing or unreadable, holds another number of its
vectors than it has events, or holds a bad vector of it. ``marc ingest`` re-embeds videos whose
vectors are missing; ``marc repair`` re-embeds every damaged video from its file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marc.memory.catalog import Catalog
from marc.memory.core.errors import StoreError
from marc.memory.stores import VectorStore

__all__ = ["STATUS_SAMPLE", "Damage", "StoreHealth", "check_store"]

#: Stored vectors ``marc status`` reads per collection (the first by id: ids are hashes, so a
#: sample spread over the whole store).
STATUS_SAMPLE = 256


@dataclass
class Damage:
    """A committed video whose vectors are not all there, or not all sound."""

    id: str
    path: str
    camera: str
    collection: str | None
    events: int
    vectors: int
    bad_vectors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "video": self.path,
            "camera": self.camera,
            "collection": self.collection,
            "events": self.events,
            "vectors": self.vectors,
            "bad_vectors": self.bad_vectors,
        }


@dataclass
class StoreHealth:
    """What :func:`check_store` found.

    Attributes:
        damaged: Committed videos whose vectors are missing, extra or bad.
        checked_vectors: Stored vectors read and checked.
        bad_vectors: How many of them are not finite unit vectors.
        problems: One line per collection that is missing or cannot be read.
        unreadable: Those collections that exist but cannot be read (``marc repair`` sets them
            aside and rebuilds them).
    """

    damaged: list[Damage] = field(default_factory=list)
    checked_vectors: int = 0
    bad_vectors: int = 0
    problems: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.problems or self.bad_vectors)


def check_store(catalog: Catalog, store: VectorStore, *, sample: int | None) -> StoreHealth:
    """Compare, per committed video, its catalog events with its vectors in its collection.

    Args:
        catalog: The archive's catalog.
        store: Its vector store.
        sample: Vectors to read per collection (``None``: every one).

    Raises:
        StoreError: the catalog failed, or the store cannot even list its collections.
    """
    health = StoreHealth()
    placed = catalog.placed_events()
    by_collection: dict[str | None, list[str]] = {}
    for vid, (coll, *_rest) in placed.items():
        by_collection.setdefault(coll, []).append(vid)
    present = set(store.collections())
    for coll in sorted(by_collection, key=lambda c: c or ""):
        vids = by_collection[coll]
        counts: dict[str, int] = {}
        bad: dict[str, int] = {}
        if coll is None or coll not in present:
            if any(placed[v][1] for v in vids):
                health.problems.append(
                    f"collection {coll} is missing from the vector store "
                    f"({len(vids)} videos' vectors lost); run `marc repair`"
                )
        else:
            try:
                counts = store.video_counts(coll)
                check = store.check_vectors(coll, limit=sample)
            except StoreError as e:
                if "in use by another process" in str(e):
                    raise
                health.problems.append(f"collection {coll} cannot be read: {e}")
                health.unreadable.append(coll)
            else:
                health.checked_vectors += check.checked
                health.bad_vectors += check.bad_total
                bad = check.bad
                if check.bad_total:
                    health.problems.append(
                        f"collection {coll}: {check.bad_total} of {check.checked} vectors read "
                        "are damaged (not unit vectors: searches would score them outside "
                        "[-1, 1]); run `marc repair`"
                    )
        for vid in vids:
            _, events, path, camera = placed[vid]
            have, broken = counts.get(vid, 0), bad.get(vid, 0)
            if have != events or broken:
                health.damaged.append(Damage(vid, path, camera, coll, events, have, broken))
    health.damaged.sort(key=lambda d: d.path)
    return health
