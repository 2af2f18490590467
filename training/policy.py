"""The policy side of training: prompts with precomputed visual rows, rollouts, log-probs.

The vision tower is frozen, so a sample's visual input never changes during training: its prompt
(``input_ids`` and the post-merger visual rows, see
:meth:`marc.compression.vlm.transformers_backend.TransformersBackend.inputs`) is computed once with
``torch.no_grad()`` and cached per sample and mode (:class:`PromptCache`). The student reads the
compressed one-frame input, the teacher the 64 uncompressed frames.

A group of ``G`` rollouts shares one prompt, so the prompt's keyword arguments are expanded to
``G`` rows (:func:`expand_inputs`: token rows repeated, visual rows and grids repeated once per
row) and the completions are appended on the right::

    input_ids [G, L + T] = [prompt (L, same in every row) | completion_i padded to T]

Log-probs of completion tokens come from one forward pass over ``[G, L + T]``: the logits at
positions ``L - 1 .. L + T - 2`` predict the completion (:func:`completion_logprobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "PromptCache",
    "Rollouts",
    "completion_logprobs",
    "encode_targets",
    "expand_inputs",
    "generate_rollouts",
    "seeded",
]


def expand_inputs(kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    """``n`` copies of a one-row prompt's ``model(...)`` keyword arguments, as one batch.

    Token tensors ``[1, L]`` become ``[n, L]``; each visual's rows (``mm_encoder_outputs``) and
    its grid and time spacing are repeated once per row, in row order (the model scatters the
    rows into the pad tokens in reading order).
    """
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    assert kwargs["input_ids"].shape[0] == 1, "expand a one-row prompt"
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "mm_encoder_outputs":
            out[key] = {
                kind: BaseModelOutputWithPooling(pooler_output=tuple(enc.pooler_output) * n)
                for kind, enc in value.items()
            }
        elif key.endswith("_grid_thw") or key == "second_per_grid_ts":
            out[key] = value.repeat(n, *([1] * (value.ndim - 1)))
        else:  # input_ids, attention_mask, mm_token_type_ids: [1, L]
            out[key] = value.expand(n, -1)
    return out


def to_device(kwargs: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "mm_encoder_outputs":
            out[key] = {
                k: BaseModelOutputWithPooling(
                    pooler_output=tuple(r.to(device) for r in enc.pooler_output)
                )
                for k, enc in value.items()
            }
        else:
            out[key] = value.to(device)
    return out


@dataclass
class Rollouts:
    """``G`` sampled completions of one prompt.

    Attributes:
        ids: ``[G, T]`` completion tokens, right-padded (``T`` the longest, ending at the first
            end-of-turn token included).
        mask: ``[G, T]`` 1 on a completion's tokens (its end-of-turn token included), 0 on padding.
        texts: the decoded completions (special tokens dropped, not stripped: Video-R1's
            ``batch_decode(..., skip_special_tokens=True)``, whose format reward fails
            whitespace before ``<think>`` or after ``</answer>``).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    texts: list[str]

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)


@torch.no_grad()
def generate_rollouts(
    model,
    tokenizer,
    prompt: dict[str, Any],
    n: int,
    *,
    temperature: float = 1.0,
    top_p: float = 0.95,
    max_new_tokens: int = 768,
) -> Rollouts:
    """Sample ``n`` completions of ``prompt`` (one row of ``model(...)`` kwargs), each stopping at
    ``<|im_end|>`` (or ``<|endoftext|>``) or after ``max_new_tokens``; vision placeholder tokens
    are never sampled. Uses the global torch RNG
    (wrap in :func:`seeded` for reproducible rollouts)."""
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    eos = [i for i in eos if i is not None]
    # a completion must not contain vision placeholders: the model would look for visual rows
    vision = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    suppress = [i for i in tokenizer.convert_tokens_to_ids(list(vision)) if i is not None]
    batch = expand_inputs(prompt, n)
    L = batch["input_ids"].shape[1]
    out = model.generate(
        **batch,
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        top_k=0,
        max_new_tokens=max_new_tokens,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=suppress,
    )
    ids = out[:, L:]  # [n, T]
    is_eos = torch.isin(ids, torch.tensor(eos, device=ids.device))
    # keep tokens up to and including the first end-of-turn token
    after = (is_eos.cumsum(1) - is_eos.long()) > 0  # strictly after the first eos
    mask = (~after).long()
    if ids.shape[1] == 0:  # max_new_tokens == 0 cannot happen; keep shapes sane anyway
        mask = torch.zeros_like(ids)
    ids = ids.masked_fill(mask == 0, tokenizer.pad_token_id)
    texts = [
        tokenizer.decode(row[m.bool()], skip_special_tokens=True)
        for row, m in zip(ids, mask, strict=True)
    ]
    return Rollouts(ids, mask, texts)


def completion_logprobs(
    model,
    prompt: dict[str, Any],
    ids: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-token log-probs ``[G, T]`` of completions ``ids [G, T]`` after ``prompt`` (one row),
    from ``logits / temperature`` (the distribution the rollouts were sampled from, before
    top-p truncation, as in TRL). Differentiable; zero where ``mask`` is 0."""
    G, T = ids.shape
    batch = expand_inputs(prompt, G)
    L = batch["input_ids"].shape[1]
    batch["input_ids"] = torch.cat([batch["input_ids"], ids], 1)  # [G, L+T]
    batch["attention_mask"] = torch.cat([batch["attention_mask"], mask.to(torch.long)], 1)
    batch["mm_token_type_ids"] = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(ids)], 1)
    logits = model(**batch, use_cache=False, logits_to_keep=T + 1).logits  # [G, T+1, V]
    logits = logits[:, :-1].float() / temperature  # positions L-1 .. L+T-2 predict ids
    logp = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # [G, T]
    assert logp.shape == (G, T) and L > 0
    return logp * mask


def encode_targets(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Target completions as ``(ids [B, T], mask [B, T])``, each ending with ``<|im_end|>``
    (what the chat template closes an assistant turn with), right-padded."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for t in texts]  # fmt: skip
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


class seeded:  # noqa: N801 - used like a function: ``with seeded(seed, step, i):``
    """Run a block with the global torch (CPU and CUDA) RNG seeded from ``parts``, restoring the
    outer state afterwards: rollouts depend only on (seed, step, prompt), so a resumed run samples
    exactly what an uninterrupted one would."""

    def __init__(self, *parts: object) -> None:
        import hashlib

        digest = hashlib.sha256(repr(parts).encode()).digest()
        self.seed = int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF
        self._fork = None

    def __enter__(self) -> None:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        self._fork = torch.random.fork_rng(devices=devices)
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc) -> None:
        self._fork.__exit__(*exc)


class PromptCache:
    """Prompts (``model(...)`` kwargs with precomputed visual rows) computed once per key (for
    instance ``(sample.key(), "compressed")``) and kept for the whole run."""

    def __init__(self) -> None:
        self._items: dict[Any, dict[str, Any]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Any, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached prompt of ``key``, else ``build()`` run under ``torch.no_grad()``."""
        if key in self._items:
            self.hits += 1
            return self._items[key]
        self.misses += 1
        with torch.no_grad():
            kwargs = build()
        self._items[key] = kwargs
        return kwargs

    def __len__(self) -> int:
        return len(self._items)
