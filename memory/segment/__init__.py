"""Event segmentation: one video's tiny frames in, the events that tile it out.

    frames (uint8 [T, 27, 48, 3], every frame at ``fps``)
      -> TransNetDetector: shot cuts          (TransNetV2, shipped weights)
      -> ActivityDetector: activity changes   (motion energy + hysteresis)
      -> events.tile: cuts, then activity, then max-length splits -> list[EventSpan]

Example:
    >>> seg = segment(frames, fps=25.0)  # doctest: +SKIP
    >>> [(e.span.start_s, e.span.end_s, e.boundary) for e in seg.events]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .activity_detector import ActivityDetector
from .detector import BoundaryDetector, check_fps, check_frames
from .events import EventSpan, check_event_lengths, tile

if TYPE_CHECKING:
    from .transnet_detector import TransNetDetector


def __getattr__(name: str) -> Any:
    # TransNetV2 needs torch, seconds to import: loaded on first use
    if name == "TransNetDetector":
        from .transnet_detector import TransNetDetector

        return TransNetDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ActivityDetector",
    "BoundaryDetector",
    "EventSpan",
    "Segmentation",
    "TransNetDetector",
    "segment",
    "tile",
]


@dataclass
class Segmentation:
    """The segmentation of one video.

    Attributes:
        fps: the video's frame rate.
        frames: number of frames ``T``.
        cuts: shot-cut frames found by TransNetV2 (first frame of each new shot).
        events: events tiling ``[0, T)`` in time order.
    """

    fps: float
    frames: int
    cuts: list[int]
    events: list[EventSpan]


@functools.lru_cache(maxsize=8)
def _transnet(threshold: float, device: str) -> TransNetDetector:
    from .transnet_detector import TransNetDetector

    return TransNetDetector(threshold=threshold, device=device)


def segment(
    frames: np.ndarray,
    fps: float,
    *,
    cut_threshold: float = 0.5,
    max_event_s: float = 30.0,
    min_event_s: float = 2.0,
    device: str = "cpu",
) -> Segmentation:
    """Segment one video into events.

    Args:
        frames: uint8 ``[T, 27, 48, 3]`` RGB, every frame of the video at rate ``fps``.
        fps: the video's constant frame rate.
        cut_threshold: TransNetV2 transition probability above which a frame is a transition.
        max_event_s: longest event in seconds; longer stretches are split evenly.
        min_event_s: shortest activity state, and closest an activity boundary may come to
            another boundary.
        device: torch device for TransNetV2. The detector (and its weights) is built once per
            ``(cut_threshold, device)`` and reused across calls in the process.

    Returns:
        The :class:`Segmentation`; ``events`` is empty only for an empty video.
    """
    frames, fps = check_frames(frames), check_fps(fps)
    check_event_lengths(max_event_s, min_event_s)  # before minutes of inference, not after
    if len(frames) == 0:
        return Segmentation(fps=fps, frames=0, cuts=[], events=[])
    cuts = _transnet(float(cut_threshold), str(device)).boundaries(frames, fps)
    activity = ActivityDetector(min_event_s=min_event_s).boundaries(frames, fps)
    events = tile(
        len(frames),
        fps,
        cuts=cuts,
        activity=activity,
        max_event_s=max_event_s,
        min_event_s=min_event_s,
    )
    return Segmentation(fps=fps, frames=len(frames), cuts=cuts, events=events)
