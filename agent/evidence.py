"""The evidence behind an answer, exported for a person: ``marc ask ... --evidence DIR``.

:func:`export_evidence` writes, for the events an answer cites
(:class:`~marc.memory.core.events.EventRef`):

- ``contact-sheet.png``: one row per event, a label strip (rank, file name, camera, time range,
  wall-clock start, score) over ``frames_per_event`` frames with each frame's time stamp drawn on.
  An event whose source file is missing or unreadable gets a red ``missing: <problem>`` row.
- one MP4 clip per event, cut from the source file: ``01-lobby_cam-1a2b3c4d.mp4`` (rank, a slug of
  the video's stem, the event id's first characters). H.264/HEVC/MPEG-4/AV1/VP9 video is stream
  copied (``-c copy``): no quality loss, but the clip starts at the keyframe *before* the event
  start, so it may begin up to one keyframe interval early. Other codecs, or a copy that fails,
  are re-encoded to H.264 and start exactly on time.
- ``frames/``: given the answer path's :class:`~marc.compression.vlm.Sampled` frames (what
  ``marc ask`` passes), every frame the answer model read, one lossless PNG each, exactly the
  pixels fed to the vision tower: ``07-<event id>-12.300s.png`` (the frame's place in the model
  input, the event, its time in seconds in the video). PNGs of an earlier export there are
  removed first.

File names are built from sanitised slugs only, so whatever the videos are called (``..``,
``../../etc/passwd.mp4``, newlines, unicode) every file lands directly inside ``DIR``. Files are
written under a temporary name and renamed into place: an interrupted export never leaves a half
file under a final name, and a file of the same name from an earlier export is replaced.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from marc.memory.core.errors import MediaError, one_line
from marc.memory.core.events import EventRef
from marc.memory.core.timeline import format_seconds
from marc.memory.frames import event_frames, frame_times, stored_file
from marc.memory.probe import VideoInfo, ffmpeg_command, ffmpeg_problem, ffmpeg_url, probe

if TYPE_CHECKING:
    from marc.compression.vlm.answerer import Sampled

__all__ = ["Evidence", "EvidenceItem", "export_evidence"]

SHEET_NAME = "contact-sheet.png"
FRAMES_DIR = "frames"
#: Names of the frame PNGs this module writes (and removes before writing new ones).
_FRAME_NAME = re.compile(r"^\d+-[A-Za-z0-9._-]*-\d+\.\d{3}s\.png$")
#: Video codecs the MP4 muxer takes as they are, so a clip can be cut without re-encoding.
_MP4_COPY_CODECS = frozenset({"h264", "hevc", "mpeg4", "av1", "vp9"})
_GAP = 6  # pixels between thumbnails and around rows
_MIN_SHEET_WIDTH = 640
_BG, _STRIP, _INK, _RED = (255, 255, 255), (232, 232, 232), (0, 0, 0), (200, 0, 0)


@dataclass
class EvidenceItem:
    """One cited event's exported files.

    Attributes:
        event: the event, as cited.
        clip: the MP4 cut from the source, ``None`` when the source could not be read.
        frames: frames drawn on the contact sheet for it (0 when missing).
        problem: why the event is (partly) missing, one line naming the file; ``None`` if none.
        stream_copy: the clip was cut with ``-c copy`` (may start at an earlier keyframe);
            ``False`` when it was re-encoded (or not written).
    """

    event: EventRef
    clip: Path | None = None
    frames: int = 0
    problem: str | None = None
    stream_copy: bool = False


@dataclass
class ModelFrame:
    """One frame the answer model read, as written: the PNG, its event and time in the video."""

    file: Path
    id: str
    video: str
    time_s: float


@dataclass
class Evidence:
    """What :func:`export_evidence` wrote: the folder, the contact sheet and one item per event."""

    dir: Path
    sheet: Path | None
    items: list[EvidenceItem]
    frames: list[ModelFrame] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: ``{"dir", "sheet", "items": [{"id", "video", "clip", ...}],
        "frames": [{"file", "id", "video", "time_s"}]}``."""
        return {
            "dir": str(self.dir),
            "sheet": None if self.sheet is None else str(self.sheet),
            "frames": [
                {"file": str(f.file), "id": f.id, "video": f.video, "time_s": f.time_s}
                for f in self.frames
            ],
            "items": [
                {
                    "id": it.event.id,
                    "video": it.event.video,
                    "clip": None if it.clip is None else str(it.clip),
                    "problem": it.problem,
                    "stream_copy": it.stream_copy,
                }
                for it in self.items
            ],
        }


