"""Event encoders: frames and texts into one L2-normalised embedding space.

Usage::

    enc = load_encoder(EncoderConfig(model="tiny"))
    frames = enc.prepare(images)  # any-size RGB -> uint8 [N, enc.image_size, enc.image_size, 3]
    vector = enc.embed_event(frames)  # float32 [enc.dim], unit norm
    queries = enc.embed_texts(["a man in a red coat"])  # float32 [1, enc.dim], unit norm

The default model is PE-Core-B/16 from the Hugging Face hub (cached in the config's
``cache_dir``, ``MARC_HOME/models``); ``tiny`` (``MARC_MODELS=tiny``) generates a small
random-weight model of the same family once, offline, and loads it through the same code.
``tiny-wide`` (``MARC_ENCODER=tiny-wide``) picks a second generated model (another seed and
embedding dim) to switch to, e.g. to test ``marc reindex``.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

from marc.memory.core.config import EncoderConfig, as_config, check_device
from marc.memory.encoders.base import Encoder, event_vector, l2_normalize, prepare_images

if TYPE_CHECKING:
    from marc.memory.encoders.pe_core import OpenClipEncoder
    from marc.memory.encoders.tiny import TINY_VARIANTS, ensure_tiny, tiny_name

# torch, open_clip and timm take seconds to import: the model modules load on first use, so
# commands that need no model (``marc status``, an error message) answer at once.
_LAZY = {
    "OpenClipEncoder": "marc.memory.encoders.pe_core",
    "TINY_VARIANTS": "marc.memory.encoders.tiny",
    "ensure_tiny": "marc.memory.encoders.tiny",
    "tiny_name": "marc.memory.encoders.tiny",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        # the tiny module registers its timm architecture: import it before any model loads
        importlib.import_module("marc.memory.encoders.tiny")
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TINY_VARIANTS",
    "Encoder",
    "OpenClipEncoder",
    "ensure_tiny",
    "event_vector",
    "l2_normalize",
    "load_encoder",
    "prepare_images",
    "tiny_name",
]

_loaded: dict[tuple[str, str, int, str], Encoder] = {}
_lock = threading.Lock()


def load_encoder(config: EncoderConfig | Any) -> Encoder:
    """The encoder ``config`` names, loaded once per (model, device, batch size, precision) per
    process. ``config`` may also be a ``Settings`` (its encoder config is taken).

    A ``config.model`` of :data:`TINY_VARIANTS` (``tiny``, ``tiny-wide``) generates (once) and
    loads that tiny model under ``config.cache_dir``; any other id is an open_clip
    ``hf-hub:``/``local-dir:`` id.

    Raises:
        ModelError: the model could not be generated, downloaded or loaded.
    """
    from marc.memory.encoders.pe_core import OpenClipEncoder
    from marc.memory.encoders.tiny import TINY_VARIANTS, ensure_tiny

    c = as_config(config, EncoderConfig)
    check_device(c.device)  # one line when MARC_DEVICE names a device this machine lacks
    model_id = c.model
    if model_id in TINY_VARIANTS:
        model_id = ensure_tiny(c.cache_dir, model_id)
    key = (model_id, c.device, c.batch_size, c.precision)
    with _lock:
        if key not in _loaded:
            _loaded[key] = OpenClipEncoder(
                model_id,
                device=c.device,
                cache_dir=c.cache_dir,
                batch_size=c.batch_size,
                precision=c.precision,
            )
        return _loaded[key]
