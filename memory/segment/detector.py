"""The boundary-detector interface every segmentation cue implements.

Modelled on PySceneDetect's ``SceneDetector``: one small base class, one detector per file
(``transnet_detector.py``, ``activity_detector.py``). Detectors read the tiny frames the ingest
decoder produces in its single ffmpeg pass:

    frames: uint8 [T, 27, 48, 3]  RGB, every frame of the video at its constant rate ``fps``

(48x27 is exactly what TransNetV2 consumes; the activity detector uses the same frames so the
video is decoded once.)

A detector is used as a stream, because the ingest hands frames over in pieces as ffmpeg decodes
them and an hour of video must not be held in memory::

    s = detector.stream(fps)       # a BoundaryStream
    s.feed(piece); s.feed(piece)   # uint8 [N, 27, 48, 3] each, in order
    s.finish()                     # -> list[int]: the boundary frames
    s.stats()                      # -> optional counters, e.g. TransNetV2's windows

and :meth:`BoundaryDetector.boundaries` is that stream fed the whole array. ``kind`` tells
:func:`~marc.memory.segment.events.tile` how to use the boundaries: ``"cut"`` boundaries always
start an event, ``"activity"`` ones only when far enough (``min_event_s``) from every other.
:class:`~marc.memory.segment.SegmentStream` runs any list of detectors this way, so a new cue is
one new file with a subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

FRAME_SHAPE = (27, 48, 3)
"""``(H, W, C)`` of the frames every detector takes."""

Kind = Literal["cut", "activity"]
KINDS: tuple[Kind, ...] = ("cut", "activity")
"""How :func:`~marc.memory.segment.events.tile` uses a detector's boundaries (see the module)."""

FEED = 1000
"""Frames handed to a stream at once when a whole array is processed."""


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


class BoundaryStream(ABC):
    """One detector over one video whose frames arrive in pieces.

    Memory should not grow with the video's frames (a few bytes per frame of scores is fine).
    Feeding the same frames in any split gives the same boundaries.
    """

    @abstractmethod
    def feed(self, frames: np.ndarray) -> None:
        """Add the next frames, uint8 ``[N, 27, 48, 3]`` RGB (already checked, ``N >= 0``)."""

    @abstractmethod
    def finish(self) -> list[int]:
        """Frames where a new segment starts, once every frame has been fed.

        Returns:
            Sorted, distinct frame indices ``b`` with ``0 < b < T``; frame ``b`` is the first
            frame of a new segment. Frame 0 always starts a segment and is not listed.
        """

    def stats(self) -> dict[str, float]:
        """Counters of the work done, valid after :meth:`finish` (none by default).

        :class:`~marc.memory.segment.SegmentStream` adds up each name over its detectors;
        ``windows``, ``evaluated`` and ``load_seconds`` become the
        :class:`~marc.memory.segment.Segmentation` fields of those names.
        """
        return {}


class BoundaryDetector(ABC):
    """Finds the frames where a new segment of a video starts.

    Subclasses set ``name`` (a short stable identifier, e.g. for logs), ``kind`` (``"cut"`` or
    ``"activity"``, see the module docstring) and implement :meth:`stream`. Detectors are
    deterministic: the same frames give the same boundaries.
    """

    name: str = "detector"
    kind: Kind

    @abstractmethod
    def stream(self, fps: float) -> BoundaryStream:
        """A fresh :class:`BoundaryStream` for one video at frame rate ``fps``."""

    def boundaries(self, frames: np.ndarray, fps: float) -> list[int]:
        """Frames where a new segment starts: :meth:`stream` fed all of ``frames``.

        Args:
            frames: uint8 ``[T, 27, 48, 3]`` RGB, every frame of the video.
            fps: the video's constant frame rate.

        Returns:
            Sorted, distinct frame indices ``b`` with ``0 < b < T`` (see
            :meth:`BoundaryStream.finish`).
        """
        frames = check_frames(frames)
        s = self.stream(check_fps(fps))
        for a in range(0, len(frames), FEED):
            s.feed(frames[a : a + FEED])
        return s.finish()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
