"""The tiny answer model: a Qwen2.5-VL-architecture model with random weights, generated locally.

``MARC_MODELS=tiny`` (or ``MARC_VLM=tiny``) swaps Qwen2.5-VL-3B (a download of ~7.5 GB) for this
model, for offline use and tests. It is the real architecture (``Qwen2_5_VLConfig`` →
``Qwen2_5_VLForConditionalGeneration``, vision tower with window attention and the 2x2 patch
merger, M-RoPE) at a few hundred thousand parameters, with a byte-level BPE tokenizer trained here
on a small built-in text and Qwen's special tokens, and a real ``Qwen2_5_VLProcessor``. The folder
is written with ``save_pretrained`` and loaded through exactly the ``from_pretrained`` code a
downloaded checkpoint goes through. Its answers are gibberish; everything around them is real.

:func:`tiny_config` also builds the reduced-width variants the efficiency benchmark uses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["TINY_VLM_DIRNAME", "ensure_tiny_vlm", "tiny_config", "tiny_vlm_name", "write_model"]

#: Folder, under the models directory, that holds the generated model.
TINY_VLM_DIRNAME = "tiny-qwen2.5-vl"
#: Seed of the weights. Changing it (or any config below) changes the model's name.
TINY_SEED = 0
#: Bump when the generation rule (tokenizer corpus, processor settings) changes.
_FORMAT = 1
_MARKER = "marc_generated.json"

# Qwen2.5-VL's special tokens, in the order that gives them the small ids below.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_IDS = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
_VOCAB = 512

_TEXT = dict(
    vocab_size=_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    # head_dim 64 / 2 = 32: vLLM's CPU attention takes head sizes 32, 64, 80, ... only (the
    # `vllm` test tier serves this model); 2 query heads share 1 KV head, as in Qwen's GQA
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=32768,
    bos_token_id=_IDS["<|endoftext|>"],
    eos_token_id=_IDS["<|im_end|>"],
    pad_token_id=_IDS["<|endoftext|>"],
    # sum(mrope_section) == head_dim / 2 = 16; Qwen's 3B uses [16, 24, 24] for head_dim 128
    rope_parameters={"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 1e6},
)
_VISION = dict(
    depth=2,
    hidden_size=32,
    intermediate_size=64,
    num_heads=2,
    out_hidden_size=64,  # == the text hidden size: merged rows are scattered into its embeddings
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[1],
    tokens_per_second=2,
)
# The Qwen2-VL image/video processor's defaults are the real model's (CLIP mean/std, 14 px
# patches, merge 2, temporal patch 2); only the pixel bounds are set.
_PROCESSOR = dict(min_pixels=4 * 28 * 28, max_pixels=128 * 28 * 28)

# ChatML with Qwen-VL's placeholders: what Qwen2.5-VL-Instruct's template renders for our prompts.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The tokenizer's training text: the words MARC's prompts and users' questions are made of.
_CORPUS = """
The picture below summarises these video segments from a camera archive, in time order.
The videos below are these segments from a camera archive, in time order. views stacked top to
bottom. camera lobby hall street parking lot gate entrance exit door road crossing dashcam.
When did the white van leave the lot? Who walked through the hall? How many people entered?
What colour was the car that stopped at the gate? Did anyone cross the road after midnight?
Where did the truck go after that? Is there a person carrying a bag near the door?
Think about it inside <think> </think> tags, then give the final answer inside <answer> </answer>
tags. A person walks left to right. Two people meet near the stairs. A bicycle passes. Nothing
happens; the scene is empty. Yes. No. The answer is A, B, C or D. 0 1 2 3 4 5 6 7 8 9 10 seconds
minutes hours 00:01:05.0-00:01:20.0 mp4 avi mkv mov.
"""


def tiny_config(*, text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None):
    """A ``Qwen2_5_VLConfig`` of the tiny model, with ``text`` / ``vision`` fields overridden.

    The token ids are Qwen's special tokens as this module's tokenizer numbers them; overrides
    must keep ``vision.out_hidden_size == text.hidden_size`` and ``sum(mrope_section) ==
    head_dim / 2``.
    """
    from transformers import Qwen2_5_VLConfig

    t, v = {**_TEXT, **(text or {})}, {**_VISION, **(vision or {})}
    head_dim = t["hidden_size"] // t["num_attention_heads"]
    assert v["out_hidden_size"] == t["hidden_size"], "vision out_hidden_size != text hidden_size"
    assert sum(t["rope_parameters"]["mrope_section"]) * 2 == head_dim, "mrope_section"
    return Qwen2_5_VLConfig(
        text_config=t,
        vision_config=v,
        image_token_id=_IDS["<|image_pad|>"],
        video_token_id=_IDS["<|video_pad|>"],
        vision_start_token_id=_IDS["<|vision_start|>"],
        vision_end_token_id=_IDS["<|vision_end|>"],
    )


def _spec(config_dict: dict[str, Any], seed: int) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "seed": seed,
        "config": config_dict,
        "processor": _PROCESSOR,
        "corpus": hashlib.sha256(_CORPUS.encode()).hexdigest(),
        "template": CHAT_TEMPLATE,
    }


def tiny_vlm_name(config=None, seed: int = TINY_SEED) -> str:
    """``<dirname>-<8 hex digits>`` of the spec (config, seed, tokenizer text, processor)."""
    cfg = (config or tiny_config()).to_dict()
    for k in ("transformers_version", "_name_or_path"):
        cfg.pop(k, None)
    blob = json.dumps(_spec(cfg, seed), sort_keys=True, default=str).encode()
    return f"{TINY_VLM_DIRNAME}-{hashlib.sha256(blob).hexdigest()[:8]}"


def _tokenizer(corpus: str | None = None, vocab: int = _VOCAB):
    """A byte-level BPE with Qwen's special tokens at ids 0-6, as a ``Qwen2Tokenizer``, trained on
    ``corpus`` (default: the built-in text) with at most ``vocab - 16`` tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab - 16,  # headroom below the model's vocab
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator((corpus or _CORPUS).split("\n"), trainer)
    assert all(bpe.token_to_id(t) == i for t, i in _IDS.items())
    return Qwen2Tokenizer(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
    )


