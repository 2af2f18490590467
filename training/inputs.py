"""Visual inputs of a Video-R1 sample in the paper's settings: full frames, uniform, compressed.

Training and evaluation feed the answer model exactly what MARC's answer path feeds it
(:class:`marc.compression.vlm.answerer.Answerer`): frames sampled across the video (or across
retrieved events), Qwen2.5-VL's own vision tower, then

* ``"full"``: ``frames`` (64, the paper's teacher) frames as one video, uncompressed;
* ``"uniform"``: ``uniform_frames`` (16) frames as one video, uncompressed (the usual baseline);
* ``"compressed"``: ``frames`` frames compressed by :func:`marc.compression.compress` to
  ``budget`` groups (1: one frame's worth of tokens), sent as one image with grid ``t = 1``
  (the paper's student input).

A sample's video is one pseudo-event covering the whole file unless retrieved events (``hits``)
are given. Image samples are one image in every mode (no compression: one group already).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from marc.memory.core.config import AnswerModelConfig, CompressionConfig, as_config
from marc.memory.core.errors import MediaError
from marc.memory.core.events import EventRef
from marc.memory.core.timeline import Span
from marc.memory.probe import probe
from marc.training.data import Sample, question_text

if TYPE_CHECKING:  # torch and the answer model load only when inputs are built (`marc --help`)
    from marc.compression.vlm.answerer import Answer, Answerer, Prepared
    from marc.compression.vlm.backend import VLMBackend
    from marc.compression.vlm.vision import VisionTower

__all__ = ["MODES", "PROMPTS", "InputBuilder", "whole_video"]

Mode = Literal["full", "uniform", "compressed"]
MODES: tuple[str, ...] = ("full", "uniform", "compressed")
#: How the question is put: Video-R1's own templates (``video_r1``: its ``grpo.py`` template in
#: training, its ``eval_bench.py`` one in evaluation; nothing but the visual input and the
#: question) or MARC's archive prompt (``marc``: an intro, the file/camera/time of each event,
#: the question, the reasoning suffix when asked).
PROMPTS: tuple[str, ...] = ("video_r1", "marc")


def whole_video(sample: Sample) -> EventRef:
    """A sample's video as one pseudo-event covering the whole file (camera: its folder)."""
    info = probe(sample.path)
    return EventRef(
        id=str(sample.problem_id),
        video=str(sample.path),
        camera=sample.path.parent.name,
        span=Span(0.0, info.duration_s, info.fps or None),
    )


