"""The VLM backend interface: a :class:`VisualPrompt` in, generated text out.

Two implementations, one per file: :mod:`.transformers_backend` (in-process, CPU or GPU, the
default) and :mod:`.vllm_backend` (an OpenAI-compatible ``vllm serve`` of the student, the visual
rows sent as image embeddings). Both receive the same prompt, built by :mod:`.prompt`, so the
choice of backend never changes what the model sees.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from marc.compression.vlm.prompt import VisualPrompt

__all__ = ["Generation", "VLMBackend"]


@dataclass
class Generation:
    """One completion and what it cost.

    Attributes:
        text: the generated text (special tokens removed).
        prompt_tokens: tokens of the prompt as the language model saw it (text + visual).
        completion_tokens: generated tokens.
        seconds: wall time of the request (prefill + generation).
        prefill_s: time to the first generated token, where the backend can tell (else None).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    prefill_s: float | None = None


class VLMBackend(ABC):
    """Generates an answer from a :class:`VisualPrompt`. Backends hold their model or connection."""

    #: Short name used in settings (``MARC_VLM_BACKEND``) and reports.
    name: str = ""

    @abstractmethod
    def generate(
        self,
        prompt: VisualPrompt,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> Generation:
        """Answer ``prompt``. ``temperature == 0`` is greedy decoding.

        Raises:
            ModelError: the model cannot run the prompt or the server is unreachable / refuses
                it; the message is one line naming the model or URL and what to do.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model or connection."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
