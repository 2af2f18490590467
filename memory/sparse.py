"""Sparse timelines: a file whose frames lie far apart is not expanded to constant rate.

The decode makes a video constant-rate (frame ``i`` at ``i / fps``), which repeats the frame on
screen across a pause in the recording. A motion-triggered recorder's file, or a broken one,
may hold 20 frames spread over 10 hours: 360,000 constant-rate frames of work and spill file for
nothing. So before decoding, :func:`scan` reads the presentation time of every frame from the
container (``ffmpeg -c copy``: no decoding), and a pause longer than the *gap* threshold
``G = max(GAP_S, 2 / fps)`` is shortened to ``G`` on the timeline the decode works on::

    file:        |f0 f1 f2 ..... f18|<------------- 10 h, no frame ------------->|f19|
    decoded:     |f0 f1 f2 ..... f18|<- G ->|f19|

:class:`Timeline` maps the decoded (compact) times back to the file's, so every stored time is
the file's: events still tile ``[0, duration)``, and each pause of ``GAP_S`` or more is an
event of its own (boundary ``"gap"``) with no activity, showing the frame held on screen. Work
and temporary disk are then bounded by the frames in the file: at most ``G * fps`` decoded
frames per frame in it. Should that still be more than :data:`CAP_FACTOR` times the frames (a
frame every few seconds in a 30 fps stream), ``G`` drops to two frame slots, and a warning says
so. Ordinary files have no pause of ``GAP_S`` and decode exactly as before.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from marc.memory.core.timeline import Span
from marc.memory.probe import VideoInfo, ffmpeg_command, ffmpeg_url
from marc.memory.segment import Segmentation
from marc.memory.segment.events import EventSpan

#: A pause between two frames at least this long (seconds) is a gap.
GAP_S = 10.0
#: Decoded frames allowed per frame in the file before ``G`` drops to two frame slots.
CAP_FACTOR = 20
#: ... and never fewer than this many decoded frames are allowed (short files decode as usual).
CAP_MIN_FRAMES = 10_000
_SCAN_TIMEOUT_S = 600
_TB = re.compile(r"^#tb \d+: (\d+)/(\d+)", re.M)
_NOPTS = -(2**63)  # AV_NOPTS_VALUE
_PACKET = re.compile(r"^\d+,\s*(-?\d+),\s*(-?\d+),", re.M)


def scan(info: VideoInfo) -> np.ndarray | None:
    """Presentation times (seconds on the file's timeline, sorted) of the video stream's frames,
    read from the container without decoding; ``None`` when the container does not say."""
    cmd = ffmpeg_command(
        "-i", ffmpeg_url(info.path), "-map", f"0:{info.stream}", "-c", "copy", "-f", "framecrc",
        "-",
    )  # fmt: skip
    try:
        r = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=_SCAN_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = r.stdout.decode("ascii", "replace")
    tb = _TB.search(text)
    if r.returncode != 0 or tb is None:
        return None
    base = Fraction(int(tb.group(1)), int(tb.group(2)))
    # a packet without a presentation time (AVI's packed frames) counts at its decode time
    pts = np.array(
        [int(p) if int(p) != _NOPTS else int(d) for d, p in _PACKET.findall(text)], dtype=np.int64
    )
    if len(pts) == 0 or (pts == _NOPTS).any():
        return None
    return np.sort(pts) * float(base)


@dataclass(frozen=True)
class Timeline:
    """The compact timeline a decode ran on, and the way back to the file's.

    Attributes:
        fps: the decode's constant rate.
        gap_s: ``G``: every pause longer than this was shortened to it.
        before: ``float64 [K]``: file time of the last frame before each shortened pause.
        after: ``float64 [K]``: file time of the first frame after it.
        frames: frames in the file.
    """

    fps: float
    gap_s: float
    before: np.ndarray
    after: np.ndarray
    frames: int

    @property
    def shortened(self) -> bool:
        return len(self.before) > 0

    @property
    def _shift(self) -> np.ndarray:
        """Seconds removed by the pauses up to and including each."""
        return np.cumsum(self.after - self.before - self.gap_s)

    def compact(self, t: float) -> float:
        """The compact time of file time ``t`` (``t`` not inside a shortened pause)."""
        k = int(np.searchsorted(self.after, t, side="right"))
        return t - (float(self._shift[k - 1]) if k else 0.0)

    def to_file(self, c: np.ndarray | float) -> np.ndarray:
        """File times of compact times ``c`` (increasing; a pause's ``G`` seconds run on from
        the frame before it, the pause's end is the frame after it)."""
        c = np.asarray(c, dtype=np.float64)
        if not self.shortened:
            return c
        shift = self._shift
        ends = self.after - shift  # compact time of each frame after a pause
        k = np.searchsorted(ends, c, side="right")  # pauses fully behind c
        return c + np.where(k > 0, shift[np.maximum(k - 1, 0)], 0.0)

    def setpts(self) -> tuple[str, dict[str, str]] | None:
        """The ffmpeg filter that shortens the pauses (after ``settb=AVTB``: microseconds),
        frame by frame from the previous one, as :meth:`to_file` undoes; ``None`` if none."""
        if not self.shortened:
            return None
        g = round(self.gap_s * 1e6)
        expr = f"if(isnan(PREV_INPTS),PTS,PREV_OUTPTS+min(PTS-PREV_INPTS,{g}))"
        return ("setpts", {"expr": expr})

    def pauses(self, min_s: float = GAP_S) -> list[tuple[float, float]]:
        """``[start, end)`` file times with no frame of their own, of pauses of ``min_s`` or
        more: from one frame slot after the frame before the pause to the frame after it."""
        slot = 1.0 / self.fps
        return [
            (float(b) + slot, float(a))
            for b, a in zip(self.before, self.after, strict=True)
            if a - b >= min_s and a - b > slot
        ]

    def spans(self, spans: list[Span], boundaries: list[str]) -> list[tuple[Span, str]]:
        """Compact ``spans`` (tiling, in order) on the file's timeline, each pause of
        :data:`GAP_S` or more an event of its own (boundary ``"gap"``); they still tile."""
        if not self.shortened:
            return list(zip(spans, boundaries, strict=True))
        edges = self.to_file(np.array([s.start_s for s in spans] + [spans[-1].end_s]))
        cuts: dict[float, str] = {float(e): b for e, b in zip(edges[:-1], boundaries, strict=True)}
        end = float(edges[-1])
        slot = 1.0 / self.fps
        for start, stop in self.pauses():
            inside = [t for t in cuts if start - slot / 2 < t < stop + slot / 2 and t > 0]
            for t in inside:  # the pause is one event: no other boundary within it
                del cuts[t]
            if start > slot / 2:
                cuts[start] = "gap"
            if stop < end - slot / 2:
                cuts[stop] = "gap"
        times = sorted(cuts)
        fps = spans[0].fps
        return [(Span(a, b, fps), cuts[a]) for a, b in zip(times, [*times[1:], end], strict=True)]


def timeline(info: VideoInfo, times: np.ndarray | None) -> Timeline | None:
    """The compact timeline to decode ``info``'s file on, given its frame times (:func:`scan`);
    ``None`` when it has no pause longer than ``G`` (decode it as it is)."""
    if times is None or len(times) < 2:
        return None
    fps = info.fps
    gap = max(GAP_S, 2.0 / fps)
    deltas = np.diff(times)
    if not (deltas > gap).any():
        return None
    line = _line(times, fps, gap)
    decoded = _decoded_frames(line, times)
    allowed = max(CAP_FACTOR * len(times), CAP_MIN_FRAMES)
    path = info.path
    if decoded > allowed:
        line = _line(times, fps, 2.0 / fps)
        warnings.warn(
            f"{path}: {len(times)} frames spread over {times[-1]:.0f} s would be decoded as "
            f"{decoded} constant-rate frames; pauses longer than two frames were shortened "
            f"(now {_decoded_frames(line, times)} frames)",
            stacklevel=2,
        )
    else:
        paused = float((line.after - line.before).sum())
        warnings.warn(
            f"{path}: sparse timeline, {len(times)} frames over {times[-1]:.0f} s with "
            f"{len(line.before)} pause(s) of {paused:.0f} s in all; each pause is an event "
            f"without activity, decoded as {decoded} frames instead of "
            f"{round(times[-1] * fps) + 1}",
            stacklevel=2,
        )
    return line


def _line(times: np.ndarray, fps: float, gap: float) -> Timeline:
    deltas = np.diff(times)
    at = np.flatnonzero(deltas > gap)
    return Timeline(fps, gap, times[at].copy(), times[at + 1].copy(), len(times))


def _decoded_frames(line: Timeline, times: np.ndarray) -> int:
    return round(line.compact(float(times[-1])) * line.fps) + 1


def retime_segmentation(seg: Segmentation, line: Timeline | None) -> Segmentation:
    """``seg`` (a :class:`~marc.memory.segment.Segmentation` on the compact timeline) on the
    file's timeline: events via :meth:`Timeline.spans`, cuts as the file's frame numbers."""
    if line is None or not line.shortened or not seg.events:
        return seg
    mapped = line.spans([e.span for e in seg.events], [e.boundary for e in seg.events])
    events = [EventSpan(i, span, b) for i, (span, b) in enumerate(mapped)]
    cuts = [round(float(line.to_file(c / line.fps)) * line.fps) for c in seg.cuts]
    return replace(seg, events=events, cuts=cuts)
