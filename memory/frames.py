"""Frames of one stored event, read back from its source file for a model or a person to look at.

:func:`event_frames` decodes ``n`` frames spread evenly over ``[start_s, end_s)`` of a video (the
centres of ``n`` equal bins), letterboxed to ``height x width`` so frames of videos with different
shapes can share one visual-token grid. One ffmpeg process per call, seeking straight to the event.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from marc.memory.core.errors import MediaError
from marc.memory.probe import ffmpeg_command, ffmpeg_problem, ffmpeg_url

__all__ = ["event_frames", "frame_times", "stored_file"]


def stored_file(path: Path | str) -> Path:
    """``path`` of a stored event's video, or ``MediaError`` saying it is gone since ingest."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file (moved or deleted since it was ingested?)")
    return path


def frame_times(start_s: float, end_s: float, n: int) -> np.ndarray:
    """The ``n`` sample times of :func:`event_frames`: the centres of ``n`` equal bins.

    >>> frame_times(10.0, 12.0, 4).tolist()
    [10.25, 10.75, 11.25, 11.75]
    """
    if n < 1 or not end_s > start_s:
        raise ValueError(f"need n >= 1 and end_s > start_s, got {n}, [{start_s}, {end_s})")
    step = (end_s - start_s) / n
    return start_s + (np.arange(n) + 0.5) * step


def event_frames(
    path: Path | str, start_s: float, end_s: float, n: int, *, height: int, width: int
) -> np.ndarray:
    """``n`` RGB frames of ``path`` at :func:`frame_times`, letterboxed to ``height x width``.

    Returns:
        ``uint8 [n, height, width, 3]``. When the file ends before the last sample times (a
        container that overstates its duration), the last decoded frame is repeated.

    Raises:
        MediaError: the file is missing or unreadable, or has no frame in the range.
    """
    path = stored_file(path)
    times = frame_times(start_s, end_s, n)
    rate = n / (end_s - start_s)
    scale = (
        # display aspect first (anamorphic video), then fit inside the box and pad it centred
        "scale=trunc(iw*sar/2)*2:ih,"
        f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags=bicubic,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1"
    )
    cmd = ffmpeg_command(
        "-ss",
        f"{times[0]:.6f}",
        "-i",
        ffmpeg_url(path),
        "-map",
        "0:v:0",
        "-vf",
        f"fps={rate:.9f},{scale}",
        "-frames:v",
        str(n),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    )
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    size = height * width * 3
    got = len(proc.stdout) // size
    if proc.returncode != 0 or got == 0:
        problem = ffmpeg_problem(proc.stderr.decode(errors="replace")) if proc.returncode else ""
        raise MediaError(path, problem or f"no frame between {start_s:.2f} s and {end_s:.2f} s")
    frames = np.frombuffer(bytearray(proc.stdout), np.uint8, count=got * size)
    frames = frames.reshape(got, height, width, 3)  # writable: torch.from_numpy wants that
    if got < n:
        frames = np.concatenate([frames, np.repeat(frames[-1:], n - got, axis=0)])
    return frames
