"""What ``marc serve`` shows of a video: browser-playable copies, thumbnails, the encoder's frames.

Everything here is made once, on first request, into ``MARC_HOME/serve/`` and served from there
afterwards (the cache is keyed by the catalog's ids, which change when a file's content does):

- ``video/<video id>.mp4``: a **proxy** of a video whose original a browser cannot play (the
  sample ``vtest.avi`` is MPEG-4 part 2 in AVI): H.264 in MP4, a keyframe every second so the
  player seeks quickly, ``+faststart``. Its timeline is the original's (ffmpeg's timeline of the
  file, which event seconds are on), so an event's ``start_s`` is the player's ``currentTime``.
  H.264/VP8/VP9/AV1 in MP4/MOV/WebM are served as they are: no copy.
- ``thumbs/<event id>.jpg``: the frame in the middle of an event (search results, timeline).
- ``frames/<event id>-<i>.jpg``: the ``frames_per_event`` frames at the times the encoder sampled
  the event (:meth:`~marc.memory.core.timeline.Span.sample_times`: the centres of N equal slices;
  the encoder embedded the decoded sample nearest to each).
- ``evidence/<key>/``: :func:`marc.agent.evidence.export_evidence` of one answer (the contact
  sheet).

Names under the cache are built from ids that were looked up in the catalog first and match
:data:`_SAFE_ID`; nothing a request sends becomes a path. Files are written under a temporary
name and renamed into place, so a half-written file is never served, and one lock per file keeps
two requests from making the same file twice.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from marc.memory.core.errors import MediaError
from marc.memory.frames import event_frames, stored_file
from marc.memory.probe import VideoInfo, ffmpeg_command, ffmpeg_problem, ffmpeg_url, probe

__all__ = ["MediaCache", "browser_playable"]

#: Video codecs and containers every current browser plays (Chromium, Firefox, Safari for H.264).
BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})
BROWSER_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".webm"})
#: Ids that may name a cache file (catalog ids are hex, UUIDs or ``v`` + hex).
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
THUMB_HEIGHT = 180


def browser_playable(info: VideoInfo) -> bool:
    """Whether a browser plays the file as it is (its codec and container)."""
    return info.codec in BROWSER_CODECS and Path(info.path).suffix.lower() in BROWSER_CONTAINERS


def _safe(key: str) -> str:
    if not _SAFE_ID.fullmatch(key):
        raise ValueError(f"{key!r} cannot name a cache file")
    return key


class MediaCache:
    """The files of ``MARC_HOME/serve/`` (see the module docstring)."""

    def __init__(self, home: Path) -> None:
        self.root = Path(home) / "serve"
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}

    # ------------------------------------------------------------------------------- helpers
    def _path(self, kind: str, name: str) -> Path:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    @contextmanager
    def _making(self, final: Path) -> Iterator[bool]:
        """Hold ``final``'s lock; yields whether it still has to be made."""
        with self._guard:
            lock = self._locks.setdefault(final, threading.Lock())
        with lock:
            yield not final.is_file()

    @staticmethod
    @contextmanager
    def _atomic(final: Path) -> Iterator[Path]:
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part{final.suffix}")
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    # --------------------------------------------------------------------------------- video
    def playable(self, video_id: str, path: str) -> Path:
        """The file to send for video ``video_id`` stored at ``path``: the original if a browser
        plays it, else its proxy (made now if it is not cached yet).

        Raises:
            MediaError: the file is gone or ffmpeg cannot read it (one line naming it).
        """
        info = probe(stored_file(path))
        if browser_playable(info):
            return info.path
        final = self._path("video", f"{_safe(video_id)}.mp4")
        with self._making(final) as todo:
            if todo:
                self._transcode(info, final)
        return final

    def _transcode(self, info: VideoInfo, final: Path) -> None:
        gop = max(1, round(info.fps or 25))  # one keyframe a second: seeking is quick
        even = "scale=trunc(iw/2)*2:trunc(ih/2)*2"  # yuv420p wants even sizes
        args = ["-y", "-i", ffmpeg_url(info.path), "-map", f"0:{info.stream}", "-map", "0:a:0?"]
        args += ["-vf", even, "-c:v", "libx264", "-preset", "veryfast", "-crf", "26"]
        args += ["-pix_fmt", "yuv420p", "-g", str(gop), "-c:a", "aac", "-movflags", "+faststart"]
        with self._atomic(final) as tmp:
            proc = subprocess.run(
                [*ffmpeg_command(*args), "-f", "mp4", ffmpeg_url(tmp)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
            if proc.returncode:
                problem = ffmpeg_problem(proc.stderr.decode(errors="replace"))
                raise MediaError(info.path, f"cannot make a browser-playable copy: {problem}")

    # ---------------------------------------------------------------------------- pictures
    def thumbnail(self, event_id: str, path: str, start_s: float, end_s: float, fps, size) -> Path:
        """The JPEG of the frame in the middle of the event (``size``: the video's width,
        height)."""
        final = self._path("thumbs", f"{_safe(event_id)}.jpg")
        with self._making(final) as todo:
            if todo:
                height, width = THUMB_HEIGHT, _width(size)
                (frame,) = event_frames(
                    path, start_s, end_s, 1, height=height, width=width, fps=fps
                )
                self._jpeg(frame, final)
        return final

    def encoder_frames(
        self, event_id: str, path: str, start_s: float, end_s: float, n: int, size
    ) -> list[Path]:
        """The ``n`` frames at the encoder's sample times, as JPEGs."""
        names = [self._path("frames", f"{_safe(event_id)}-{i}.jpg") for i in range(n)]
        with self._making(names[-1]) as todo:
            if todo or not all(p.is_file() for p in names):
                # no fps: the times are exactly Span.sample_times(n), as the encoder's
                frames = event_frames(
                    path, start_s, end_s, n, height=THUMB_HEIGHT, width=_width(size)
                )
                for frame, final in zip(frames, names, strict=True):
                    self._jpeg(frame, final)
        return names

    def _jpeg(self, frame, final: Path) -> None:
        with self._atomic(final) as tmp:
            Image.fromarray(frame).save(tmp, format="JPEG", quality=85)

    # ----------------------------------------------------------------------------- evidence
    def evidence_dir(self, *key: str) -> Path:
        """The folder an answer's evidence is exported into (named by a hash of ``key``)."""
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:32]
        return self._path("evidence", digest)

    @contextmanager
    def lock(self, final: Path) -> Iterator[bool]:
        """Public form of the per-file lock (for files made by others, e.g. the evidence)."""
        with self._making(final) as todo:
            yield todo


def _width(size: tuple[int | None, int | None]) -> int:
    w, h = size
    if not w or not h:
        return round(THUMB_HEIGHT * 4 / 3 / 2) * 2
    return max(2, round(THUMB_HEIGHT * w / h / 2) * 2)