class InputBuilder:
    """Prepares samples' prompts with the answer path's own sampling, vision tower and compression.

    Args:
        backend: the answer model's backend (its chat template and generation).
        vision: the vision tower that encodes frames (frozen: inputs are computed without grad).
        config: the answer model's config: frame pixels, generation length (its ``frames`` is
            replaced per mode); a ``Settings`` gives its ``answer_model`` (and ``compression``);
            ``None``: the config's defaults (never the environment).
        compression: window and ratio of the compression (the budget is each call's); default:
            from ``config`` when that is a ``Settings``, else the config's defaults.
    """

    def __init__(
        self,
        backend: VLMBackend,
        vision: VisionTower,
        config: AnswerModelConfig | Any = None,
        compression: CompressionConfig | Any = None,
    ):
        self.backend = backend
        self.vision = vision
        self.config = as_config(config, AnswerModelConfig)
        if compression is None and not isinstance(config, AnswerModelConfig):
            compression = config  # a Settings holds both
        self.compression = as_config(compression, CompressionConfig)
        self._answerers: dict[int, Answerer] = {}

    @classmethod
    def for_model(
        cls,
        model,
        processor,
        config: AnswerModelConfig | Any = None,
        compression: CompressionConfig | Any = None,
    ) -> InputBuilder:
        """The builder of a loaded ``Qwen2_5_VLForConditionalGeneration``: its transformers
        backend and its own vision tower at the config's ``frame_pixels``."""
        from marc.compression.vlm.transformers_backend import TransformersBackend
        from marc.compression.vlm.vision import VisionTower

        answer_model = as_config(config, AnswerModelConfig)
        if compression is None and not isinstance(config, AnswerModelConfig):
            compression = config  # a Settings holds both
        backend = TransformersBackend(model, processor)
        vision = VisionTower(
            backend.visual,
            processor,
            frame_pixels=answer_model.frame_pixels,
            min_pixels=answer_model.min_frame_pixels,
        )
        return cls(backend, vision, answer_model, compression)

    def _answerer(self, frames: int) -> Answerer:
        from marc.compression.vlm.answerer import Answerer

        if frames not in self._answerers:
            config = dataclasses.replace(self.config, frames=frames)
            self._answerers[frames] = Answerer(
                config, self.compression, backend=self.backend, vision=self.vision
            )
        return self._answerers[frames]

    def prepare(
        self,
        sample: Sample,
        mode: Mode = "compressed",
        *,
        frames: int = 64,
        uniform_frames: int = 16,
        budget: int = 1,
        reasoning: bool = False,
        hits: Sequence[EventRef] | None = None,
        prompt: str = "marc",
        stage: str = "eval",
        shuffle_seed: int | None = None,
    ) -> Prepared:
        """The prompt (with precomputed visual rows) of ``sample`` in ``mode``.

        ``prompt="video_r1"`` asks exactly as Video-R1 does (:func:`~marc.training.video_r1.
        question_prompt` of ``stage``, ``"train"`` or ``"eval"``): its template always asks for
        ``<think>``/``<answer>``, so ``reasoning`` is not used; ``"marc"`` is the answer path's
        archive prompt. ``shuffle_seed`` puts the sampled frames in a random order (T-GRPO).

        Raises:
            ValueError: unknown ``mode`` or ``prompt``.
            MediaError: the sample's file is missing or unreadable.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
        if prompt == "video_r1":
            from marc.training.video_r1 import question_prompt

            question = question_prompt(
                sample.problem, sample.problem_type, sample.options, stage=stage
            )
            reasoning, listing = False, False  # the template carries its own instructions
        else:
            question, listing = question_text(sample), True
        if sample.data_type == "image":
            return self._image(sample, question, reasoning)
        n = uniform_frames if mode == "uniform" else frames
        if hits is None:
            hits = [whole_video(sample)]
        return self._answerer(n).prepare(
            question, hits, budget=budget if mode == "compressed" else None, reasoning=reasoning,
            listing=listing, shuffle_seed=shuffle_seed,
        )  # fmt: skip

    def _image(self, sample: Sample, question: str, reasoning: bool) -> Prepared:
        """One image: two copies of the picture make one temporal group (Qwen2.5-VL's rule)."""
        import numpy as np
        from PIL import Image

        from marc.compression.vlm.answerer import Prepared
        from marc.compression.vlm.prompt import REASONING_SUFFIX, Visual, VisualPrompt

        try:
            with Image.open(sample.path) as im:
                rgb = im.convert("RGB")
        except OSError as e:
            raise MediaError(sample.path, f"cannot read the image ({e})") from e
        h, w = self.vision.frame_size(rgb.width, rgb.height)
        frame = np.asarray(rgb.resize((w, h), Image.Resampling.BICUBIC))
        tokens = self.vision.encode(np.stack([frame, frame]))  # [1, P, D]
        gh, gw = self.vision.grid(h, w)
        P = int(tokens.shape[1])
        text = question + (REASONING_SUFFIX if reasoning else "")
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        visual = Visual("image", tokens.reshape(P, -1), (1, gh, gw), merge=self.vision.merge)
        prompt = VisualPrompt(messages, [visual])
        return Prepared(
            prompt=prompt,
            visual_tokens=prompt.visual_tokens,
            budget_tokens=P,
            groups=[[(0, 0)]],
            events=[],
            group_times=[[0.0]],
            missing=[],
            timings={},
            tokens_per_group=P,
            frame_size=(h, w),
            started=0.0,
        )

    def answer(self, prepared: Prepared, *, temperature: float = 0.0, top_p: float = 1.0) -> Answer:
        """Generate the answer to a prepared prompt (greedy by default)."""
        return self._answerer(self.config.frames).generate(
            prepared, temperature=temperature, top_p=top_p
        )
