"""The boundary-detector interface: a third detector plugged into SegmentStream is used."""

from __future__ import annotations

import numpy as np
import pytest

from marc.memory.segment import (
    ActivityDetector,
    BoundaryDetector,
    BoundaryStream,
    SegmentStream,
    default_detectors,
    segment,
)
from marc.memory.segment.activity_detector import motion_energy


class EveryNFrames(BoundaryDetector):
    """A toy cue: a new segment every ``every`` frames, counting what its stream was fed."""

    name = "every-n"

    def __init__(self, every: int, kind: str = "cut") -> None:
        self.every, self.kind = every, kind
        self.fed: list[int] = []  # piece sizes of the last stream, as it saw them

    def stream(self, fps: float) -> BoundaryStream:
        return _EveryNStream(self)


class _EveryNStream(BoundaryStream):
    def __init__(self, detector: EveryNFrames) -> None:
        self.detector, self.n = detector, 0
        detector.fed = []

    def feed(self, frames: np.ndarray) -> None:
        self.detector.fed.append(len(frames))
        self.n += len(frames)

    def finish(self) -> list[int]:
        return list(range(self.detector.every, self.n, self.detector.every))

    def stats(self) -> dict[str, float]:
        return {"windows": 1000.0}


def still(n: int) -> np.ndarray:
    """``n`` identical frames of a fixed random picture: no cut, no activity."""
    picture = np.random.default_rng(0).integers(0, 256, (27, 48, 3), dtype=np.uint8)
    return np.repeat(picture[None], n, axis=0)


def test_a_third_detector_starts_events_through_the_stream_interface():
    fps, frames = 10.0, still(200)  # 20 s
    toy = EveryNFrames(70)
    stream = SegmentStream(fps, detectors=[*default_detectors(), toy])
    for a in range(0, 200, 33):  # pieces as a decoder hands them over
        stream.feed(frames[a : a + 33])
    seg = stream.finish()
    assert toy.fed == [33, 33, 33, 33, 33, 33, 2]  # every piece reached the toy's stream
    assert seg.boundaries == {"transnetv2": [], "activity": [], "every-n": [70, 140]}
    assert seg.cuts == [70, 140]  # a "cut" detector's boundaries are cuts
    assert [(e.span.start_frame, e.boundary) for e in seg.events] == [
        (0, "start"),
        (70, "cut"),
        (140, "cut"),
    ]
    assert seg.windows == 1000 + 4  # stats add up over the detectors: the toy's + TransNetV2's


def test_an_activity_kind_detector_obeys_min_event_s():
    fps, frames = 10.0, still(200)
    toy = EveryNFrames(15, kind="activity")  # every 1.5 s: closer than min_event_s allows
    seg = segment(frames, fps, detectors=[toy], min_event_s=2.0, max_event_s=30.0)
    assert seg.cuts == [] and seg.boundaries["every-n"][:3] == [15, 30, 45]
    kept = [e.span.start_frame for e in seg.events if e.boundary == "activity"]
    assert kept == [30, 60, 90, 120, 150, 180]  # every other one: 15 frames is too close
    assert seg.windows == 1000


def test_boundaries_is_the_stream_fed_at_once():
    frames = still(2500)
    assert EveryNFrames(1000).boundaries(frames, 25.0) == [1000, 2000]
    for t in range(1000, 1400):  # a bright square moves a pixel a frame in frames 1000-1399
        x = (t - 1000) % 42
        frames[t, 10:16, x : x + 6] = 255
    det = ActivityDetector()
    whole = det.boundaries_from_energy(motion_energy(frames, 25.0), 25.0)  # no stream
    assert det.boundaries(frames, 25.0) == whole and len(whole) == 2
    with pytest.raises(ValueError, match="uint8"):
        EveryNFrames(100).boundaries(frames.astype(np.float32), 25.0)


def test_detectors_need_a_kind_and_distinct_names():
    with pytest.raises(ValueError, match="kind"):
        SegmentStream(25.0, detectors=[EveryNFrames(10, kind="shot")])
    with pytest.raises(ValueError, match="distinct"):
        SegmentStream(25.0, detectors=[EveryNFrames(10), EveryNFrames(20)])
    with pytest.raises(TypeError):
        BoundaryDetector()  # abstract: stream() is the one method to write
