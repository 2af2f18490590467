"""What the ingest, reindex and retrieval jobs share: a config, a catalog, a store, an encoder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from marc.memory.catalog import Catalog
from marc.memory.core.config import MemoryConfig, as_config
from marc.memory.encoders import Encoder, load_encoder
from marc.memory.media import Decoded, VideoInfo, decode
from marc.memory.stores import VectorStore, open_store


class ArchiveParts:
    """An archive's catalog, vector store and event encoder, configured by ``config``.

    ``config`` is a :class:`MemoryConfig` (or a ``Settings``, whose ``memory`` is taken);
    ``None``: the config's defaults (never the environment). Parts passed in are shared (e.g. an
    :class:`~marc.memory.archive.Archive`'s) and stay open on :meth:`close`; parts opened here
    are closed by it. The encoder loads on first use.
    """

    def __init__(
        self,
        config: MemoryConfig | Any = None,
        *,
        catalog: Catalog | None = None,
        store: VectorStore | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        self.config = as_config(config, MemoryConfig)
        self._owned: list[Catalog | VectorStore] = []
        if catalog is None:
            catalog = Catalog(self.config.store.catalog_url)
            self._owned.append(catalog)
        if store is None:
            store = open_store(self.config.store)
            self._owned.append(store)
        self.catalog, self.store = catalog, store
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.config.encoder)
        return self._encoder

    @property
    def collection(self) -> str:
        """The current encoder's collection: where its vectors go, the only one searched."""
        return self.store.collection_name(self.encoder.name, self.encoder.dim)

    @property
    def tmp_dir(self) -> Path:
        """Where decodes of long videos spill frames (``MARC_HOME/tmp``)."""
        return self.config.store.home / "tmp"

    def decode_for_encoder(
        self,
        path: Path | str,
        info: VideoInfo,
        on_small: Callable[[np.ndarray], None] | None = None,
    ) -> Decoded:
        """Decode ``path`` once into the encoder's input frames (its size, resize mode and
        interpolation) at the encoder config's ``sample_fps``, plus the small frames segmentation
        reads (handed to ``on_small`` as they are decoded, if given; see :func:`decode`)."""
        enc = self.encoder
        return decode(
            path,
            image_size=enc.image_size,
            sample_fps=self.config.encoder.sample_fps,
            info=info,
            tmp_dir=self.tmp_dir,
            resize_mode=enc.resize_mode,
            interpolation=enc.interpolation,
            on_small=on_small,
        )

    def close(self) -> None:
        """Close the catalog and store opened here (not shared ones)."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
