"""The in-process backend: ``Qwen2_5_VLForConditionalGeneration.generate`` fed precomputed rows.

The prompt's chat messages go through the checkpoint's own chat template, each placeholder is
expanded to as many ``<|image_pad|>`` / ``<|video_pad|>`` tokens as its :class:`Visual` has rows
(what the processor does for pixel input), and the rows go to ``generate`` as
``mm_encoder_outputs`` together with the grids and ``mm_token_type_ids``, so the model computes
its M-RoPE positions exactly as for pixel input and never runs its vision tower again. A test
checks the output is token-for-token the one of the processor's pixel path.
"""

from __future__ import annotations

import re
import time

import torch

from marc.compression.vlm.backend import Generation, VLMBackend
from marc.compression.vlm.prompt import VisualPrompt
from marc.memory.core.errors import ModelError, one_line

__all__ = ["TransformersBackend"]

# mm_token_type_ids values (transformers' Qwen2.5-VL: 0 text, 1 image, 2 video)
_TYPE = {"image": 1, "video": 2}


class TransformersBackend(VLMBackend):
    """Runs the answer model in this process (CPU or GPU).

    Args:
        model: a loaded ``Qwen2_5_VLForConditionalGeneration`` (see :mod:`.loading`).
        processor: its ``Qwen2_5_VLProcessor``.
        generate_kwargs: more ``model.generate`` arguments (e.g. ``min_new_tokens`` to make
            benchmark runs generate a fixed number of tokens).
    """

    name = "transformers"

    def __init__(self, model, processor, **generate_kwargs) -> None:
        self.model = model
        self.generate_kwargs = generate_kwargs
        self.processor = processor
        self.tokenizer = processor.tokenizer
        cfg = model.config
        self.pad_ids = {"image": cfg.image_token_id, "video": cfg.video_token_id}
        self.pad_tokens = {"image": processor.image_token, "video": processor.video_token}

    @property
    def visual(self):
        """The model's own vision tower, for :class:`~.vision.VisionTower`."""
        return self.model.model.visual

    def inputs(self, prompt: VisualPrompt) -> dict:
        """The keyword arguments of ``model.generate`` / ``model(...)`` for ``prompt``."""
        text = self.processor.apply_chat_template(
            prompt.messages, tokenize=False, add_generation_prompt=True
        )
        # expand each placeholder to as many pad tokens as its visual has rows, in order
        kind_of = {tok: kind for kind, tok in self.pad_tokens.items()}
        parts = re.split("(" + "|".join(map(re.escape, kind_of)) + ")", text)
        visuals = iter(prompt.visuals)
        for i in range(1, len(parts), 2):  # odd items are the placeholders
            visual = next(visuals, None)
            if visual is None or visual.kind != kind_of[parts[i]]:
                raise ModelError("the prompt's placeholders do not match its visual inputs")
            parts[i] *= visual.tokens
        if next(visuals, None) is not None:
            raise ModelError("the prompt has more visual inputs than placeholders")
        enc = self.tokenizer("".join(parts), return_tensors="pt")
        ids = enc["input_ids"]  # [1, L]
        types = torch.zeros_like(ids)
        for kind, tid in self.pad_ids.items():
            types[ids == tid] = _TYPE[kind]
        device = self.model.device
        dtype = self.model.dtype
        kwargs: dict = {
            "input_ids": ids.to(device),
            "attention_mask": enc["attention_mask"].to(device),
            "mm_token_type_ids": types.to(device),
        }
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        encoded = {}
        for kind in ("image", "video"):
            items = [v for v in prompt.visuals if v.kind == kind]
            if not items:
                continue
            grids = torch.tensor([v.grid_thw for v in items], dtype=torch.long, device=device)
            kwargs[f"{kind}_grid_thw"] = grids
            rows = tuple(v.embeds.to(device, dtype) for v in items)
            encoded[kind] = BaseModelOutputWithPooling(pooler_output=rows)
            if kind == "video":
                kwargs["second_per_grid_ts"] = torch.tensor(
                    [v.second_per_grid for v in items], device=device
                )
        if encoded:
            kwargs["mm_encoder_outputs"] = encoded
        return kwargs

    @torch.no_grad()
    def generate(
        self,
        prompt: VisualPrompt,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> Generation:
        kwargs = self.inputs(prompt)
        n_prompt = int(kwargs["input_ids"].shape[1])
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        eos = [self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|endoftext|>")]
        clock = _FirstToken()
        try:
            out = self.model.generate(
                **kwargs,
                streamer=clock,
                max_new_tokens=max_new_tokens,
                eos_token_id=[i for i in eos if i is not None],
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
                **self.generate_kwargs,
            )
        except (RuntimeError, ValueError) as e:
            raise ModelError(f"the answer model failed: {one_line(e, limit=200)}") from e
        seconds = time.perf_counter() - clock.start
        completion = out[0, n_prompt:]
        text = self.tokenizer.decode(completion, skip_special_tokens=True).strip()
        return Generation(text, n_prompt, int(completion.numel()), seconds, clock.prefill_s)


class _FirstToken:
    """A ``generate`` streamer that only notes when the first new token arrives (prefill time).

    ``generate`` calls ``put`` with the prompt first, then with each new token.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.calls = 0
        self.prefill_s: float | None = None

    def put(self, value: torch.Tensor) -> None:
        self.calls += 1
        if self.calls == 2:
            self.prefill_s = time.perf_counter() - self.start

    def end(self) -> None:
        pass
