"""open_clip encoders: PE-Core-B/16 (the paper's event encoder), the tiny model, random baselines.

:class:`OpenClipEncoder` loads any open_clip model id with a schema:

* ``hf-hub:<org>/<repo>`` -- downloaded on first use into ``cache_dir`` (a Hugging Face hub cache),
  then read from there, also offline. The default is ``hf-hub:timm/PE-Core-B-16`` (embed dim 1024,
  224 px, open_clip config ``PE-Core-B-16``: timm ``vit_pe_core_base_patch16_224`` vision tower and
  a 24-layer text transformer).
* ``local-dir:<path>`` -- an open_clip model folder (``open_clip_config.json`` + weights), e.g. the
  tiny model of :mod:`marc.memory.encoders.tiny`.

Facts about huggingface_hub 2.4 this module relies on: without a cached copy, ``hf_hub_download``
retries an unreachable hub with backoff for about 25 s before failing, and open_clip turns a failed
*weights* download into a warning and a randomly initialised model. So the hub is probed first with
one HEAD request bounded by :data:`HUB_TIMEOUT_S` (in a thread, since DNS lookups ignore socket
timeouts), and open_clip is called with ``require_pretrained=True``.

Preprocessing (mean/std, input size, resize mode) is read from the loaded model's
``visual.preprocess_cfg``; frames arrive as ``uint8 [N, S, S, 3]`` already at size S.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.factory import parse_model_name

from marc.memory.core.config import PE_CORE_B16
from marc.memory.core.errors import ModelError, one_line
from marc.memory.encoders import tiny as _tiny  # noqa: F401  (registers the tiny timm tower)
from marc.memory.encoders.base import Encoder

#: Seconds to wait for the Hugging Face hub before declaring it unreachable.
HUB_TIMEOUT_S = 5.0
_CONFIG_FILE = "open_clip_config.json"
Precision = Literal["fp32", "bf16", "fp16"]
_AUTOCAST: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
_HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEncoder(Encoder):
    """An open_clip CLIP-style model as a MARC :class:`Encoder`.

    Args:
        model_id: ``hf-hub:<org>/<repo>`` or ``local-dir:<path>``.
        device: torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        cache_dir: Hugging Face cache for ``hf-hub:`` downloads (MARC uses ``MARC_HOME/models``);
            None = the user's default HF cache.
        batch_size: Frames (or texts) per forward pass.
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` autocast of the forward passes (weights stay
            fp32). On a CPU with AVX512-BF16 ``"bf16"`` embeds PE-Core-B/16 frames faster, with
            embeddings close to fp32's (``bench/ingest.md``); on CPUs without it, it is slower.

    Raises:
        ModelError: the model could not be downloaded or loaded (one-line message).
    """

    def __init__(
        self,
        model_id: str = PE_CORE_B16,
        *,
        device: str = "cpu",
        cache_dir: Path | None = None,
        batch_size: int = 32,
        precision: Precision = "fp32",
    ) -> None:
        schema, ident = _parse(model_id)
        cache = str(Path(cache_dir).expanduser()) if cache_dir is not None else None
        if schema == "hf-hub":
            _check_hub(model_id, ident, cache)
            name = _hub_name(ident)
        else:
            name = _local_name(model_id, Path(ident))
        try:
            with torch.random.fork_rng(devices=[]):  # the init before loading draws from it
                model = open_clip.create_model(
                    model_id, device=device, cache_dir=cache, require_pretrained=True
                )
            tokenizer = open_clip.get_tokenizer(model_id, cache_dir=cache)
        except Exception as e:  # open_clip raises bare RuntimeError/ValueError/OSError alike
            raise ModelError(
                f"{model_id}: could not load the model ({one_line(e, limit=300)})"
            ) from e
        self._setup(
            model, tokenizer, name=name, device=device, batch_size=batch_size, precision=precision
        )
        self.model_id = model_id

    @classmethod
    def random(
        cls,
        config_name: str = "PE-Core-B-16",
        *,
        seed: int = 0,
        device: str = "cpu",
        batch_size: int = 32,
        precision: Precision = "fp32",
    ) -> OpenClipEncoder:
        """A randomly initialised open_clip built-in architecture; downloads nothing.

        For benchmarks ("a random-weight encoder of PE-Core-B/16's size"). Preprocessing comes from
        the architecture's first pretrained tag (PE-Core: mean = std = 0.5, bilinear, squash).
        """
        if config_name not in open_clip.list_models():
            raise ModelError(f"{config_name}: not an open_clip built-in architecture")
        tags = open_clip.list_pretrained_tags_by_model(config_name)
        pcfg = open_clip.get_pretrained_cfg(config_name, tags[0]) if tags else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(
                config_name, pretrained=None, device=device, force_preprocess_cfg=pcfg
            )
        tokenizer = open_clip.get_tokenizer(config_name)
        enc = cls.__new__(cls)
        name = f"random-{_slug(config_name)}-seed{seed}"
        enc._setup(
            model, tokenizer, name=name, device=device, batch_size=batch_size, precision=precision
        )
        enc.model_id = config_name
        return enc

    def _setup(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        device: str,
        batch_size: int,
        precision: Precision,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in _AUTOCAST:
            raise ValueError(f"precision must be one of {sorted(_AUTOCAST)}, got {precision!r}")
        self.precision = precision
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.device = torch.device(device)
        self.batch_size = batch_size
        pcfg = model.visual.preprocess_cfg
        h, w = _pair(pcfg["size"])
        if h != w:
            raise ModelError(f"{name}: non-square input size {h}x{w} is not supported")
        self.image_size = h
        self.resize_mode = pcfg.get("resize_mode", "shortest")
        self.interpolation = pcfg.get("interpolation", "bicubic")
        # [1, 3, 1, 1] so they broadcast over [B, 3, S, S].
        self._mean = torch.tensor(pcfg["mean"], device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(pcfg["std"], device=self.device).view(1, 3, 1, 1)
        self.dim = int(self.embed_texts([""]).shape[1])

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = _AUTOCAST[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.inference_mode()
    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        frames = self._check_frames(frames)
        out = np.empty((frames.shape[0], self.dim), np.float32)
        for i in range(0, frames.shape[0], self.batch_size):
            batch = frames[i : i + self.batch_size]
            if not batch.flags.writeable:  # torch.from_numpy warns on read-only arrays
                batch = batch.copy()
            x = torch.from_numpy(batch).to(self.device)  # uint8 [B, S, S, 3]
            x = x.permute(0, 3, 1, 2).float().div_(255)  # float [B, 3, S, S] in [0, 1]
            x = (x - self._mean) / self._std
            with self._autocast():
                f = self.model.encode_image(x)  # [B, D]
            out[i : i + len(batch)] = F.normalize(f.float(), dim=-1).cpu().numpy()
        return out

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a sequence of strings, not one string")
        texts = list(texts)
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[i : i + self.batch_size]).to(self.device)  # [B, ctx]
            with self._autocast():
                f = self.model.encode_text(tokens)  # [B, D]
            chunks.append(F.normalize(f.float(), dim=-1).cpu().numpy())
        if not chunks:
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)


def _parse(model_id: str) -> tuple[str, str]:
    try:
        schema, ident = parse_model_name(model_id)
    except ValueError as e:
        raise ModelError(f"{model_id!r}: {e}") from e
    if schema not in ("hf-hub", "local-dir"):
        raise ModelError(
            f"{model_id!r}: model ids must be 'hf-hub:<org>/<repo>' or 'local-dir:<path>' "
            f"(e.g. {PE_CORE_B16})"
        )
    return schema, ident


def _check_hub(model_id: str, repo_id: str, cache_dir: str | None) -> None:
    """Return if the model is cached or the hub answers; else raise a one-line ModelError."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str)

    if cached(_CONFIG_FILE) and any(cached(f) for f in _HUB_WEIGHTS):
        return
    hint = "set MARC_MODELS=tiny to use the small offline encoder instead"
    if constants.is_offline_mode():
        raise ModelError(
            f"{model_id}: the model could not be downloaded from the Hugging Face hub "
            f"(HF_HUB_OFFLINE is set and it is not in the cache {cache_dir or 'default'}); {hint}"
        )
    error: list[BaseException] = []

    def probe() -> None:
        try:
            get_hf_file_metadata(hf_hub_url(repo_id, _CONFIG_FILE), timeout=HUB_TIMEOUT_S)
        except BaseException as e:  # noqa: BLE001 -- reported to the caller below
            error.append(e)

    thread = threading.Thread(target=probe, name="marc-hub-probe", daemon=True)
    thread.start()
    thread.join(HUB_TIMEOUT_S + 1)
    if thread.is_alive():
        reason = f"no answer within {HUB_TIMEOUT_S:g} s"
    elif error:
        reason = one_line(error[0], limit=300)
    else:
        return
    raise ModelError(
        f"{model_id}: the model could not be downloaded from the Hugging Face hub "
        f"({reason}); {hint}"
    )


def _hub_name(repo_id: str) -> str:
    """``timm/PE-Core-B-16`` -> ``pe-core-b-16``; other orgs keep theirs: ``org-repo``."""
    org, _, repo = repo_id.rpartition("/")
    return _slug(repo if org in ("", "timm") else f"{org}-{repo}")


def _local_name(model_id: str, folder: Path) -> str:
    """The ``marc.name`` in the folder's config, else ``<folder>-<config digest>``."""
    try:
        raw = (folder / _CONFIG_FILE).read_bytes()
        config = json.loads(raw)
    except (OSError, ValueError) as e:
        raise ModelError(
            f"{model_id}: not an open_clip model folder ({one_line(e, limit=300)})"
        ) from e
    name = config.get("marc", {}).get("name") if isinstance(config, dict) else None
    if isinstance(name, str) and name == _slug(name):
        return name
    return f"{_slug(folder.name)}-{hashlib.sha256(raw).hexdigest()[:8]}"


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)
