"""How many frames of a video the answer model reads, and at what size: qwen-vl-utils' rules.

Video-R1 (and the paper's measurements on its benchmarks) reads videos with its vendored
``qwen-vl-utils`` (``src/qwen-vl-utils/src/qwen_vl_utils/vision_process.py``):

* **Frame count** (``smart_nframes``): ``fps`` (2) frames per second of video, at least
  ``min_frames`` (4) and at most ``max_frames`` (``FPS_MAX_FRAMES``: Video-R1 trains with 16 and
  evaluates with 16/32/64; the paper's teacher reads up to 64), never more than the video has,
  rounded *down* to a multiple of 2 (one temporal group). Short clips get fewer frames: a 3 s
  clip at 2 fps reads 6.
* **Frame size** (``fetch_video`` then ``smart_resize``): sides multiples of 28, aspect kept,
  pixels between ``min_pixels`` (``VIDEO_MIN_PIXELS`` = 128·28·28 = 100,352) and
  ``max(min(max_pixels, total_pixels / nframes · 2), int(min_pixels · 1.05))``; with Video-R1's
  ``VIDEO_MAX_PIXELS`` = 128·28·28 the effective ceiling is 105,369. Small videos are upscaled
  to the floor: 176×144 becomes 364×308, 143 tokens per 2-frame group.
* **Frame positions** (``_read_video_decord``): indices ``linspace(0, total - 1, n).round()``.

This module reproduces the count, the size bounds, ``smart_resize`` and the indices (pure
Python and torch, checked against the rules in ``tests/test_sampling.py``); it does not depend
on the ``qwen-vl-utils`` package (which reads videos itself, with decord or torchvision).

>>> smart_nframes(total_frames=90, video_fps=30.0)  # a 3 s clip: 6 frames at 2 fps
6
>>> smart_nframes(total_frames=30 * 600, video_fps=30.0, max_frames=64)  # 10 min: capped
64
>>> video_frame_size(144, 176, nframes=6)  # upscaled to the 128*28*28 floor
(308, 364)
"""

from __future__ import annotations

import math

__all__ = [
    "FPS",
    "FPS_MIN_FRAMES",
    "FRAME_FACTOR",
    "IMAGE_FACTOR",
    "MAX_RATIO",
    "VIDEO_MAX_PIXELS",
    "VIDEO_MIN_PIXELS",
    "VIDEO_TOTAL_PIXELS",
    "frame_indices",
    "smart_nframes",
    "smart_resize",
    "video_frame_size",
    "video_pixel_bounds",
]

IMAGE_FACTOR = 28  # frame sides are multiples of patch (14) x merge (2)
MAX_RATIO = 200  # longest / shortest side
FRAME_FACTOR = 2  # frames per temporal group
FPS = 2.0  # frames per second of video read
FPS_MIN_FRAMES = 4
VIDEO_MIN_PIXELS = 128 * 28 * 28  # Video-R1's qwen-vl-utils
VIDEO_MAX_PIXELS = 128 * 28 * 28  # Video-R1's qwen-vl-utils (training); inference: 256*28*28
VIDEO_TOTAL_PIXELS = int(float(128000 * 28 * 28 * 0.9))  # qwen-vl-utils' default budget


def _round_by(x: float, f: int) -> int:
    return round(x / f) * f


def _ceil_by(x: float, f: int) -> int:
    return math.ceil(x / f) * f


def _floor_by(x: float, f: int) -> int:
    return math.floor(x / f) * f


def smart_nframes(
    total_frames: int,
    video_fps: float,
    *,
    fps: float = FPS,
    min_frames: int = FPS_MIN_FRAMES,
    max_frames: int = 64,
) -> int:
    """Frames to read: qwen-vl-utils' ``smart_nframes`` with ``fps`` (no ``nframes`` given).

    ``min(max(duration · fps, min_frames), max_frames, total_frames)`` rounded down to even, with
    ``min_frames`` rounded up and ``max_frames`` (at most ``total_frames``) down to even first.

    Raises:
        ValueError: the result is not in ``[2, total_frames]`` (a video of fewer than 2 frames),
            as in qwen-vl-utils.
    """
    lo = _ceil_by(min_frames, FRAME_FACTOR)
    hi = _floor_by(min(max_frames, total_frames), FRAME_FACTOR)
    n = total_frames / video_fps * fps
    n = min(min(max(n, lo), hi), total_frames)
    n = _floor_by(n, FRAME_FACTOR)
    if not FRAME_FACTOR <= n <= total_frames:
        raise ValueError(f"nframes should be in [{FRAME_FACTOR}, {total_frames}], got {n}")
    return int(n)


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = VIDEO_MIN_PIXELS,
    max_pixels: float = VIDEO_MAX_PIXELS,
) -> tuple[int, int]:
    """qwen-vl-utils' ``smart_resize``: sides multiples of ``factor``, pixels within bounds.

    >>> smart_resize(576, 768, max_pixels=105369)  # vtest.avi
    (280, 364)

    Raises:
        ValueError: the aspect ratio exceeds 200.
    """
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_RATIO}, "
            f"got {max(height, width) / min(height, width)}"
        )
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = _floor_by(height / beta, factor)
        w_bar = _floor_by(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    return h_bar, w_bar


def video_pixel_bounds(
    nframes: int,
    *,
    min_pixels: int = VIDEO_MIN_PIXELS,
    max_pixels: int = VIDEO_MAX_PIXELS,
    total_pixels: int = VIDEO_TOTAL_PIXELS,
) -> tuple[int, float]:
    """``(min_pixels, max_pixels)`` per frame of an ``nframes`` video (``fetch_video``).

    >>> video_pixel_bounds(64)  # 128*28*28 both: the floor's 5 % margin wins
    (100352, 105369)
    """
    top = max(min(max_pixels, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    return min_pixels, top


def video_frame_size(
    height: int,
    width: int,
    *,
    nframes: int,
    min_pixels: int = VIDEO_MIN_PIXELS,
    max_pixels: int = VIDEO_MAX_PIXELS,
    total_pixels: int = VIDEO_TOTAL_PIXELS,
    factor: int = IMAGE_FACTOR,
) -> tuple[int, int]:
    """``(height, width)`` that each of ``nframes`` frames of a ``height x width`` video gets."""
    lo, hi = video_pixel_bounds(
        nframes, min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels
    )
    return smart_resize(height, width, factor=factor, min_pixels=lo, max_pixels=hi)


def frame_indices(total_frames: int, nframes: int) -> list[int]:
    """The frames qwen-vl-utils reads: ``torch.linspace(0, total - 1, n).round()`` (float32,
    half to even).

    >>> frame_indices(10, 4), frame_indices(4, 3)
    ([0, 3, 6, 9], [0, 2, 3])
    """
    import torch

    return torch.linspace(0, total_frames - 1, nframes).round().long().tolist()
