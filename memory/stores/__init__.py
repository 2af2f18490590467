"""Vector stores of event embeddings: embedded Qdrant Edge (default) or a Qdrant server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from marc.memory.core.locations import client_args
from marc.memory.stores.base import EventFilter, EventPoint, ScoredPoint, StoreError, VectorStore
from marc.memory.stores.edge import EdgeStore
from marc.memory.stores.qdrant import QdrantStore

if TYPE_CHECKING:
    from marc.memory.core.settings import Settings

__all__ = [
    "EdgeStore",
    "EventFilter",
    "EventPoint",
    "QdrantStore",
    "ScoredPoint",
    "StoreError",
    "VectorStore",
    "client_args",
    "open_store",
]


def open_store(settings: Settings) -> VectorStore:
    """The store ``settings`` name: Qdrant Edge shards under ``settings.vectors_path``, unless
    ``MARC_QDRANT_URL`` names a Qdrant server (``http(s)://``) or qdrant-client's local mode
    (``:memory:``, ``file:`` folder); see :func:`client_args`.

    Raises:
        StoreError: the server is unreachable, is not Qdrant or refuses the API key, or the
            local folder cannot be opened.
    """
    if not settings.qdrant_url:
        return EdgeStore(settings.vectors_path)
    args = client_args(settings.qdrant_url)
    api_key = settings.qdrant_api_key if "url" in args else None  # local modes take no key
    return QdrantStore(**args, api_key=api_key)