def _processor(tokenizer):
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**_PROCESSOR),
        video_processor=Qwen2VLVideoProcessor(**_PROCESSOR),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def write_model(
    folder: Path, config=None, seed: int = TINY_SEED, corpus: str | None = None
) -> None:
    """Write a random-weight model of ``config`` (default: the tiny one) with its processor.

    The folder is a normal transformers checkpoint: ``from_pretrained`` loads it. ``corpus``
    trains the tokenizer on other text (e.g. a task's prompts, so that they take fewer tokens),
    up to the config's ``vocab_size``.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.utils import logging

    logging.disable_progress_bar()
    config = config or tiny_config()
    name = tiny_vlm_name(config, seed)  # before the model touches the config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.do_sample = False
    model.save_pretrained(folder)
    vocab = config.text_config.vocab_size
    _processor(_tokenizer(corpus, vocab) if corpus else _tokenizer()).save_pretrained(folder)
    marker = {
        "name": name,
        "note": "random weights generated by marc.compression.vlm.tiny; not a trained model",
    }
    (Path(folder) / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _is_current(folder: Path, name: str) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("name") == name and (folder / "model.safetensors").is_file()


def ensure_tiny_vlm(models_dir: Path) -> Path:
    """Generate the tiny model under ``models_dir/tiny-qwen2.5-vl`` unless it is already there.

    Idempotent and atomic (see :func:`marc.memory.core.generated.install_generated`).

    Returns:
        The model's folder, to pass to ``from_pretrained``.
    """
    from marc.memory.core.generated import install_generated

    name = tiny_vlm_name()
    return install_generated(
        Path(models_dir) / TINY_VLM_DIRNAME,
        lambda folder: _is_current(folder, name),
        lambda folder: write_model(folder),
    )
