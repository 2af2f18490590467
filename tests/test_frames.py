"""Which source frame MARC shows for a time: event_frames and the ingest decode, pixel-checked.

Every test video here is generated with its frame index written into the pixels: ten big
black/white blocks (two rows of five, the top two thirds of the picture) are the bits of the
index, which survive H.264 and any scaling. The truth for a time ``t`` is the frame on screen at
``t``: the last frame whose presentation time (ffmpeg's timeline: container start time
subtracted) is ``<= t``, read from ffmpeg's own ``showinfo`` of the file.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from marc.memory.frames import PTS_SLACK_S, event_frames, frame_times
from marc.memory.media import decode, ffmpeg_exe
from marc.memory.probe import probe

#: ffmpeg's geq expression of the bar code: bit b of the frame index N in block (b // 5, b % 5).
BARCODE = (
    "geq=lum='if(lt(Y,H*2/3),if(bitand(N,pow(2,floor(X*5/W)+5*floor(Y*3/H))),235,16),128)'"
    ":cb=128:cr=128"
)


def read_index(frame: np.ndarray, src_wh: tuple[int, int] | None = None) -> int:
    """The frame index a bar-code frame shows (``src_wh``: undo a letterbox of that aspect)."""
    h, w = frame.shape[:2]
    x0, y0, cw, ch = 0, 0, w, h
    if src_wh is not None:  # the picture inside the box, as event_frames centres it
        scale = min(w / src_wh[0], h / src_wh[1])
        cw, ch = src_wh[0] * scale, src_wh[1] * scale
        x0, y0 = (w - cw) / 2, (h - ch) / 2
    luma = frame.astype(float).mean(axis=2)
    bits = 0
    for b in range(10):
        cx, cy = x0 + (b % 5 + 0.5) * cw / 5, y0 + (b // 5 + 0.5) * ch / 3
        patch = luma[
            int(cy - ch / 12) : int(cy + ch / 12) + 1, int(cx - cw / 20) : int(cx + cw / 20) + 1
        ]
        bits |= int(patch.mean() > 128) << b
    return bits


def timeline(path: Path) -> np.ndarray:
    """Presentation times of all frames of ``path`` on ffmpeg's timeline, in order."""
    r = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
         "-vf", "showinfo", "-fps_mode", "passthrough", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return np.array([float(t) for t in re.findall(r"pts_time:(\S+)", r.stderr)])


def on_screen(pts: np.ndarray, t: float) -> int:
    """The frame on screen at ``t``: the last one at or before it (the first before any)."""
    return max(int(np.searchsorted(pts, t + PTS_SLACK_S, side="right")) - 1, 0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, run_ffmpeg) -> dict[str, Path]:
    """Bar-code videos: 25 fps and 29.97 fps H.264 with B-frames and a 10 s GOP, variable frame
    rate in Matroska (millisecond stamps) and MP4, MPEG-TS (starts at 1.4 s)."""
    d = tmp_path_factory.mktemp("barcode")
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    long_gop = ["-g", "250", "-keyint_min", "250", "-sc_threshold", "0", "-bf", "3"]
    out = {}

    def make(name: str, rate: str, seconds: int, *extra: str) -> None:
        src = f"color=c=gray:s=160x90:r={rate}:d={seconds},format=yuv420p,{BARCODE}"
        run_ffmpeg("-f", "lavfi", "-i", src, *extra, d / name)
        out[name] = d / name

    make("cfr25.mp4", "25", 30, *x264, *long_gop)
    make("ntsc.mp4", "30000/1001", 20, *x264, *long_gop)
    # variable rate: frame N at (40 N + 15 (N mod 2) + 3 (N mod 5)) ms, steps of 13..67 ms
    vfr = ["-vf", "setpts='(40*N+15*mod(N,2)+3*mod(N,5))/1000/TB'", "-fps_mode", "vfr"]
    make("vfr.mkv", "25", 20, *vfr, *x264, "-g", "100")
    make("vfr.mp4", "25", 20, *vfr, *x264, "-g", "100", "-video_track_timescale", "90000")
    make("start.ts", "25", 12, *x264, "-g", "50")
    return out


