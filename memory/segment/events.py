"""Events: the spans a video is cut into before each is embedded as one memory.

:func:`tile` combines the cues into events that tile the video exactly, in three rules applied
in order:

1. every shot cut starts an event (``"cut"``);
2. an activity change starts an event (``"activity"``) unless it is closer than
   ``min_event_s`` to a cut, to the start or end of the video, or to an activity change kept
   before it (changes are considered in time order);
3. any event longer than ``max_event_s`` is split into ``ceil(length / max_event_s)`` parts as
   equal as whole frames allow (``"length"``), so no event is longer than ``max_event_s`` plus
   one frame of rounding.

The first event starts at frame 0 (``"start"``), each next one where the previous ends, the last
ends at the video's last frame: ``events[-1].span.end_s == n_frames / fps`` exactly.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

from marc.memory.core.timeline import Span

Boundary = Literal["start", "cut", "activity", "length", "gap"]


@dataclass(frozen=True, slots=True)
class EventSpan:
    """One event of a video.

    Attributes:
        index: position of the event in its video, from 0.
        span: the frames ``[start_frame, end_frame)`` it covers, as a :class:`Span`.
        boundary: why the event starts where it does: ``"start"`` (frame 0), ``"cut"`` (a shot
            cut), ``"activity"`` (activity started or stopped), ``"length"`` (the previous
            event would have been longer than ``max_event_s``), ``"gap"`` (a pause without frames
            starts or ends: :mod:`marc.memory.sparse`).
    """

    index: int
    span: Span
    boundary: Boundary


def check_event_lengths(max_event_s: float, min_event_s: float) -> None:
    """Raise ``ValueError`` unless ``0 <= min_event_s <= max_event_s`` and ``max_event_s > 0``."""
    if not (max_event_s > 0 and 0 <= min_event_s <= max_event_s):
        raise ValueError(
            f"need 0 <= min_event_s <= max_event_s and max_event_s > 0, got "
            f"min_event_s={min_event_s!r}, max_event_s={max_event_s!r}"
        )


def _frames_in_video(name: str, frames: list[int], n_frames: int) -> list[int]:
    """Sorted distinct frames of ``frames`` inside ``(0, n_frames)``; 0 and n_frames are dropped
    (they already bound every tiling), anything outside ``[0, n_frames]`` is an error."""
    bad = [f for f in frames if not 0 <= f <= n_frames]
    if bad:
        raise ValueError(f"{name} frames must lie in [0, {n_frames}], got {bad[:5]}")
    return sorted({int(f) for f in frames if 0 < f < n_frames})


def tile(
    n_frames: int,
    fps: float,
    *,
    cuts: list[int],
    activity: list[int],
    max_event_s: float,
    min_event_s: float,
) -> list[EventSpan]:
    """Cut a video of ``n_frames`` frames into events (rules in the module docstring).

    Args:
        n_frames: frames in the video; 0 gives no events.
        fps: the video's frame rate.
        cuts: first frames of new shots (e.g. :class:`TransNetDetector` boundaries).
        activity: frames where activity starts or stops (:class:`ActivityDetector` boundaries).
        max_event_s: longest event, in seconds (> 0).
        min_event_s: activity changes closer than this to another boundary are dropped (>= 0,
            at most ``max_event_s``).

    Returns:
        Non-empty events in time order, tiling ``[0, n_frames)``.

    Example:
        >>> [(e.span.start_frame, e.boundary) for e in tile(
        ...     100, 10.0, cuts=[40], activity=[45, 70], max_event_s=3.0, min_event_s=1.0)]
        [(0, 'start'), (20, 'length'), (40, 'cut'), (70, 'activity')]
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames!r}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    check_event_lengths(max_event_s, min_event_s)
    if n_frames == 0:
        return []
    min_frames, max_frames = max(min_event_s * fps, 1), max_event_s * fps  # >= 1: no empty events

    # rules 1 and 2: cuts always; activity changes only far enough from what is already kept
    reasons: dict[int, Boundary] = {0: "start"}
    reasons.update({c: "cut" for c in _frames_in_video("cut", cuts, n_frames)})
    kept = sorted([*reasons, n_frames])  # the end fences the last event like a boundary
    for a in _frames_in_video("activity", activity, n_frames):
        i = bisect.bisect_left(kept, a)
        if a - kept[i - 1] >= min_frames and kept[i] - a >= min_frames:
            kept.insert(i, a)
            reasons[a] = "activity"

    # rule 3: split what is still too long into equal parts
    starts: list[tuple[int, Boundary]] = []
    for a, b in zip(kept[:-1], kept[1:], strict=True):
        starts.append((a, reasons[a]))
        n = b - a
        parts = min(n, math.ceil(n / max_frames - 1e-9))  # 1e-9: n == k * max is k parts
        starts += [(a + k * n // parts, "length") for k in range(1, parts)]

    ends = [s for s, _ in starts[1:]] + [n_frames]
    return [
        EventSpan(index=i, span=Span.from_frames(s, e, fps), boundary=why)
        for i, ((s, why), e) in enumerate(zip(starts, ends, strict=True))
    ]
