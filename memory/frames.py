"""Frames of one stored event, read back from its source file for a model or a person to look at.

How a time maps to a frame (the same rule as the ingest decode, :mod:`marc.memory.media`): times
are seconds on ffmpeg's timeline of the file, i.e. a frame's presentation time minus the
container's start time (what ``-ss`` seeks to and what the probe's duration counts from). The
frame *at* ``t`` is the one on screen at ``t``: the last frame whose presentation time is
``<= t`` (with :data:`PTS_SLACK_S` of slack for containers that store rounded timestamps, such as
Matroska's milliseconds), or the first frame for a ``t`` before it.

:func:`event_frames` decodes ``n`` frames at :func:`frame_times` (the centres of ``n`` equal bins
of ``[start_s, end_s)``), letterboxed to ``height x width`` so frames of videos with different
shapes can share one visual-token grid. One ffmpeg process per call: it seeks to a keyframe before
the event (so reading an event at the end of a long file does not decode the whole file), keeps
the original timestamps, and ffmpeg's ``fps`` filter, started at the first sample time with the
sampling step as its period and rounding up, keeps for each sample time the frame on screen then.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

from marc.memory.core.errors import MediaError
from marc.memory.probe import ffmpeg_command, ffmpeg_problem, ffmpeg_url

__all__ = [
    "PTS_SLACK_S",
    "at_frame_filter",
    "at_frame_filters",
    "event_frames",
    "frame_times",
    "stored_file",
]

#: A frame stamped up to this much after ``t`` still counts as on screen at ``t``: containers
#: with a millisecond time base (Matroska, WebM, FLV) round 29.97 fps frame times by up to 0.5 ms.
PTS_SLACK_S = 0.001
#: Seek this far before the first sample time (the keyframe found may be shown later than it is
#: stored, B-frame reordering), then, if the first frame decoded is still too late, further;
#: ``None``: from the start of the file.
_SEEK_MARGINS_S = (0.5, 10.0, None)


def stored_file(path: Path | str) -> Path:
    """``path`` of a stored event's video, or ``MediaError`` saying it is gone since ingest."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file (moved or deleted since it was ingested?)")
    return path


def frame_times(start_s: float, end_s: float, n: int, fps: float | None = None) -> np.ndarray:
    """The ``n`` sample times of :func:`event_frames`: the centres of ``n`` equal bins.

    With ``fps`` (the rate the ingest decoded at, ``VideoInfo.fps``) no time lies after the
    event's last frame slot ``end_s - 1 / fps``: in variable-frame-rate video the next event's
    first frame may come on screen up to one slot before ``end_s``. When the last bin centre
    would (more samples than half the event's frames), the times are spread evenly from
    ``start_s`` to that last slot instead.

    >>> frame_times(10.0, 12.0, 4).tolist()
    [10.25, 10.75, 11.25, 11.75]
    >>> frame_times(10.0, 10.16, 3, fps=25.0).round(6).tolist()
    [10.0, 10.06, 10.12]
    """
    if n < 1 or not end_s > start_s:
        raise ValueError(f"need n >= 1 and end_s > start_s, got {n}, [{start_s}, {end_s})")
    step = (end_s - start_s) / n
    times = start_s + (np.arange(n) + 0.5) * step
    last = max(start_s, end_s - 1.0 / fps) if fps else end_s
    if times[-1] > last:
        times = np.linspace(start_s, last, n) if n > 1 else np.array([last])
    return times


def at_frame_filters(start_s: float, step_s: float | Fraction) -> list[tuple[str, dict[str, str]]]:
    """ffmpeg filters (name, options) whose output frame ``k`` is the one on screen at
    ``start_s + k * step_s``.

    ``settb=AVTB`` gives microsecond timestamps, so the start is not rounded to a coarse stream
    time base (AVI's is one frame); ``setpts`` moves every frame :data:`PTS_SLACK_S` earlier;
    ``fps`` with ``round=up`` maps a frame to the first slot at or after it, so slot ``k`` gets the
    last frame at or before its time, and slots before the first frame get the first frame. The
    input must carry the file's timeline: no ``-ss``, or ``-copyts -start_at_zero``.
    """
    step = Fraction(step_s).limit_denominator(1_000_000) if isinstance(step_s, float) else step_s
    rate = 1 / step
    # whole microseconds, plus half of one: ffmpeg truncates start_time * 1e6 to an integer
    start_us = round(start_s * 1e6)
    return [
        ("settb", {"expr": "AVTB"}),
        ("setpts", {"expr": f"PTS-{round(PTS_SLACK_S * 1e6)}"}),
        (
            "fps",
            {
                "fps": f"{rate.numerator}/{rate.denominator}",
                "start_time": f"{start_us / 1e6 + 5e-7:.7f}",
                "round": "up",
            },
        ),
    ]


