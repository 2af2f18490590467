"""The tiny encoder: a small random-weight PE-Core-style CLIP, generated locally, for offline use.

``MARC_MODELS=tiny`` swaps PE-Core-B/16 (a download of ~1.5 GB) for this model. It is built from a
fixed config and seed, saved as an ordinary open_clip model folder (``open_clip_config.json`` +
``open_clip_model.safetensors``) and then loaded through the *same* ``local-dir:`` code path as the
real checkpoint (:class:`~marc.memory.encoders.pe_core.OpenClipEncoder`), so tests exercise the
real loading, preprocessing and forward code. Its embeddings carry no semantics -- a random network
still maps different frames to different unit vectors, which is what the plumbing needs.

Architecture (same family as PE-Core-B/16, shrunk):

* Vision: timm's PE-Core ViT (``timm.models.eva.Eva`` with PE-Core's settings: 2-D RoPE plus an
  absolute position embedding, pre-transformer norm, attention-pool ``map`` head) at 64 px,
  patch 16 (4x4 = 16 tokens + cls), width 64, depth 2, 2 heads. open_clip 3.3's ``vision_cfg``
  cannot pass architecture kwargs to timm (``TimmModel`` calls ``timm.create_model(name)`` with only
  pool/proj/drop settings), so this module registers the shrunk PE-Core variant as a timm model
  named ``vit_pe_core_marc_tiny_patch16_64``; importing ``marc.memory.encoders`` registers it. The
  saved folder therefore loads in any process that has imported this package.
* Text: open_clip's causal text transformer, width 64, 2 layers, 2 heads, context 32 (as PE-Core),
  with the BPE vocabulary (49408 tokens) of open_clip's ``SimpleTokenizer``, which ships inside
  the open_clip wheel, so tokenising needs no download.
* Joint embedding dim 64. Preprocessing as PE-Core: mean = std = 0.5, bilinear, ``squash``.

Determinism: torch's CPU random init may differ across CPUs (vectorised normal sampling), so every
non-constant tensor is overwritten with values from numpy's PCG64 seeded by ``(SEED, key)``
(``N(0, 1)`` clipped to +-2, times ``1/sqrt(fan_in)``; 0.02 for vectors). Constant inits (LayerNorm
ones/zeros, zero biases, ``logit_scale``) are kept. The same spec gives byte-identical weights on
any machine; the encoder's name carries a digest of the spec.

Variants: :data:`TINY_VARIANTS` maps encoder ids to generated models. ``tiny`` is the model above;
``tiny-wide`` (``MARC_ENCODER=tiny-wide``) has the same towers, a joint embedding dim of 96 and
seed 1 -- a second, incompatible encoder to switch to (``marc reindex`` tests). Both are written
and loaded by the same code, each in its own folder, with its own name.
"""

from __future__ import annotations

import hashlib
import json
import math
from copy import deepcopy
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.model import CustomTextCLIP
from safetensors.torch import save_file
from timm.layers import LayerNorm
from timm.models import register_model
from timm.models.eva import Eva

from marc.memory.core.errors import ModelError
from marc.memory.core.generated import install_generated

__all__ = ["TINY_DIRNAME", "TINY_SEED", "TINY_VARIANTS", "TinyVariant", "ensure_tiny", "tiny_name"]

#: Folder, under the models directory, that holds the generated model.
TINY_DIRNAME = "tiny-pe-core"
#: Seed of the weights. Changing it (or any config below) changes the encoder's name.
TINY_SEED = 0
#: Bump when the weight-generation rule changes.
_FORMAT = 1

_TIMM_NAME = "vit_pe_core_marc_tiny_patch16_64"
_IMAGE_SIZE = 64
_EMBED_DIM = 64

