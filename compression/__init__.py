"""The compression stage: from retrieved events' frames to the answer model's compressed input.

- :func:`compress` (:mod:`.temporal_compression`): the paper's Memory-Aware Temporal Compression
  layer, pure tensor code (torch and the standard library only);
- :mod:`.vlm`: the answer model around it — Qwen2.5-VL's vision tower that makes the tokens, the
  prompt layout of the compressed picture, the transformers and vLLM backends that read it, model
  loading (:class:`Answerer`, :func:`answer`).

Names load on first use (see :mod:`marc.memory.core.lazy`), so importing this package does not
import torch.
"""

from marc.memory.core.lazy import exports

_EXPORTS = {
    "DEFAULT_BUDGET": "marc.compression.temporal_compression",
    "DEFAULT_RATIO": "marc.compression.temporal_compression",
    "DEFAULT_WINDOW": "marc.compression.temporal_compression",
    "Compressed": "marc.compression.temporal_compression",
    "MergeMode": "marc.compression.temporal_compression",
    "compress": "marc.compression.temporal_compression",
    "Answer": "marc.compression.vlm.answerer",
    "Answerer": "marc.compression.vlm.answerer",
    "answer": "marc.compression.vlm.answerer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
