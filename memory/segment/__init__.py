"""Event segmentation: one video's tiny frames in, the events that tile it out.

    frames (uint8 [T, 27, 48, 3], every frame at ``fps``)
      -> TransNetDetector: shot cuts          (TransNetV2, shipped weights; the ChangeGate
                                               skips windows where nothing changes enough)
      -> ActivityDetector: activity changes   (motion energy + hysteresis)
      -> events.tile: cuts, then activity, then max-length splits -> list[EventSpan]

:class:`SegmentStream` does the same on frames that arrive in pieces (the ingest feeds it from
the decoder as ffmpeg produces them), in memory independent of the video's length; the
whole-array :func:`segment` is a stream fed at once.

Example:
    >>> seg = segment(frames, fps=25.0)  # doctest: +SKIP
    >>> [(e.span.start_s, e.span.end_s, e.boundary) for e in seg.events]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from marc.memory.segment.activity_detector import ActivityDetector
from marc.memory.segment.detector import BoundaryDetector, check_fps, check_frames
from marc.memory.segment.events import EventSpan, check_event_lengths, tile
from marc.memory.segment.gate import ChangeGate

if TYPE_CHECKING:
    from marc.memory.segment.transnet_detector import TransNetDetector


def __getattr__(name: str) -> Any:
    # TransNetV2 needs torch, seconds to import: loaded on first use
    if name == "TransNetDetector":
        from marc.memory.segment.transnet_detector import TransNetDetector

        return TransNetDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ActivityDetector",
    "BoundaryDetector",
    "ChangeGate",
    "EventSpan",
    "SegmentStream",
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
        windows: TransNetV2's 100-frame windows in the video, ``ceil(T / 50)``.
        evaluated: how many of them ran the network (the others were gated out).
        load_seconds: time spent loading TransNetV2 (weights, runtime) during this
            segmentation; 0 when it was already loaded in the process or never needed.
    """

    fps: float
    frames: int
    cuts: list[int]
    events: list[EventSpan]
    windows: int = 0
    evaluated: int = 0
    load_seconds: float = 0.0


GATE = ChangeGate()
"""The gate segmentation uses unless told otherwise (see :mod:`.gate` for the evidence)."""


@functools.lru_cache(maxsize=8)
def _transnet(
    threshold: float, device: str, runtime: str, gate: ChangeGate | None, cache_dir: Path | None
) -> TransNetDetector:
    from marc.memory.segment.transnet_detector import TransNetDetector

    return TransNetDetector(
        threshold=threshold, device=device, runtime=runtime, gate=gate, cache_dir=cache_dir
    )


class SegmentStream:
    """Segment one video whose frames arrive in pieces.

    >>> s = SegmentStream(25.0)  # doctest: +SKIP
    >>> for piece in pieces: s.feed(piece)  # doctest: +SKIP
    >>> s.finish().events  # doctest: +SKIP

    Holds ~150 frames plus the piece being fed, and a few bytes per frame of scores.

    Args:
        fps: the video's constant frame rate.
        cut_threshold: TransNetV2 transition probability above which a frame is a transition.
        max_event_s: longest event in seconds; longer stretches are split evenly.
        min_event_s: shortest activity state, and closest an activity boundary may come to
            another boundary.
        device: torch device for TransNetV2. The detector (and its weights) is built once per
            setting and reused across calls in the process.
        runtime: TransNetV2's runtime, ``"auto"``, ``"openvino"`` or ``"torch"``.
        gate: the change gate; ``None`` runs the network on every window.
        cache_dir: where the OpenVINO runtime caches its converted model (default: the
            per-user cache).
    """

    def __init__(
        self,
        fps: float,
        *,
        cut_threshold: float = 0.5,
        max_event_s: float = 30.0,
        min_event_s: float = 2.0,
        device: str = "cpu",
        runtime: str = "auto",
        gate: ChangeGate | None = GATE,
        cache_dir: Path | None = None,
    ) -> None:
        self.fps = check_fps(fps)
        check_event_lengths(max_event_s, min_event_s)  # before minutes of inference, not after
        self.max_event_s, self.min_event_s = max_event_s, min_event_s
        start = time.perf_counter()  # the first detector of a process imports torch (~1 s)
        detector = _transnet(float(cut_threshold), str(device), runtime, gate, cache_dir)
        self.threshold = detector.threshold
        self.cuts = detector.stream()
        self.cuts.load_seconds += time.perf_counter() - start
        self.activity = ActivityDetector(min_event_s=min_event_s)
        self.energy = self.activity.stream(self.fps)
        self.frames = 0

    def feed(self, frames: np.ndarray) -> None:
        """Add the next frames, uint8 ``[N, 27, 48, 3]`` RGB."""
        frames = check_frames(frames)
        self.cuts.feed(frames)
        self.energy.feed(frames)
        self.frames += len(frames)

    def finish(self) -> Segmentation:
        """The :class:`Segmentation` of all frames fed."""
        from marc.memory.segment.transnet_detector import cuts_from_predictions

        T = self.frames
        if T == 0:
            return Segmentation(fps=self.fps, frames=0, cuts=[], events=[])
        cuts = cuts_from_predictions(self.cuts.finish(), self.threshold)
        activity = self.activity.boundaries_from_energy(self.energy.finish(), self.fps)
        events = tile(
            T,
            self.fps,
            cuts=cuts,
            activity=activity,
            max_event_s=self.max_event_s,
            min_event_s=self.min_event_s,
        )
        return Segmentation(
            fps=self.fps,
            frames=T,
            cuts=cuts,
            events=events,
            windows=self.cuts.windows,
            evaluated=self.cuts.evaluated,
            load_seconds=self.cuts.load_seconds,
        )


def segment(frames: np.ndarray, fps: float, **options: Any) -> Segmentation:
    """Segment one video into events.

    Args:
        frames: uint8 ``[T, 27, 48, 3]`` RGB, every frame of the video at rate ``fps``.
        fps: the video's constant frame rate.
        options: :class:`SegmentStream`'s keyword arguments (thresholds, event lengths,
            device, runtime, gate).

    Returns:
        The :class:`Segmentation`; ``events`` is empty only for an empty video.
    """
    frames = check_frames(frames)
    stream = SegmentStream(fps, **options)
    for a in range(0, len(frames), 1000):
        stream.feed(frames[a : a + 1000])
    return stream.finish()
