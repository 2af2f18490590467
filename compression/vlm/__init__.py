"""MARC's answer path: Qwen2.5-VL's vision tower, the compression layer, and the answer model.

>>> from marc.compression.vlm import answer          # doctest: +SKIP
>>> a = answer("who crossed the lawn?", hits)  # hits = Retriever(...).search(...)
>>> a.text, a.visual_tokens, a.budget_tokens, a.groups

- :mod:`.answerer`: :func:`answer` / :class:`Answerer` (sample, encode, compress, generate).
- :mod:`.prompt`: what a backend is asked (:class:`VisualPrompt`; the one-image ``t = 1`` layout).
- :mod:`.backend`: the backend interface; :mod:`.transformers_backend` (in-process, default) and
  :mod:`.vllm_backend` (an OpenAI-compatible ``vllm serve ... --enable-mm-embeds``).
- :mod:`.vision`: the vision tower as frames -> ``[groups, P, D]`` tokens.
- :mod:`.loading`: hub / local / tiny checkpoints; :mod:`.tiny`: the generated tiny model.

Heavy imports (transformers) happen on first use, so importing this package is cheap.
"""

from __future__ import annotations

from marc.memory.core.lazy import exports

_EXPORTS = {
    "Answer": "marc.compression.vlm.answerer",
    "Answerer": "marc.compression.vlm.answerer",
    "allocate_frames": "marc.compression.vlm.answerer",
    "answer": "marc.compression.vlm.answerer",
    "Prepared": "marc.compression.vlm.answerer",
    "Sampled": "marc.compression.vlm.answerer",
    "load_backend": "marc.compression.vlm.answerer",
    "Generation": "marc.compression.vlm.backend",
    "VLMBackend": "marc.compression.vlm.backend",
    "Visual": "marc.compression.vlm.prompt",
    "VisualPrompt": "marc.compression.vlm.prompt",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
