"""MARC's answer path: Qwen2.5-VL's vision tower, the compression layer, and the answer model.

>>> from marc.agent.vlm import answer          # doctest: +SKIP
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

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marc.agent.vlm.answerer import (
        Answer,
        Answerer,
        Prepared,
        Sampled,
        allocate_frames,
        answer,
        load_backend,
    )
    from marc.agent.vlm.backend import Generation, VLMBackend
    from marc.agent.vlm.prompt import EventRef, Visual, VisualPrompt

_LAZY = {
    "Answer": "marc.agent.vlm.answerer",
    "Answerer": "marc.agent.vlm.answerer",
    "allocate_frames": "marc.agent.vlm.answerer",
    "answer": "marc.agent.vlm.answerer",
    "Prepared": "marc.agent.vlm.answerer",
    "Sampled": "marc.agent.vlm.answerer",
    "load_backend": "marc.agent.vlm.answerer",
    "Generation": "marc.agent.vlm.backend",
    "VLMBackend": "marc.agent.vlm.backend",
    "EventRef": "marc.agent.vlm.prompt",
    "Visual": "marc.agent.vlm.prompt",
    "VisualPrompt": "marc.agent.vlm.prompt",
}
__all__ = [
    "Answer",
    "Answerer",
    "EventRef",
    "Generation",
    "Prepared",
    "Sampled",
    "VLMBackend",
    "Visual",
    "VisualPrompt",
    "allocate_frames",
    "answer",
    "load_backend",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