def test_bar_code_reads_back(videos):
    pts = timeline(videos["cfr25.mp4"])
    assert len(pts) == 750 and pts[0] == 0.0
    frames = event_frames(videos["cfr25.mp4"], 0.0, 0.4, 10, height=90, width=160)
    assert [read_index(f) for f in frames] == list(range(10))  # 10 bins of one frame each


CASES = [  # (video, start_s, end_s, n): mid-GOP, at a keyframe, the file start, dense, one frame
    ("cfr25.mp4", 12.1, 29.5, 4),
    ("cfr25.mp4", 12.1, 17.5, 5),
    ("cfr25.mp4", 10.0, 10.9, 8),
    ("cfr25.mp4", 0.0, 1.3, 3),
    ("cfr25.mp4", 25.3, 25.7, 16),
    ("cfr25.mp4", 19.96, 20.0, 2),
    ("ntsc.mp4", 3.1, 9.9, 6),
    ("ntsc.mp4", 10.01, 10.7, 12),
    ("ntsc.mp4", 18.0, 19.9, 7),
    ("vfr.mkv", 2.0, 7.7, 9),
    ("vfr.mkv", 11.003, 11.6, 14),
    ("vfr.mp4", 2.0, 7.7, 9),
    ("vfr.mp4", 13.37, 13.9, 20),
    ("start.ts", 0.0, 2.0, 5),
    ("start.ts", 7.3, 11.9, 6),
]


@pytest.mark.parametrize(("name", "start", "end", "n"), CASES)
def test_event_frames_are_the_frames_on_screen_at_their_times(videos, name, start, end, n):
    path = videos[name]
    pts, fps = timeline(path), probe(path).fps
    for rate in (None, fps):
        frames = event_frames(path, start, end, n, height=90, width=160, fps=rate)
        got = [read_index(f) for f in frames]
        want = [on_screen(pts, t) for t in frame_times(start, end, n, rate)]
        assert got == want, (name, rate)
    # with the rate, every frame lies inside the event: shown at or after start, gone by end
    inside = [i for i in got if on_screen(pts, start) <= i and pts[i] < end - PTS_SLACK_S]
    assert inside == got


def test_ingest_frame_i_is_the_frame_on_screen_at_i_over_fps(videos):
    """An event's start_s from ingest (k / fps) names the frame event_frames reads there."""
    for name in ("cfr25.mp4", "ntsc.mp4", "vfr.mkv", "vfr.mp4", "start.ts"):
        path = videos[name]
        pts = timeline(path)
        with decode(path, image_size=32) as d:
            small = [read_index(f) for f in d.small]
            want = [on_screen(pts, i / d.fps) for i in range(d.frames)]
            assert small == want, name
            for k in (1, d.frames // 3, d.frames - 3):  # the first frame of an event at k / fps
                start = k / d.fps
                first = event_frames(path, start, start + 2 / d.fps, 3, height=90, width=160,
                                     fps=d.fps)[0]  # fmt: skip
                assert read_index(first) == small[k], (name, k)


@pytest.mark.slow
def test_seeking_keeps_late_events_cheap(run_ffmpeg, tmp_path):
    """Reading an event at the end of a long file decodes from a keyframe near it, not the file."""
    long = tmp_path / "long.mp4"
    src = f"color=c=gray:s=160x90:r=5:d=1000,format=yuv420p,{BARCODE}"
    run_ffmpeg("-f", "lavfi", "-i", src, "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
               long)  # fmt: skip
    times = frame_times(990.0, 998.0, 8)
    t0 = time.perf_counter()
    frames = event_frames(long, 990.0, 998.0, 8, height=90, width=160)
    took = time.perf_counter() - t0
    # 5 fps from 0: frame floor(5 t), its index mod 1024 in the bar code
    assert [read_index(f) for f in frames] == [int(5 * t) % 1024 for t in times]
    t0 = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-nostdin", "-i", str(long), "-f", "null", "-"],
                   capture_output=True, check=True)  # fmt: skip
    assert took < (time.perf_counter() - t0) / 3  # far less than decoding the whole file
