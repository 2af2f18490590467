"""The boundary-detector interface every segmentation cue implements.

Modelled on PySceneDetect's ``SceneDetector``: one small base class with one required method, one
detector per file (``transnet_detector.py``, ``activity_detector.py``). Detectors see the whole
video at once as the tiny frames the ingest decoder produces in its single ffmpeg pass:

    frames: uint8 [T, 27, 48, 3]  RGB, every frame of the video at its constant rate ``fps``

(48x27 is exactly what TransNetV2 consumes; the activity detector uses the same frames so the
video is decoded once.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

FRAME_SHAPE = (27, 48, 3)
"""``(H, W, C)`` of the frames every detector takes."""


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Return ``frames`` if it is a uint8 ``[T, 27, 48, 3]`` array, else raise ``ValueError``."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be a uint8 numpy array, got {type(frames).__name__} "
            f"{getattr(frames, 'dtype', '')}".rstrip()
        )
    if frames.ndim != 4 or frames.shape[1:] != FRAME_SHAPE:
        raise ValueError(f"frames must have shape [T, 27, 48, 3], got {list(frames.shape)}")
    return frames


def check_fps(fps: float) -> float:
    """Return ``fps`` as a float if it is a positive finite number, else raise ``ValueError``."""
    fps = float(fps)
    if not (fps > 0 and np.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return fps


class BoundaryDetector(ABC):
    """Finds the frames where a new segment of a video starts.

    Subclasses set ``name`` (a short stable identifier, e.g. for logs and the catalog) and
    implement :meth:`boundaries`. Detectors are deterministic: the same frames give the same
    boundaries.
    """

    name: str = "detector"

    @abstractmethod
    def boundaries(self, frames: np.ndarray, fps: float) -> list[int]:
        """Frames where a new segment starts.

        Args:
            frames: uint8 ``[T, 27, 48, 3]`` RGB, every frame of the video.
            fps: the video's constant frame rate.

        Returns:
            Sorted, distinct frame indices ``b`` with ``0 < b < T``; frame ``b`` is the first
            frame of a new segment. Frame 0 always starts a segment and is not listed.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