def at_frame_filter(start_s: float, step_s: float | Fraction) -> str:
    """The filters of :func:`at_frame_filters` as an ffmpeg ``-vf`` chain."""
    return ",".join(
        name + "=" + ":".join(f"{k}={v}" for k, v in opts.items())
        for name, opts in at_frame_filters(start_s, step_s)
    )


def event_frames(
    path: Path | str,
    start_s: float,
    end_s: float,
    n: int,
    *,
    height: int,
    width: int,
    fps: float | None = None,
) -> np.ndarray:
    """``n`` RGB frames of ``path``, those on screen at :func:`frame_times`, letterboxed.

    Args:
        path, start_s, end_s: the event (seconds on the file's timeline, as ingest stores them).
        n: frames wanted.
        height, width: the box every frame is letterboxed into.
        fps: the video's ingest frame rate (``VideoInfo.fps``); keeps every frame inside the event
            (see :func:`frame_times`), pass it whenever known.

    Returns:
        ``uint8 [n, height, width, 3]``. When the file ends before the last sample times (a
        container that overstates its duration), the last decoded frame is repeated.

    Raises:
        MediaError: the file is missing or unreadable, or has no frame in the range.
    """
    path = stored_file(path)
    times = frame_times(start_s, end_s, n, fps)
    step = (times[-1] - times[0]) / (n - 1) if n > 1 else 0.0
    if step <= 0:  # one time (n = 1, or an event one frame long): one frame, repeated
        return np.repeat(_frames(path, float(times[0]), 1.0, 1, height, width), n, axis=0)
    return _frames(path, float(times[0]), float(step), n, height, width)


def _frames(path: Path, first: float, step: float, n: int, height: int, width: int) -> np.ndarray:
    """The frames on screen at ``first + k * step``, ``k < n`` (see :func:`event_frames`).

    Seeks to a keyframe :data:`_SEEK_MARGINS_S` before ``first``. A ``select`` in front keeps
    nothing unless the first decoded frame is at or before ``first`` (the frame on screen then
    is decoded), so a seek that lands too late (MPEG-TS seeks by bytes) yields no frame, and the
    next, earlier seek is tried; the last reads from the start of the file.
    """
    scale = (
        # display aspect first (anamorphic video), then fit inside the box and pad it centred
        "scale=trunc(iw*sar/2)*2:ih,"
        f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags=bicubic,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1"
    )
    pick = at_frame_filter(first, step)
    for margin in _SEEK_MARGINS_S:
        seek = first - margin if margin is not None else 0.0
        if seek > 0:
            seek_args = ["-noaccurate_seek", "-ss", f"{seek:.6f}"]
            # the first decoded frame must be on screen at `first`: else select nothing
            check = f"select='lte(t,{first + PTS_SLACK_S:.6f})+not(isnan(prev_selected_t))',"
        else:
            seek_args, check = [], ""
        frames = _run(path, seek_args, f"{check}{pick},{scale}", n, height, width)
        if frames is not None:
            return frames
    raise MediaError(path, f"no frame at or after {first:.2f} s")


def _run(
    path: Path, seek: list[str], graph: str, n: int, height: int, width: int
) -> np.ndarray | None:
    """One ffmpeg run: up to ``n`` frames of ``graph``, ``None`` when it gives none."""
    cmd = ffmpeg_command(
        # keep the file's timestamps, less its start time (as every ffmpeg run without -ss sees
        # them), and seek without trimming: the fps filter picks the frames by their times
        "-copyts",
        "-start_at_zero",
        *seek,
        "-i",
        ffmpeg_url(path),
        "-map",
        "0:v:0",
        "-vf",
        graph,
        "-fps_mode",
        "passthrough",
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
    if proc.returncode != 0:
        raise MediaError(path, ffmpeg_problem(proc.stderr.decode(errors="replace")))
    if got == 0:
        return None
    frames = np.frombuffer(bytearray(proc.stdout), np.uint8, count=got * size)
    frames = frames.reshape(got, height, width, 3)  # writable: torch.from_numpy wants that
    if got < n:
        frames = np.concatenate([frames, np.repeat(frames[-1:], n - got, axis=0)])
    return frames
