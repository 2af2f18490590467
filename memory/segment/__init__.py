"""Event segmentation: one video's tiny frames in, the events that tile it out.

    frames (uint8 [T, 27, 48, 3], every frame at ``fps``)
      -> detectors, each a BoundaryDetector whose stream is fed every piece (default:)
           TransNetDetector, kind "cut":       shot cuts (TransNetV2, shipped weights; the
                                               ChangeGate skips windows where nothing changes)
           ActivityDetector, kind "activity":  activity changes (motion energy + hysteresis)
      -> events.tile: cuts, then activity, then max-length splits -> list[EventSpan]

:class:`SegmentStream` runs it on frames that arrive in pieces (the ingest feeds it from the
decoder as ffmpeg produces them), in memory independent of the video's length; the whole-array
:func:`segment` is a stream fed at once. Adding a cue is one file: a :class:`BoundaryDetector`
subclass with a ``kind`` and a :class:`BoundaryStream` (see :mod:`.detector`), passed in
``SegmentStream(fps, detectors=[*default_detectors(), mine])``.

Example:
    >>> seg = segment(frames, fps=25.0)  # doctest: +SKIP
    >>> [(e.span.start_s, e.span.end_s, e.boundary) for e in seg.events]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from marc.memory.segment.activity_detector import ActivityDetector
from marc.memory.segment.detector import (
    KINDS,
    BoundaryDetector,
    BoundaryStream,
    check_fps,
    check_frames,
)
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
    "BoundaryStream",
    "ChangeGate",
    "EventSpan",
    "SegmentStream",
    "Segmentation",
    "TransNetDetector",
    "default_detectors",
    "segment",
    "tile",
]


@dataclass
class Segmentation:
    """The segmentation of one video.

    Attributes:
        fps: the video's frame rate.
        frames: number of frames ``T``.
        cuts: boundaries of the ``"cut"`` detectors (by default TransNetV2's shot cuts: the
            first frame of each new shot), sorted.
        events: events tiling ``[0, T)`` in time order.
        windows: TransNetV2's 100-frame windows in the video, ``ceil(T / 50)``.
        evaluated: how many of them ran the network (the others were gated out).
        load_seconds: time spent loading TransNetV2 (weights, runtime) during this
            segmentation; 0 when it was already loaded in the process or never needed.
        boundaries: every detector's boundaries, by detector name (before :func:`tile`).
    """

    fps: float
    frames: int
    cuts: list[int]
    events: list[EventSpan]
    windows: int = 0
    evaluated: int = 0
    load_seconds: float = 0.0
    boundaries: dict[str, list[int]] = field(default_factory=dict)


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


def default_detectors(
    *,
    cut_threshold: float = 0.5,
    min_event_s: float = 2.0,
    device: str = "cpu",
    runtime: str = "auto",
    gate: ChangeGate | None = GATE,
    cache_dir: Path | None = None,
) -> list[BoundaryDetector]:
    """The detectors segmentation runs unless told otherwise: TransNetV2 cuts, then activity.

    Args:
        cut_threshold: TransNetV2 transition probability above which a frame is a transition.
        min_event_s: shortest activity state.
        device: torch device for TransNetV2. The detector (and its weights) is built once per
            setting and reused across calls in the process.
        runtime: TransNetV2's runtime, ``"auto"``, ``"openvino"`` or ``"torch"``.
        gate: the change gate; ``None`` runs the network on every window.
        cache_dir: where the OpenVINO runtime caches its converted model (default: the
            per-user cache).
    """
    cuts = _transnet(float(cut_threshold), str(device), runtime, gate, cache_dir)
    return [cuts, ActivityDetector(min_event_s=min_event_s)]


class SegmentStream:
    """Segment one video whose frames arrive in pieces.

    >>> s = SegmentStream(25.0)  # doctest: +SKIP
    >>> for piece in pieces: s.feed(piece)  # doctest: +SKIP
    >>> s.finish().events  # doctest: +SKIP

    Every detector gets every piece through its :class:`~.detector.BoundaryStream`; at the end
    the boundaries of the ``"cut"`` detectors and of the ``"activity"`` ones go to :func:`tile`.
    With the default detectors it holds ~150 frames plus the piece being fed, and a few bytes
    per frame of scores.

    Args:
        fps: the video's constant frame rate.
        detectors: the :class:`BoundaryDetector` s to run, with distinct names; ``None``: the
            :func:`default_detectors` built from the keyword arguments below (which are then
            unused but for ``max_event_s`` and ``min_event_s``).
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
        detectors: Sequence[BoundaryDetector] | None = None,
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
        start = time.perf_counter()  # the first TransNetV2 of a process imports torch (~1 s)
        if detectors is None:
            detectors = default_detectors(
                cut_threshold=cut_threshold,
                min_event_s=min_event_s,
                device=device,
                runtime=runtime,
                gate=gate,
                cache_dir=cache_dir,
            )
        self.build_seconds = time.perf_counter() - start  # counted in load_seconds
        self.detectors = list(detectors)
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be distinct, got {names}")
        for d in self.detectors:
            kind = getattr(d, "kind", None)
            if kind not in KINDS:
                raise ValueError(f"{d!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.streams = [d.stream(self.fps) for d in self.detectors]
        self.frames = 0

    def feed(self, frames: np.ndarray) -> None:
        """Add the next frames, uint8 ``[N, 27, 48, 3]`` RGB."""
        frames = check_frames(frames)
        for s in self.streams:
            s.feed(frames)
        self.frames += len(frames)

    def finish(self) -> Segmentation:
        """The :class:`Segmentation` of all frames fed."""
        T = self.frames
        if T == 0:
            return Segmentation(fps=self.fps, frames=0, cuts=[], events=[])
        found = {d.name: s.finish() for d, s in zip(self.detectors, self.streams, strict=True)}
        by_kind: dict[str, set[int]] = {k: set() for k in KINDS}
        stats: dict[str, float] = {"load_seconds": self.build_seconds}
        for d, s in zip(self.detectors, self.streams, strict=True):
            by_kind[d.kind].update(found[d.name])
            for key, value in s.stats().items():
                stats[key] = stats.get(key, 0) + value
        cuts = sorted(by_kind["cut"])
        events = tile(
            T,
            self.fps,
            cuts=cuts,
            activity=sorted(by_kind["activity"]),
            max_event_s=self.max_event_s,
            min_event_s=self.min_event_s,
        )
        return Segmentation(
            fps=self.fps,
            frames=T,
            cuts=cuts,
            events=events,
            windows=int(stats.get("windows", 0)),
            evaluated=int(stats.get("evaluated", 0)),
            load_seconds=float(stats["load_seconds"]),
            boundaries=found,
        )


def segment(frames: np.ndarray, fps: float, **options: Any) -> Segmentation:
    """Segment one video into events.

    Args:
        frames: uint8 ``[T, 27, 48, 3]`` RGB, every frame of the video at rate ``fps``.
        fps: the video's constant frame rate.
        options: :class:`SegmentStream`'s keyword arguments (detectors, thresholds, event
            lengths, device, runtime, gate).

    Returns:
        The :class:`Segmentation`; ``events`` is empty only for an empty video.
    """
    frames = check_frames(frames)
    stream = SegmentStream(fps, **options)
    for a in range(0, len(frames), 1000):
        stream.feed(frames[a : a + 1000])
    return stream.finish()
