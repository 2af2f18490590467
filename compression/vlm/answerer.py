"""Answer a question from retrieved events: sample frames, encode, compress, generate.

This is MARC's answer path (the paper's Fig. 2 after retrieval):

1. **Sample** the answer config's ``frames`` (``MARC_VLM_FRAMES``: 64, like the paper's teacher)
   frames across the ``k`` events — or, with ``sample_fps > 0`` (``marc train``/``marc eval``'s
   default, 2), qwen-vl-utils' count for the events' footage: 2 per second, at least
   ``min_frames`` (4), at most ``frames`` (:mod:`.sampling`) — split by duration (at least one
   temporal group of 2 frames each), all letterboxed to one size chosen by qwen-vl-utils' bounds
   and ``smart_resize`` for the largest event's video, so every group has ``P`` tokens. Frames
   are the centres of equal bins of each event (qwen-vl-utils picks rounded ``linspace`` frame
   indices; the count and size are the same).
2. **Encode** them with Qwen2.5-VL's own vision tower: ``[T_e/2, P, D]`` per event.
3. **Compress** with :func:`marc.compression.compress` (window merges inside each event, then
   across events; the compression config's ``window`` and ``ratio``) down to ``budget`` groups:
   the compression config's (one frame's worth of tokens by default), or a call's own.
4. **Generate**: the kept groups go to the language model as one image with grid ``t = 1``
   (:mod:`.prompt`), through the configured backend. ``budget=None`` skips step 3 and sends every
   event as a video instead (the uncompressed teacher input, for comparisons).

The events are put in time order for steps 1-4 (search returns them by score).
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from marc.compression import compress
from marc.compression.vlm.backend import VLMBackend
from marc.compression.vlm.prompt import Visual, VisualPrompt, build_messages
from marc.compression.vlm.sampling import smart_nframes
from marc.compression.vlm.vision import VisionTower
from marc.memory.core.config import AnswerModelConfig, CompressionConfig, as_config
from marc.memory.core.errors import MediaError, one_line
from marc.memory.core.events import EventRef
from marc.memory.frames import event_frames, frame_times, stored_file
from marc.memory.probe import probe

__all__ = ["FROM_CONFIG", "Answer", "Answerer", "Prepared", "Sampled", "allocate_frames", "answer"]

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class _Default(enum.Enum):
    CONFIG = "config"


#: ``budget=FROM_CONFIG`` (the default): the :class:`CompressionConfig`'s budget.
FROM_CONFIG = _Default.CONFIG
Budget = int | None | Literal[_Default.CONFIG]


@dataclass
class Answer:
    """An answer and what it was made from.

    Attributes:
        text: the answer (the ``<answer>`` part when the model used the reasoning format).
        visual_tokens: visual tokens the language model saw.
        budget_tokens: the budget in tokens: ``budget`` groups of ``P`` tokens (one frame's worth
            for ``budget=1``); for uncompressed input, the same number as ``visual_tokens``.
        groups: for each kept group, the ``(event_index, group_index)`` pairs merged into it, in
            time order (indices into :attr:`events` and :attr:`group_times`).
        events: the events that contributed frames, in time order.
        group_times: per event, the time (s in its video) at the centre of each temporal group.
        raw: the whole generated text.
        missing: one line per retrieved event whose file could not be read (left out).
        timings: seconds spent decoding, in the vision tower, compressing, in prefill, generating,
            and in total.
        prompt_tokens, completion_tokens: what the language model read and wrote.
        tokens_per_group: ``P``, the visual tokens of one 2-frame group (one frame's worth).
        frame_size: ``(height, width)`` in pixels every sampled frame was letterboxed to.
    """

    text: str
    visual_tokens: int
    budget_tokens: int
    groups: list[list[tuple[int, int]]]
    events: list[EventRef] = field(default_factory=list)
    group_times: list[list[float]] = field(default_factory=list)
    raw: str = ""
    missing: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_group: int = 0
    frame_size: tuple[int, int] = (0, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "visual_tokens": self.visual_tokens,
            "budget_tokens": self.budget_tokens,
            "groups": [[list(p) for p in g] for g in self.groups],
            "events": [e.id for e in self.events],
            "missing": self.missing,
            "timings": self.timings,
            "tokens_per_group": self.tokens_per_group,
        }


def allocate_frames(durations: Sequence[float], total: int, per_group: int = 2) -> list[int]:
    """Frames per event: ``total`` split in proportion to duration, in whole groups, at least one
    group each (largest remainder; ties to the earlier event).

    >>> allocate_frames([10.0, 30.0, 20.0], 64)
    [12, 32, 20]
    >>> allocate_frames([1.0, 100.0], 4)
    [2, 2]
    """
    n = len(durations)
    if n == 0:
        return []
    groups = max(total // per_group, n)
    weights = np.maximum(np.asarray(durations, dtype=np.float64), 0.0)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(n, 1.0 / n)
    extra = groups - n  # one group each first
    share = weights * extra
    counts = np.floor(share).astype(int)
    order = sorted(range(n), key=lambda i: (-(share[i] - counts[i]), i))
    for i in order[: extra - int(counts.sum())]:
        counts[i] += 1
    return [int(c + 1) * per_group for c in counts]


@dataclass
class Sampled:
    """The frames the vision tower reads, per event in model-input order (time order).

    Attributes:
        events: the events whose frames were read.
        frames: per event, ``uint8 [T_e, H, W, 3]``: each the source frame on screen at its time.
        times: per event, ``[T_e]`` seconds in its video (:func:`~marc.memory.frames.frame_times`).
        missing: one line per event whose file could not be read.
    """

    events: list[EventRef]
    frames: list[np.ndarray]
    times: list[np.ndarray]
    missing: list[str]


@dataclass(kw_only=True)
class Prepared:
    """A prompt ready for generation and what it was made from (see :class:`Answer`)."""

    prompt: VisualPrompt
    visual_tokens: int
    budget_tokens: int
    groups: list[list[tuple[int, int]]]
    events: list[EventRef]
    group_times: list[list[float]]
    missing: list[str]
    timings: dict[str, float]
    tokens_per_group: int
    frame_size: tuple[int, int]
    started: float  # time.perf_counter() when preparation began
    sampled: Sampled | None = None  # the frames the vision tower read (None: text only)


class Answerer:
    """Turns retrieved events and a question into an :class:`Answer`. Holds the loaded models.

    Args:
        config: the answer model (frames, pixels, generation length, where it runs); a
            ``Settings`` or :class:`~marc.memory.core.config.AgentConfig` gives its
            ``answer_model`` (and, unless ``compression`` is given, its ``compression``);
            ``None``: :class:`AnswerModelConfig`'s defaults (never the environment).
        compression: budget, window and ratio of the compression; default: from ``config`` when
            that is a ``Settings``/``AgentConfig``, else :class:`CompressionConfig`'s defaults.
        backend: the VLM backend; default: the one ``config`` names.
        vision: the vision tower wrapper; default: the backend model's own (transformers) or the
            checkpoint's tower loaded alone (vLLM).
    """

    def __init__(
        self,
        config: AnswerModelConfig | Any = None,
        compression: CompressionConfig | Any = None,
        *,
        backend: VLMBackend | None = None,
        vision: VisionTower | None = None,
    ) -> None:
        self.config = as_config(config, AnswerModelConfig)
        if compression is None and not isinstance(config, AnswerModelConfig):
            compression = config  # a Settings or AgentConfig holds both
        self.compression = as_config(compression, CompressionConfig)
        if backend is None or vision is None:
            backend, vision = load_backend(self.config)
        self.backend = backend
        self.vision = vision

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------------------------ steps
    def sample(self, hits: Sequence[EventRef]) -> Sampled:
        """Frames of each hit (in time order), skipping (and listing) those whose file cannot be
        read; no events at all when none can.

        The frame budget is split among the events whose file is there. All frames get one size
        (so every group has the same ``P`` tokens): ``smart_resize`` of the largest of their
        videos (a small camera does not shrink the others' frames; smaller ones are upscaled),
        letterboxed where the aspect differs.
        """
        out = Sampled([], [], [], [])
        readable, shapes, seen = [], [], {}
        for hit in sorted(hits, key=_time_key):
            try:
                if hit.video not in seen:
                    # MediaError: gone since ingest, or no longer a video
                    seen[hit.video] = probe(stored_file(hit.video))
            except MediaError as e:
                out.missing.append(one_line(e))
                continue
            readable.append(hit)
            shapes.append((seen[hit.video].width, seen[hit.video].height))
        per_group = self.vision.temporal
        total = self.config.frames - self.config.frames % per_group
        if self.config.sample_fps > 0 and readable:
            total = self.frame_count(readable, [seen[h.video].fps for h in readable])
        size = None
        if shapes:
            width, height = max(shapes, key=lambda wh: (wh[0] * wh[1], wh))
            size = self.vision.frame_size(width, height, nframes=total)
        counts = allocate_frames([h.end_s - h.start_s for h in readable], total, per_group)
        for hit, n in zip(readable, counts, strict=True):
            h, w = size
            fps = seen[hit.video].fps  # keeps the frames inside the event (see frame_times)
            try:
                frames = event_frames(
                    hit.video, hit.start_s, hit.end_s, n, height=h, width=w, fps=fps
                )
            except MediaError as e:
                out.missing.append(one_line(e))
                continue
            out.events.append(hit)
            out.frames.append(frames)
            out.times.append(frame_times(hit.start_s, hit.end_s, n, fps))
        return out

    def frame_count(self, events: Sequence[EventRef], fps: Sequence[float | None]) -> int:
        """Frames to read across ``events`` with ``sample_fps``: qwen-vl-utils' ``smart_nframes``
        over their frames together (``sample_fps`` per second of video, at least ``min_frames``,
        at most ``frames``, even; :func:`~marc.compression.vlm.sampling.smart_nframes`).

        One event of a whole video (training and evaluation) gets exactly qwen-vl-utils' count
        for that video. A span too short for 2 frames gets 2 (qwen-vl-utils refuses it).
        """
        c = self.config
        frames = [
            max(1, round((e.end_s - e.start_s) * (f or 25.0)))
            for e, f in zip(events, fps, strict=True)
        ]  # frames of video each event spans (25 fps when the rate is unknown)
        seconds = sum(max(e.end_s - e.start_s, 1e-6) for e in events)
        total = sum(frames)
        try:
            n = smart_nframes(
                total, total / seconds, fps=c.sample_fps, min_frames=c.min_frames,
                max_frames=c.frames,
            )  # fmt: skip
        except ValueError:  # fewer than 2 frames of video
            n = self.vision.temporal
        return n

    def prompt(
        self,
        question: str,
        events: list[EventRef],
        tokens: torch.Tensor | list[torch.Tensor],
        grid_hw: tuple[int, int],
        *,
        seconds_per_group: list[float] | None = None,
        reasoning: bool = False,
        listing: bool = True,
    ) -> VisualPrompt:
        """The prompt for compressed ``tokens [N, P, D]`` (one image) or, given a list of
        ``[T_e, P, D]``, for uncompressed events (one video each)."""
        h, w = grid_hw
        merge = self.vision.merge
        if isinstance(tokens, torch.Tensor):
            N, P, D = tokens.shape
            # N groups stacked top to bottom: rows of group i are [i*P, (i+1)*P) (see .prompt)
            visuals = [Visual("image", tokens.reshape(N * P, D), (1, N * h, w), merge=merge)]
            messages = build_messages(
                question, events, ["image"], groups=N, reasoning=reasoning, listing=listing
            )
        else:
            spg = seconds_per_group or [1.0] * len(tokens)
            visuals = [
                Visual("video", t.reshape(-1, t.shape[-1]), (t.shape[0], h, w), s, merge=merge)
                for t, s in zip(tokens, spg, strict=True)
            ]
            messages = build_messages(
                question, events, ["video"] * len(tokens), reasoning=reasoning, listing=listing
            )
        return VisualPrompt(messages, visuals, events)

    def prepare(
        self,
        question: str,
        hits: Sequence[EventRef],
        *,
        budget: Budget = FROM_CONFIG,
        reasoning: bool = False,
        text_only: bool = False,
        listing: bool = True,
        shuffle_seed: int | None = None,
    ) -> Prepared:
        """Sample, encode and compress: everything before generation (the agent's compress node).

        Args:
            budget: groups kept after compression (1: one frame's worth); ``None``: no
                compression, every sampled frame goes to the model as video; default: the
                compression config's ``budget``.
            reasoning: ask for (and extract) the ``<think>``/``<answer>`` format.
            text_only: when no event's file can be read, prepare a prompt that lists the events
                (file, camera, times: what the catalog still knows) without pictures instead of
                raising.
            listing: describe the events in the prompt (files, cameras, times); ``False``: only
                the visual input and ``question`` (Video-R1's benchmark prompts).
            shuffle_seed: put each event's sampled frames in a random order (seeded) before
                encoding: the shuffled input of Video-R1's T-GRPO (its ``torch.randperm`` of
                the video's frames).

        Raises:
            ValueError: ``hits`` is empty or ``budget < 1``.
            MediaError: none of the events' files can be read (and not ``text_only``).
        """
        if not hits:
            raise ValueError("no events to answer from")
        if budget is FROM_CONFIG:
            budget = self.compression.budget
        if budget is not None and budget < 1:
            raise ValueError(f"budget must be >= 1 or None, got {budget}")
        t0 = time.perf_counter()
        sampled = self.sample(hits)
        if shuffle_seed is not None:
            rng = np.random.default_rng(shuffle_seed)
            sampled.frames = [f[rng.permutation(len(f))] for f in sampled.frames]
        timings = {"decode_s": time.perf_counter() - t0}
        if not sampled.events:
            if not text_only:
                raise MediaError(
                    hits[0].video,
                    f"none of the {len(hits)} retrieved events could be read "
                    f"({sampled.missing[0]})",
                )
            events = sorted(hits, key=_time_key)
            messages = build_messages(question, events, [], reasoning=reasoning)
            return Prepared(
                prompt=VisualPrompt(messages, [], events),
                visual_tokens=0,
                budget_tokens=0,
                groups=[],
                events=events,
                group_times=[],
                missing=sampled.missing,
                timings=timings,
                tokens_per_group=0,
                frame_size=(0, 0),
                started=t0,
            )
        t = time.perf_counter()
        tokens = [self.vision.encode(f) for f in sampled.frames]  # [T_e/2, P, D] each
        _sync(tokens[0])
        timings["vision_s"] = time.perf_counter() - t
        H, W = sampled.frames[0].shape[1:3]
        grid_hw = self.vision.grid(H, W)
        P = tokens[0].shape[1]
        if budget is None:
            step = self.vision.temporal
            spg = [float(ts[step] - ts[0]) if len(ts) > step else 1.0 for ts in sampled.times]
            prompt = self.prompt(
                question, sampled.events, tokens, grid_hw, seconds_per_group=spg,
                reasoning=reasoning, listing=listing,
            )  # fmt: skip
            timings["compression_s"] = 0.0
            groups = [[(e, g)] for e, tok in enumerate(tokens) for g in range(tok.shape[0])]
            budget_tokens = sum(int(tok.shape[0]) for tok in tokens) * P
        else:
            t = time.perf_counter()
            c = self.compression
            out = compress(tokens, budget=budget, window=c.window, ratio=c.ratio)
            _sync(out.tokens)
            timings["compression_s"] = time.perf_counter() - t
            prompt = self.prompt(
                question, sampled.events, out.tokens, grid_hw, reasoning=reasoning, listing=listing
            )
            groups = out.groups
            budget_tokens = budget * P
        group_times = [_group_times(ts, self.vision.temporal) for ts in sampled.times]
        return Prepared(
            prompt=prompt,
            visual_tokens=prompt.visual_tokens,
            budget_tokens=budget_tokens,
            groups=groups,
            events=sampled.events,
            group_times=group_times,
            missing=sampled.missing,
            timings=timings,
            tokens_per_group=int(P),
            frame_size=(int(H), int(W)),
            started=t0,
            sampled=sampled,
        )

    def generate(
        self, prepared: Prepared, *, temperature: float = 0.0, top_p: float = 1.0
    ) -> Answer:
        """Generate the answer to a prepared prompt (the agent's answer node).

        Raises:
            ModelError: the model failed or the vLLM server is unreachable.
        """
        gen = self.backend.generate(
            prepared.prompt,
            max_new_tokens=self.config.max_new_tokens,
            temperature=temperature,
            top_p=top_p,
        )
        timings = dict(prepared.timings)
        if gen.prefill_s is not None:
            timings["prefill_s"] = gen.prefill_s
        timings["generation_s"] = gen.seconds
        timings["total_s"] = time.perf_counter() - prepared.started
        match = _ANSWER_TAG.search(gen.text)
        text = match.group(1) if match else gen.text
        return Answer(
            # no NUL: never part of an answer, and PostgreSQL's JSONB (a thread store) refuses it
            text=text.replace("\x00", "").strip(),
            visual_tokens=prepared.visual_tokens,
            budget_tokens=prepared.budget_tokens,
            groups=prepared.groups,
            events=prepared.events,
            group_times=prepared.group_times,
            raw=gen.text,
            missing=prepared.missing,
            timings=timings,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            tokens_per_group=prepared.tokens_per_group,
            frame_size=prepared.frame_size,
        )

    def answer(
        self,
        question: str,
        hits: Sequence[EventRef],
        *,
        budget: Budget = FROM_CONFIG,
        reasoning: bool = False,
        temperature: float = 0.0,
    ) -> Answer:
        """Answer ``question`` from ``hits`` (search hits, or anything with ``id, video, camera,
        start_s, end_s``) with at most ``budget`` frame groups of visual tokens (default: the
        compression config's): :meth:`prepare` then :meth:`generate`.

        Raises:
            ValueError: ``hits`` is empty or ``budget < 1``.
            MediaError: none of the events' files can be read.
            ModelError: the model failed or the vLLM server is unreachable.
        """
        prepared = self.prepare(question, hits, budget=budget, reasoning=reasoning)
        return self.generate(prepared, temperature=temperature)


def load_backend(config: AnswerModelConfig | Any) -> tuple[VLMBackend, VisionTower]:
    """The backend ``config`` names and the vision tower that feeds it (``config`` may also be a
    ``Settings``: its ``answer_model``)."""
    from marc.compression.vlm.loading import (
        load_model,
        load_processor,
        load_vision_tower,
        model_dir,
    )

    c = as_config(config, AnswerModelConfig)
    if c.backend == "vllm":
        from marc.compression.vlm.vllm_backend import VLLMBackend

        backend: VLMBackend = VLLMBackend.from_config(c)
        folder = model_dir(c, vision_only=True)
        processor = load_processor(folder)
        visual = load_vision_tower(folder, c)
    else:
        from marc.compression.vlm.transformers_backend import TransformersBackend

        folder = model_dir(c)
        processor = load_processor(folder)
        backend = TransformersBackend(load_model(folder, c), processor)
        visual = backend.visual
    vision = VisionTower(
        visual, processor, frame_pixels=c.frame_pixels, min_pixels=c.min_frame_pixels
    )
    return backend, vision


def answer(
    question: str,
    hits: Sequence[EventRef],
    *,
    budget: Budget = FROM_CONFIG,
    settings: Any = None,
    reasoning: bool = False,
) -> Answer:
    """Answer ``question`` from retrieved ``hits``; see :meth:`Answerer.answer`.

    ``settings`` is what :class:`Answerer` takes: an :class:`AnswerModelConfig`, or a
    ``Settings``/``AgentConfig`` (answer model and compression); ``None``: the configs' defaults.

    The models load for this call and are released after it; to answer several questions, keep
    one :class:`Answerer` open instead.
    """
    answerer = Answerer(settings)
    try:
        return answerer.answer(question, hits, budget=budget, reasoning=reasoning)
    finally:
        answerer.close()


def _time_key(event: EventRef) -> tuple:
    start_at = event.start_at
    return (start_at.timestamp() if start_at is not None else 0.0, event.video, event.start_s)


def _group_times(times: np.ndarray, per_group: int) -> list[float]:
    return [float(x) for x in times.reshape(-1, per_group).mean(axis=1)]


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize(t.device)