def export_evidence(
    hits: Sequence[EventRef],
    out_dir: Path | str,
    *,
    frames_per_event: int = 4,
    thumb_height: int = 180,
    model_frames: Sampled | None = None,
) -> Evidence:
    """Write the contact sheet and one clip per hit into ``out_dir`` (created if needed).

    Args:
        hits: the cited events, best first (``start_at`` and ``score`` are drawn when set).
        out_dir: the evidence folder; nothing is written outside it.
        frames_per_event: frames per event on the contact sheet.
        thumb_height: height of those frames in pixels (width follows the video's aspect).
        model_frames: the frames the answer model read (a :class:`~marc.compression.vlm.Sampled`:
            ``events``, ``frames``, ``times``), written to ``frames/``; ``None``: none.

    Returns:
        The files written. An event whose source is missing or unreadable does not raise: its
        item has ``clip=None`` and a ``problem``, and its sheet row says so.

    Raises:
        ValueError: ``hits`` is empty, or ``frames_per_event``/``thumb_height`` is too small.
    """
    if not hits:
        raise ValueError("no evidence to export: the answer cites no events")
    if frames_per_event < 1 or thumb_height < 16:
        raise ValueError(
            f"need frames_per_event >= 1 and thumb_height >= 16, got "
            f"{frames_per_event} and {thumb_height}"
        )
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    items: list[EvidenceItem] = []
    rows: list[tuple[str, Image.Image | str]] = []  # (label, frames strip or "missing" text)
    for rank, hit in enumerate(hits, 1):
        item = EvidenceItem(hit)
        items.append(item)
        strip: Image.Image | str
        try:
            info = _source(Path(hit.video))
            clip = _inside(root, f"{rank:02d}-{_slug(hit.video)}-{_short_id(hit.id)}.mp4")
            item.stream_copy = _cut(info, hit.start_s, hit.end_s, clip)
            item.clip = clip
            strip = _frames_strip(info, hit, frames_per_event, thumb_height)
            item.frames = frames_per_event
        except (MediaError, ValueError, OSError, subprocess.SubprocessError) as e:
            item.problem = one_line(e)  # names the file: MediaError is "<path>: <problem>"
            strip = f"missing: {item.problem}"
        rows.append((_label(rank, hit), strip))
    sheet = _inside(root, SHEET_NAME)
    with _atomic(sheet) as tmp:
        _draw_sheet(rows, thumb_height).save(tmp, format="PNG")
    frames = _write_model_frames(root, model_frames) if model_frames is not None else []
    return Evidence(root, sheet, items, frames)


def _write_model_frames(root: Path, sampled: Sampled) -> list[ModelFrame]:
    """Every frame of ``sampled`` as ``frames/NN-<event id>-<t>s.png``, in model-input order."""
    folder = _inside(root, FRAMES_DIR)
    if folder.is_symlink():  # never write through a link planted there
        folder.unlink()
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():  # an earlier answer's frames would pass for this one's
        if _FRAME_NAME.match(old.name) and old.is_file() and not old.is_symlink():
            old.unlink()
    total = sum(len(f) for f in sampled.frames)
    digits = max(2, len(str(total)))
    out: list[ModelFrame] = []
    for event, frames, times in zip(sampled.events, sampled.frames, sampled.times, strict=True):
        event_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(event.id)).lstrip("._-")[:80] or "event"
        for frame, t in zip(frames, times, strict=True):
            name = f"{len(out):0{digits}d}-{event_id}-{float(t):.3f}s.png"
            path = _inside(folder, name)
            with _atomic(path) as tmp:
                Image.fromarray(np.ascontiguousarray(frame)).save(tmp, format="PNG")
            out.append(ModelFrame(path, str(event.id), str(event.video), float(t)))
    return out


# ------------------------------------------------------------------------------------- names
def _slug(video: str, limit: int = 40) -> str:
    """A file-name-safe ASCII slug of ``video``'s stem: never empty, never a dot file.

    >>> _slug("/footage/Lobby Cam/2024-01-31 18:00.mp4"), _slug("../../etc/passwd.mp4"), _slug("..")
    ('2024-01-31_18_00', 'passwd', 'video')
    """
    stem = PurePath(video.replace("\\", "/")).stem  # ".." stays "..", stripped below
    ascii_ = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_)[:limit].lstrip("._-").rstrip("._-")
    return slug or "video"


