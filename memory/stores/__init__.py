"""Vector stores of event embeddings: embedded Qdrant Edge (default) or a Qdrant server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from marc.memory.stores.base import EventFilter, EventPoint, ScoredPoint, StoreError, VectorStore
from marc.memory.stores.edge import EdgeStore
from marc.memory.stores.qdrant import QdrantStore

if TYPE_CHECKING:
    from marc.memory.settings import Settings

__all__ = [
    "EdgeStore",
    "EventFilter",
    "EventPoint",
    "QdrantStore",
    "ScoredPoint",
    "StoreError",
    "VectorStore",
    "open_store",
]


def open_store(settings: Settings) -> VectorStore:
    """The store ``settings`` name: the server at ``MARC_QDRANT_URL`` if set, else Qdrant Edge
    shards under ``settings.vectors_path``.

    Raises:
        StoreError: the server is unreachable or refuses the API key.
    """
    if settings.qdrant_url:
        return QdrantStore(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
    return EdgeStore(settings.vectors_path)
