"""What a VLM backend is asked: the chat messages and the visual embeddings that fill them.

A :class:`VisualPrompt` is backend-neutral. Its ``messages`` are OpenAI/transformers-style chat
messages whose content parts are ``{"type": "text", "text": ...}`` and one
``{"type": "image"}`` (compressed input) or one ``{"type": "video"}`` per item (uncompressed
input), in the order of :attr:`VisualPrompt.visuals`. Each :class:`Visual` carries the
**post-merger** rows of Qwen2.5-VL's vision tower for that placeholder and its grid in
**pre-merge patch units** (``rows == t * h * w / merge**2``), exactly what transformers'
``mm_encoder_outputs`` and vLLM's ``image_embeds`` take.

The compressed picture is one image with grid ``t = 1``: ``N`` kept groups of ``P = h*w/4`` rows
are stacked top to bottom into a grid ``[1, N*h, w]``. The merged tokens of an image are laid out
row-major over the ``(h/2, w/2)`` merged grid, so the rows of group ``i`` are exactly rows
``[i*P, (i+1)*P)`` and M-RoPE gives them consecutive heights — one frame's worth of positions for
the paper's one-frame budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from marc.memory.core.events import EventRef
from marc.memory.core.timeline import format_seconds

__all__ = [
    "REASONING_SUFFIX",
    "Visual",
    "VisualPrompt",
    "build_messages",
    "describe_events",
]

#: The Video-R1 / C-GRPO output format the student is trained to follow.
REASONING_SUFFIX = (
    " Think about it inside <think> </think> tags, then give the final answer inside "
    "<answer> </answer> tags."
)


@dataclass
class Visual:
    """One visual placeholder's embeddings.

    Attributes:
        kind: ``"image"`` (``t == 1``, the compressed picture) or ``"video"`` (uncompressed frames).
        embeds: ``[rows, hidden]`` post-merger rows, ``rows == t*h*w // merge**2``.
        grid_thw: ``(t, h, w)`` in pre-merge patch units.
        second_per_grid: seconds of video per temporal group (videos only; M-RoPE time spacing).
    """

    kind: Literal["image", "video"]
    embeds: torch.Tensor
    grid_thw: tuple[int, int, int]
    second_per_grid: float = 1.0
    merge: int = 2

    def __post_init__(self) -> None:
        t, h, w = self.grid_thw
        rows = t * h * w // (self.merge * self.merge)
        assert self.embeds.ndim == 2, f"embeds must be [rows, hidden]: {tuple(self.embeds.shape)}"
        assert self.embeds.shape[0] == rows, f"grid {self.grid_thw} needs {rows} rows"
        assert self.kind == "video" or t == 1, "an image has t == 1"

    @property
    def tokens(self) -> int:
        """Visual tokens this placeholder costs the language model."""
        return int(self.embeds.shape[0])


@dataclass
class VisualPrompt:
    """A question about some events, with its visual input, ready for any backend."""

    messages: list[dict[str, Any]]
    visuals: list[Visual]
    events: list[EventRef] = field(default_factory=list)

    @property
    def visual_tokens(self) -> int:
        return sum(v.tokens for v in self.visuals)


def describe_events(events: list[EventRef]) -> str:
    """One line per event: ``1. lobby.mp4 (camera lobby), 00:01:05.0-00:01:20.0 [wall clock]``.

    >>> from marc.memory.core.timeline import Span
    >>> print(describe_events([EventRef("e", "/x/hall.avi", "hall", Span(0.0, 7.5))]))
    1. hall.avi (camera hall), 00:00:00.0-00:00:07.5
    """
    from pathlib import PurePath

    lines = []
    for i, e in enumerate(events, 1):
        span = f"{format_seconds(e.start_s)}-{format_seconds(e.end_s)}"
        line = f"{i}. {PurePath(e.video).name} (camera {e.camera}), {span}"
        if e.start_at is not None and e.end_at is not None:
            line += f" [{e.start_at.isoformat()} to {e.end_at.isoformat()}]"
        lines.append(line)
    return "\n".join(lines)


def build_messages(
    question: str,
    events: list[EventRef],
    kinds: list[Literal["image", "video"]],
    *,
    groups: int = 1,
    reasoning: bool = False,
    listing: bool = True,
) -> list[dict[str, Any]]:
    """The user message: which events the visual input shows, the placeholders, the question.

    With ``listing=False`` the message is only the placeholders and ``question``, as Video-R1
    asks benchmark questions (``grpo.py`` / ``eval_bench.py``): no archive intro, no file or
    camera names (a camera is a folder name, which can leak labels of datasets stored in
    class-named folders).

    Args:
        question: the user's question.
        events: the events, in the order their frames enter the visual input.
        kinds: one placeholder per visual item (``["image"]`` when compressed).
        groups: frame groups stacked in the compressed picture (for the wording).
        reasoning: ask for the ``<think>``/``<answer>`` format of Video-R1 / C-GRPO students.
        listing: say what the input shows (intro and one line per event); ``False``: only the
            placeholders and the question.
    """
    if not listing:
        parts = [{"type": kind} for kind in kinds]
        text = question + (REASONING_SUFFIX if reasoning else "")
        return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]
    if kinds == ["image"]:
        intro = (
            "The picture below summarises these video segments from a camera archive, in time "
            "order" + (f" ({groups} views stacked top to bottom)" if groups > 1 else "") + ":\n"
        )
    elif kinds:
        intro = "The videos below are these segments from a camera archive, in time order:\n"
    else:  # their files could not be read: what the catalog knows is all there is
        intro = (
            "The footage of these segments from a camera archive could not be read; only their "
            "files and times are known:\n"
        )
    listing = describe_events(events) + "\n"
    content: list[dict[str, Any]] = [{"type": "text", "text": intro + listing}]
    content += [{"type": kind} for kind in kinds]
    content.append({"type": "text", "text": question + (REASONING_SUFFIX if reasoning else "")})
    return [{"role": "user", "content": content}]