def _short_id(event_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", event_id)[:8] or "event"


def _inside(root: Path, name: str) -> Path:
    """``root / name``, checked to be a direct child of ``root`` (an already resolved folder).

    Only the folder is resolved: a symlink already sitting at the final name is replaced by the
    rename, never written through.
    """
    path = root / name
    if path.parent != root or path.name != name or name.startswith("."):
        raise AssertionError(f"evidence file name {name!r} escapes {root}")
    return path


@contextmanager
def _atomic(final: Path) -> Iterator[Path]:
    """A temporary path next to ``final``, renamed onto it if the block succeeds, else removed."""
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


# -------------------------------------------------------------------------------------- clips
def _source(path: Path) -> VideoInfo:
    return probe(stored_file(path))


def _write_clip(source: Path, args: list[str], final: Path) -> None:
    """Run ffmpeg into a temporary MP4 renamed to ``final``.

    Raises:
        MediaError: naming ``source``, when ffmpeg fails or writes no readable video (an empty
            range, a raw elementary stream that cannot be seeked).
    """
    cmd = ffmpeg_command("-y", *args)
    with _atomic(final) as tmp:
        proc = subprocess.run(
            [*cmd, "-f", "mp4", ffmpeg_url(tmp)], stdin=subprocess.DEVNULL, capture_output=True
        )
        if proc.returncode:
            problem = ffmpeg_problem(proc.stderr.decode(errors="replace"))
            raise MediaError(source, f"cannot cut a clip: {problem}")
        try:
            ok = probe(tmp).duration_s > 0
        except MediaError as e:
            raise MediaError(source, f"the cut clip is empty or unreadable ({e.problem})") from None
        if not ok:
            raise MediaError(source, "the cut clip is empty (no duration)")


def _cut(info: VideoInfo, start_s: float, end_s: float, final: Path) -> bool:
    """Cut ``[start_s, end_s)`` of ``info.path`` into ``final``; True if it was stream copied.

    A stream copy starts at the keyframe at or before ``start_s`` (``-avoid_negative_ts
    make_zero`` keeps those lead-in frames), so it may begin up to one keyframe interval early.
    """
    start = max(start_s, 0.0)
    if not end_s > start:
        raise ValueError(f"{info.path}: empty time range [{start_s}, {end_s})")
    if info.duration_s and start >= info.duration_s:  # a copy would cut the file's last GOP
        raise MediaError(
            info.path,
            f"the event starts at {start:.2f} s, after the end of the file ({info.duration_s:.2f}"
            " s): was the file replaced since it was ingested?",
        )
    head = ["-ss", f"{start:.6f}", "-i", ffmpeg_url(info.path), "-t", f"{end_s - start:.6f}"]
    head += ["-map", f"0:{info.stream}", "-map", "0:a?"]
    tail = ["-movflags", "+faststart"]
    if info.codec in _MP4_COPY_CODECS:
        try:
            _write_clip(
                info.path, [*head, "-c", "copy", "-avoid_negative_ts", "make_zero", *tail], final
            )
            return True
        except MediaError:
            pass  # e.g. an audio codec MP4 does not take, or a stream without timestamps
    even = "scale=trunc(iw/2)*2:trunc(ih/2)*2"  # libx264 with yuv420p wants even sizes
    encode = ["-vf", even, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
    encode += ["-pix_fmt", "yuv420p", "-c:a", "aac"]
    _write_clip(info.path, [*head, *encode, *tail], final)
    return False


# ------------------------------------------------------------------------------ contact sheet
def _clock(at: datetime) -> str:
    """Wall-clock ``HH:MM:SS.s``, rounded to 0.1 s like :func:`format_seconds`."""
    at += timedelta(milliseconds=50)
    return f"{at:%H:%M:%S}.{at.microsecond // 100_000}"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _label(rank: int, hit: EventRef) -> str:
    parts = [f"#{rank}", PurePath(hit.video).name, hit.camera]
    # an ASCII dash: the default font has no en dash
    parts.append(f"{format_seconds(hit.start_s)} - {format_seconds(hit.end_s)}")
    start_at = hit.start_at
    if start_at is not None:
        parts.append(f"{start_at:%Y-%m-%d} {_clock(start_at)} {start_at.tzname() or ''}".rstrip())
    if hit.score is not None:
        parts.append(f"score {hit.score:.3f}")
    return _printable("  ".join(p for p in parts if p))


def _frames_strip(info: VideoInfo, hit: EventRef, n: int, height: int) -> Image.Image:
    """``n`` frames of the event side by side, each with its file time (and wall clock) on it."""
    start, end = max(hit.start_s, 0.0), hit.end_s
    width = max(2, round(height * info.width / info.height / 2) * 2)
    frames = event_frames(info.path, start, end, n, height=height, width=width, fps=info.fps)
    strip = Image.new("RGB", (n * width + (n - 1) * _GAP, height), _BG)
    draw = ImageDraw.Draw(strip)
    font = _font(max(10, height // 15))
    start_at = hit.start_at
    times = frame_times(start, end, n, info.fps)
    for i, (frame, t) in enumerate(zip(frames, times, strict=True)):
        x = i * (width + _GAP)
        strip.paste(Image.fromarray(frame), (x, 0))
        lines = [format_seconds(float(t))]
        if start_at is not None:
            lines.append(_clock(start_at + timedelta(seconds=float(t) - hit.start_s)))
        text = _fit(draw, "\n".join(lines), font, width)
        box = draw.multiline_textbbox((0, 0), text, font=font)
        y = height - box[3] - 4
        draw.rectangle((x, y - 2, x + box[2] + 6, height), fill=(0, 0, 0))
        draw.multiline_text((x + 3, y), text, font=font, fill=(255, 255, 255))
    return strip


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _prefix(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float, end: str = "") -> int:
    """Length of the longest prefix of ``text`` that fits ``width`` pixels followed by ``end``."""
    lo, hi = 1, len(text)  # binary search: file paths can be thousands of characters long
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid] + end, font=font) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float) -> str:
    """``text`` cut with an ellipsis so that each line fits ``width`` pixels."""
    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap font has latin-1 glyphs only
        text = text.encode("latin-1", "replace").decode("latin-1")
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if draw.textlength(line, font=font) > width:
            lines[i] = line[: _prefix(draw, line, font, width, "...")].rstrip() + "..."
    return "\n".join(lines)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float, lines: int) -> str:
    """``text`` broken at spaces into at most ``lines`` lines of ``width`` pixels, the last cut."""
    out: list[str] = []
    rest = text
    while rest and len(out) < lines - 1:
        cut = _prefix(draw, rest, font, width)
        space = rest.rfind(" ", 0, cut + 1)
        if cut < len(rest) and space > cut // 2:
            cut = space + 1
        out.append(rest[:cut].rstrip())
        rest = rest[cut:]
    if rest:
        out.append(rest)
    return _fit(draw, "\n".join(out), font, width)