# timm's vit_pe_core_base_patch16_224 arguments with the sizes shrunk (see timm/models/eva.py).
_VISION_ARGS: dict[str, Any] = dict(
    img_size=_IMAGE_SIZE,
    patch_size=16,
    embed_dim=64,
    depth=2,
    num_heads=2,
    mlp_ratio=4.0,
    global_pool="map",
    attn_type="rope",
    use_pre_transformer_norm=True,
    use_rot_pos_emb=True,
    ref_feat_shape=(_IMAGE_SIZE // 16, _IMAGE_SIZE // 16),  # RoPE reference grid = token grid
    rope_grid_offset=1.0,
    rope_grid_indexing="xy",
    attn_pool_num_heads=8,
    attn_pool_mlp_ratio=4.0,
)
_NORM_EPS = 1e-5

_MODEL_CFG: dict[str, Any] = {
    "embed_dim": _EMBED_DIM,
    "vision_cfg": {
        "image_size": _IMAGE_SIZE,
        "timm_model_name": _TIMM_NAME,
        "timm_model_pretrained": False,
        "timm_pool": "map",
        "timm_proj": None,
    },
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    "custom_text": True,
}
# PE-Core's preprocessing (open_clip pretrained.py `_pecfg`).
_PREPROCESS_CFG: dict[str, Any] = {
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bilinear",
    "resize_mode": "squash",
}
_WEIGHTS_FILE = "open_clip_model.safetensors"
_CONFIG_FILE = "open_clip_config.json"


@dataclass(frozen=True)
class TinyVariant:
    """One generated tiny model; all share the vision tower registered below.

    Attributes:
        dirname: Its folder under the models directory, and the prefix of its name.
        seed: Seed of its weights.
        embed_dim: Joint embedding dim (the vision head and text projection output).
    """

    dirname: str
    seed: int
    embed_dim: int

    def model_cfg(self) -> dict[str, Any]:
        """The open_clip model config (with MARC's ``custom_text`` flag)."""
        return {**_MODEL_CFG, "embed_dim": self.embed_dim}


#: Encoder ids (``MARC_ENCODER``) of the generated models. ``tiny`` is the default of
#: ``MARC_MODELS=tiny``; its spec, hence its name and weights, must never change.
TINY_VARIANTS: dict[str, TinyVariant] = {
    "tiny": TinyVariant(TINY_DIRNAME, TINY_SEED, _EMBED_DIM),
    "tiny-wide": TinyVariant("tiny-pe-core-wide", 1, 96),
}


@register_model
def vit_pe_core_marc_tiny_patch16_64(pretrained: bool = False, **kwargs: Any) -> Eva:
    """timm entry point of the tiny PE-Core vision tower (random init only; no pretrained tag)."""
    if pretrained:
        raise ValueError(f"{_TIMM_NAME} has no pretrained weights")
    for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(k, None)
    args = dict(_VISION_ARGS, norm_layer=partial(LayerNorm, eps=_NORM_EPS))
    return Eva(**{**args, **kwargs})


def _variant(variant: str) -> TinyVariant:
    try:
        return TINY_VARIANTS[variant]
    except KeyError:
        known = ", ".join(sorted(TINY_VARIANTS))
        raise ModelError(f"{variant!r}: no such tiny encoder (known: {known})") from None


def _spec(v: TinyVariant) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "seed": v.seed,
        "vision_args": {**_VISION_ARGS, "norm_eps": _NORM_EPS},
        "model_cfg": v.model_cfg(),
        "preprocess_cfg": _PREPROCESS_CFG,
    }


def tiny_name(variant: str = "tiny") -> str:
    """A tiny encoder's name: ``<dirname>-<8 hex digits of the spec's sha256>``.

    >>> tiny_name()
    'tiny-pe-core-26663e4a'
    """
    v = _variant(variant)
    blob = json.dumps(_spec(v), sort_keys=True).encode()
    return f"{v.dirname}-{hashlib.sha256(blob).hexdigest()[:8]}"


def ensure_tiny(models_dir: Path, variant: str = "tiny") -> str:
    """Generate tiny model ``variant`` under ``models_dir/<dirname>`` unless it is already there.

    Idempotent and atomic: the model is written to a temporary sibling folder and renamed into
    place, so an interrupted run never leaves a half model; a folder from another spec (older
    version, other seed) is replaced.

    Args:
        models_dir: The models directory (``MARC_HOME/models``).
        variant: A key of :data:`TINY_VARIANTS`.

    Returns:
        The open_clip model id ``"local-dir:<absolute path>"``.

    Raises:
        ModelError: ``variant`` is unknown, or the folder cannot be written.
    """
    v = _variant(variant)
    name = tiny_name(variant)
    target = install_generated(
        Path(models_dir) / v.dirname,
        lambda folder: _is_current(folder, name),
        lambda folder: _write(folder, name, v),
    )
    return f"local-dir:{target}"


def _is_current(folder: Path, name: str) -> bool:
    try:
        config = json.loads((folder / _CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return config.get("marc", {}).get("name") == name and (folder / _WEIGHTS_FILE).is_file()


def _write(folder: Path, name: str, v: TinyVariant) -> None:
    """Write config and deterministic weights of tiny model ``v`` into ``folder``."""
    cfg = deepcopy(v.model_cfg())
    cfg.pop("custom_text")
    with torch.random.fork_rng(devices=[]):  # torch init only decides the constant tensors
        torch.manual_seed(v.seed)
        model = CustomTextCLIP(**cfg)
    tensors = {k: _deterministic(k, t, v.seed) for k, t in sorted(model.state_dict().items())}
    save_file(tensors, str(folder / _WEIGHTS_FILE), metadata={"marc_name": name})
    config = {
        "model_cfg": v.model_cfg(),
        "preprocess_cfg": _PREPROCESS_CFG,
        "marc": {
            "name": name,
            "seed": v.seed,
            "note": "random weights generated by marc.memory.encoders.tiny; not a trained model",
        },
    }
    (folder / _CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _deterministic(key: str, t: torch.Tensor, seed: int) -> torch.Tensor:
    """Keep a constant-initialised tensor; replace a randomly initialised one, seeded by its key."""
    t = t.detach().contiguous().clone()
    if not t.is_floating_point() or t.numel() == 0:
        return t
    flat = t.flatten()
    if bool((flat == flat[0]).all()):
        return t
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.Generator(np.random.PCG64([seed, digest]))
    std = 1.0 / math.sqrt(math.prod(t.shape[1:])) if t.ndim >= 2 else 0.02
    values = np.clip(rng.standard_normal(tuple(t.shape)), -2.0, 2.0) * std
    return torch.from_numpy(values.astype(np.float32)).to(t.dtype)
