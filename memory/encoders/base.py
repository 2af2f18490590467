"""The event encoder interface, the paper's event memory vector, and image preparation.

An :class:`Encoder` maps frames and texts into one joint, L2-normalised embedding space. An event
is stored as one vector: the normalised mean of its N sampled frames' embeddings
(:func:`event_vector`). Frames reach the encoder already square and at ``encoder.image_size``;
:func:`prepare_images` makes them so from PIL images or arrays of any size (image queries).

Layouts: frames ``uint8 [N, S, S, 3]`` RGB with ``S = image_size``; embeddings ``float32 [N, D]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from PIL import Image

ResizeMode = Literal["shortest", "squash"]

_PIL_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


class Encoder(ABC):
    """A frozen image-text encoder that embeds event frames and queries.

    Attributes:
        name: Stable identifier, safe in file and collection names (``[a-z0-9-]``). Vectors of two
            encoders with different names must never be compared, so the vector store names its
            collection after it.
        dim: Embedding size D.
        image_size: Side S of the square RGB frames :meth:`embed_images` takes.
        resize_mode: How the model was trained to fit images into S x S: ``"squash"`` (resize both
            sides, PE-Core) or ``"shortest"`` (shortest side to S, then centre crop).
        interpolation: Resampling filter of the model's preprocessing (``"bilinear"``, ...).
        batch_size: Frames per forward pass.
    """

    name: str
    dim: int
    image_size: int
    resize_mode: ResizeMode = "shortest"
    interpolation: str = "bicubic"
    batch_size: int = 32

    @abstractmethod
    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        """Embed square RGB frames.

        Args:
            frames: ``uint8 [N, S, S, 3]``, RGB, ``S == self.image_size``, already resized.

        Returns:
            ``float32 [N, D]``, each row of unit L2 norm.
        """

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text queries (or captions).

        Returns:
            ``float32 [N, D]``, each row of unit L2 norm.
        """

    def embed_event(self, frames: np.ndarray) -> np.ndarray:
        """The event memory vector of sampled frames ``uint8 [N, S, S, 3]`` -> ``float32 [D]``."""
        return event_vector(self.embed_images(frames))

    def prepare(self, images: np.ndarray | Iterable[Image.Image | np.ndarray]) -> np.ndarray:
        """Fit images of any size to this encoder's input its own way (:func:`prepare_images`)."""
        return prepare_images(
            images, self.image_size, resize_mode=self.resize_mode, interpolation=self.interpolation
        )

    def _check_frames(self, frames: np.ndarray) -> np.ndarray:
        """Validate a frame batch; return it C-contiguous. Raises ``ValueError`` on a bad layout."""
        s = self.image_size
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
            raise ValueError(
                f"{self.name}: frames must be a uint8 numpy array, got {_describe(frames)}"
            )
        if frames.ndim != 4 or frames.shape[1:] != (s, s, 3):
            raise ValueError(
                f"{self.name}: frames must be [N, {s}, {s}, 3] RGB, got shape {frames.shape}; "
                f"resize them with encoder.prepare()"
            )
        return np.ascontiguousarray(frames)

    def __repr__(self) -> str:
        cls = type(self).__name__
        return f"{cls}(name={self.name!r}, dim={self.dim}, image_size={self.image_size})"


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """``x / ||x||`` along ``axis`` in float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, eps)


def event_vector(embeddings: np.ndarray) -> np.ndarray:
    """The paper's event memory vector: the normalised mean of the normalised frame embeddings.

    Args:
        embeddings: ``[N, D]`` frame embeddings, N >= 1 (normalised here again, so any scale works).

    Returns:
        ``float32 [D]`` of unit norm.

    >>> [round(float(x), 4) for x in event_vector(np.array([[1.0, 0.0], [0.0, 2.0]]))]
    [0.7071, 0.7071]
    """
    e = np.asarray(embeddings)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError(f"need embeddings of shape [N >= 1, D], got {e.shape}")
    return l2_normalize(l2_normalize(e).mean(axis=0))


def prepare_images(
    images: np.ndarray | Iterable[Image.Image | np.ndarray],
    size: int,
    *,
    resize_mode: ResizeMode = "shortest",
    interpolation: str = "bicubic",
) -> np.ndarray:
    """Fit RGB images of any size into ``size x size`` frames.

    Args:
        images: PIL images, ``uint8 [H, W, 3]`` arrays, or one ``uint8 [N, H, W, 3]`` array.
        size: Output side S.
        resize_mode: ``"shortest"``: shortest side to S, then centre crop. ``"squash"``: resize
            both sides to S (aspect ratio not kept; what PE-Core was trained with).
        interpolation: ``"bicubic"``, ``"bilinear"``, ``"nearest"`` or ``"lanczos"`` (PIL filters,
            which antialias when downscaling).

    Returns:
        ``uint8 [N, S, S, 3]`` RGB.
    """
    if resize_mode not in ("shortest", "squash"):
        raise ValueError(f"resize_mode must be 'shortest' or 'squash', got {resize_mode!r}")
    if interpolation not in _PIL_INTERPOLATION:
        raise ValueError(
            f"interpolation must be one of {sorted(_PIL_INTERPOLATION)}, got {interpolation!r}"
        )
    resample = _PIL_INTERPOLATION[interpolation]
    out = [_fit(_to_pil(im), size, resize_mode, resample) for im in images]
    if not out:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack(out)


def _to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images must be PIL images or uint8 [H, W, 3] arrays, got {_describe(a)}")
    return Image.fromarray(a, "RGB")


def _fit(im: Image.Image, size: int, mode: ResizeMode, resample: Image.Resampling) -> np.ndarray:
    w, h = im.size
    if mode == "squash":
        return np.asarray(im.resize((size, size), resample))
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.resize((nw, nh), resample).crop((left, top, left + size, top + size)))


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__