def _draw_sheet(rows: list[tuple[str, Image.Image | str]], thumb_height: int) -> Image.Image:
    """Rows of (label strip, frames or red "missing" text) on one white page."""
    font = _font(max(12, thumb_height // 12))
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    strip_h = scratch.textbbox((0, 0), "Ag", font=font)[3] + 2 * _GAP
    width = max(
        [_MIN_SHEET_WIDTH] + [c.width + 2 * _GAP for _, c in rows if isinstance(c, Image.Image)]
    )
    texts = {
        i: _wrap(scratch, _printable(c), font, width - 2 * _GAP, 3)
        for i, (_, c) in enumerate(rows)
        if isinstance(c, str)
    }
    heights = [
        scratch.multiline_textbbox((0, 0), texts[i], font=font)[3] if i in texts else c.height
        for i, (_, c) in enumerate(rows)
    ]
    sheet = Image.new("RGB", (width, _GAP + sum(strip_h + h + 2 * _GAP for h in heights)), _BG)
    draw = ImageDraw.Draw(sheet)
    y = _GAP
    for i, ((label, content), h) in enumerate(zip(rows, heights, strict=True)):
        draw.rectangle((0, y, width - 1, y + strip_h - 1), fill=_STRIP)
        draw.text((_GAP, y + _GAP), _fit(draw, label, font, width - 2 * _GAP), font=font, fill=_INK)
        y += strip_h + _GAP
        if i in texts:
            draw.multiline_text((_GAP, y), texts[i], font=font, fill=_RED)
        else:
            sheet.paste(content, (_GAP, y))
        y += h + _GAP
    return sheet
