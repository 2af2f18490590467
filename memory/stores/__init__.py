"""Vector stores of event embeddings: embedded Qdrant Edge (default) or a Qdrant server."""

from __future__ import annotations

from typing import Any

from marc.memory.core.config import StoreConfig, as_config
from marc.memory.core.locations import client_args
from marc.memory.stores.base import EventFilter, EventPoint, ScoredPoint, StoreError, VectorStore
from marc.memory.stores.edge import EdgeStore
from marc.memory.stores.qdrant import QdrantStore

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


def open_store(config: StoreConfig | Any) -> VectorStore:
    """The store ``config`` names: Qdrant Edge shards under ``config.vectors_path``, unless
    ``config.qdrant_url`` (``MARC_QDRANT_URL``) names a Qdrant server (``http(s)://``) or
    qdrant-client's local mode (``:memory:``, ``file:`` folder); see :func:`client_args`.
    ``config`` may also be a ``Settings`` (its store config is taken).

    Raises:
        StoreError: the server is unreachable, is not Qdrant or refuses the API key, or the
            local folder cannot be opened.
    """
    c = as_config(config, StoreConfig)
    if not c.qdrant_url:
        return EdgeStore(c.vectors_path)
    args = client_args(c.qdrant_url)
    api_key = c.qdrant_api_key if "url" in args else None  # local modes take no key
    return QdrantStore(**args, api_key=api_key)
