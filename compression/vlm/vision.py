"""Qwen2.5-VL's own vision tower as MARC uses it: video frames in, per-temporal-group tokens out.

The tower patchifies a clip into temporal groups of ``temporal_patch_size`` (2) frames, encodes
them with attention that never crosses groups (one attention segment per group, windowed inside
it), and merges each 2x2 block of patches into one token of the language model's width. Its
``pooler_output`` is laid out group-major, so reshaping gives the compression layer's input::

    frames [T, H, W, 3]  ->  pooler_output [T/2 * P, D]  ->  tokens [T/2, P, D]
    P = (H/14) * (W/14) / 4        D = text hidden size (2048 for the 3B)

Because groups never attend to each other, encoding them in chunks gives the same tokens as one
pass (tested), which bounds memory for any number of frames.
"""

from __future__ import annotations

import numpy as np
import torch

from marc.compression.vlm.sampling import VIDEO_MIN_PIXELS, video_frame_size

__all__ = ["VisionTower"]


class VisionTower:
    """Encodes frames with a Qwen2.5-VL vision tower and its checkpoint's video processor.

    Args:
        visual: the tower (``model.model.visual`` or :func:`~.loading.load_vision_tower`'s).
        processor: the checkpoint's ``Qwen2_5_VLProcessor`` (normalisation, patch layout).
        frame_pixels: most pixels per frame (``MARC_VLM_FRAME_PIXELS``; the ceiling is at least
            ``1.05 * min_pixels``, qwen-vl-utils' rule).
        min_pixels: fewest pixels per frame (``MARC_VLM_MIN_FRAME_PIXELS``; Video-R1's
            qwen-vl-utils ``VIDEO_MIN_PIXELS``, 128*28*28). Given explicitly: transformers 5's
            video processor has no ``min_pixels`` attribute (its bounds are ``size``'s
            ``shortest_edge``/``longest_edge``), and reading one silently gave 3,136.
        chunk_groups: temporal groups per forward pass (memory bound; results do not depend on it).
    """

    def __init__(
        self,
        visual,
        processor,
        *,
        frame_pixels: int,
        min_pixels: int = VIDEO_MIN_PIXELS,
        chunk_groups: int = 16,
    ) -> None:
        cfg = visual.config
        self.visual = visual
        self.video_processor = processor.video_processor
        self.patch: int = cfg.patch_size
        self.merge: int = cfg.spatial_merge_size
        self.temporal: int = cfg.temporal_patch_size
        self.hidden: int = cfg.out_hidden_size
        self.frame_pixels = frame_pixels
        self.min_pixels = int(min_pixels)
        self.chunk_groups = chunk_groups
        self._has_cap = hasattr(self.video_processor, "cap_pixels_per_frame")

    @property
    def factor(self) -> int:
        """Frame sides must be multiples of this (patch size x merge size: 28)."""
        return self.patch * self.merge

    def frame_size(self, width: int, height: int, nframes: int = 2) -> tuple[int, int]:
        """``(height, width)`` for ``nframes`` frames of a ``width x height`` video: qwen-vl-utils'
        ``fetch_video`` bounds and ``smart_resize`` (aspect kept, sides multiples of 28, pixels
        in ``[min_pixels, max(min(frame_pixels, total / nframes * 2), 1.05 * min_pixels)]``;
        :func:`~marc.compression.vlm.sampling.video_frame_size`)."""
        h, w = video_frame_size(
            max(height, 1),
            max(width, 1),
            nframes=nframes,
            min_pixels=self.min_pixels,
            max_pixels=self.frame_pixels,
            factor=self.factor,
        )
        return int(h), int(w)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Pre-merge patch grid ``(h, w)`` of one frame (the units of ``grid_thw``)."""
        return height // self.patch, width // self.patch

    def tokens_per_group(self, height: int, width: int) -> int:
        h, w = self.grid(height, width)
        return h * w // (self.merge * self.merge)

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """Tokens of each temporal group of ``frames``.

        Args:
            frames: ``uint8 [T, H, W, 3]``, ``T`` a multiple of 2, ``H`` and ``W`` multiples of 28
                (:meth:`frame_size`).

        Returns:
            ``[T/2, P, D]`` in the tower's dtype, on its device.
        """
        T, H, W, _ = frames.shape
        assert T % self.temporal == 0, f"{T} frames: need a multiple of {self.temporal}"
        assert H % self.factor == 0 and W % self.factor == 0, (
            f"{H}x{W}: sides must be x{self.factor}"
        )
        P = self.tokens_per_group(H, W)
        step = self.chunk_groups * self.temporal
        # frames arrive at their final size; the per-frame cap (a resize option) does not apply
        extra = {"cap_pixels_per_frame": False} if self._has_cap else {}
        param = next(self.visual.parameters())
        out = []
        for i in range(0, T, step):
            clip = frames[i : i + step]
            batch = self.video_processor(
                videos=[clip], do_resize=False, do_sample_frames=False, return_tensors="pt", **extra
            )
            # [t*h*w, C*2*14*14] patches, [[t, h, w]] grid
            pixels = batch["pixel_values_videos"].to(param.device, param.dtype)
            grid = batch["video_grid_thw"].to(param.device)
            rows = self.visual(pixels, grid_thw=grid).pooler_output  # [t * P, D]
            out.append(rows.view(-1, P, rows.shape[-1]))  # [t, P, D]
        tokens = torch.cat(out)
        assert tokens.shape == (T // self.temporal, P, self.hidden), tokens.shape
        return tokens
