"""Finding ffmpeg and reading a video file's header, with ffmpeg alone.

There is no ffprobe on the machines MARC targets (the ``imageio-ffmpeg`` wheel ships only
``ffmpeg``), so :func:`probe` parses the stream header ffmpeg prints for ``ffmpeg -i FILE``
(``Duration:``, the ``Stream #0:N: Video:`` line, ``Metadata:`` blocks, the display matrix).
Every problem with the file becomes a one-line :class:`MediaError` naming it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

from marc.memory.core.errors import ConfigError, MediaError

_PROBE_TIMEOUT_S = 120


# --------------------------------------------------------------------------------------- ffmpeg
def _works(exe: str) -> bool:
    try:
        r = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


@functools.cache
def _resolve(override: str | None) -> tuple[str, str]:
    if override:
        exe = shutil.which(override) or override
        if not _works(exe):
            raise ConfigError(f"MARC_FFMPEG={override!r} is not a working ffmpeg executable")
        return exe, "MARC_FFMPEG"
    system = shutil.which("ffmpeg")
    if system and _works(system):
        return system, "system"
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg"


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary MARC runs (resolved once per ``MARC_FFMPEG`` value).

    ``MARC_FFMPEG`` wins if set; else a working ``ffmpeg`` on ``PATH``; else the static binary of
    the ``imageio-ffmpeg`` wheel.
    """
    return _resolve(os.environ.get("MARC_FFMPEG") or None)[0]


def ffmpeg_command(*args: str) -> list[str]:
    """``ffmpeg`` argv for a batch run: no stdin, no banner, errors only, then ``args``."""
    return [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *args]


def ffmpeg_source() -> str:
    """Where :func:`ffmpeg_exe` came from: ``system``, ``imageio-ffmpeg`` or ``MARC_FFMPEG``."""
    return _resolve(os.environ.get("MARC_FFMPEG") or None)[1]


def ffmpeg_url(path: Path) -> str:
    # "file:" + absolute path: names starting with "-" or containing ":" are never read as
    # options or protocols; ffmpeg takes the rest of the string verbatim.
    return "file:" + str(path.absolute())


_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")
_NOISE = (
    "Error opening input file",
    "Error opening input files",
    "Conversion failed",
    "At least one output file",
    "Error opening output",
    "Terminating thread",
)


def ffmpeg_problem(stderr: str) -> str:
    """The first meaningful line of ffmpeg's error output, without ``[ctx @ 0x..]`` prefixes."""
    for line in stderr.splitlines():
        line = _LOG_PREFIX.sub("", line).strip()
        if line and not line.startswith(_NOISE):
            line = line.removeprefix("Error opening input: ")
            return line if len(line) <= 160 else line[:157] + "..."
    return "ffmpeg failed without a message"


# ---------------------------------------------------------------------------------------- probe
@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video file.

    Attributes:
        path: the file.
        size_bytes: file size.
        duration_s: container duration; ``0.0`` when the container does not say (raw H.264/HEVC
            elementary streams, unfinished Matroska): then only decoding tells.
        fps: average frame rate of the video stream (NTSC rates snapped to ``N*1000/1001``).
        width, height: frame size as decoded (swapped for ±90° rotated phone video).
        codec: ffmpeg's codec name (``h264``, ``hevc``, ``msmpeg4v3``, ...).
        creation_time: the container's ``creation_time`` tag as tz-aware UTC, if any.
        stream: absolute index of the video stream used.
    """

    path: Path
    size_bytes: int
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    creation_time: datetime | None
    stream: int = 0


#: How many leading bytes :func:`looks_like_video` wants (MPEG-TS needs three 188-byte packets).
SNIFF_BYTES = 1024
_ASF_GUID = bytes.fromhex("3026B2758E66CF11A6D900AA0062CE6C")
#: ISO-BMFF major brands of still images and audio (HEIF/AVIF photos and M4A share MP4's "ftyp").
_NOT_VIDEO_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_NOT_VIDEO_BRANDS |= {b"jpx ", b"M4A ", b"M4B ", b"M4P "}


def looks_like_video(head: bytes) -> bool:
    """Cheap content sniff: do these first bytes of a file start a common video container?

    Recognised: MP4/MOV/3GP (``ftyp``, or old QuickTime ``moov``/``mdat``/``wide``/``free`` at
    offset 4; HEIF/AVIF image and M4A audio brands excluded), AVI (``RIFF....AVI``),
    Matroska/WebM (EBML ``1A45DFA3``), FLV, ASF/WMV (header GUID), MPEG-TS (``0x47`` sync
    every 188 bytes) and M2TS (every 192), MPEG-PS (``000001BA``), raw MPEG-1/2 video
    (``000001B3``), H.264/HEVC Annex-B elementary streams starting with a parameter set or
    access unit delimiter, Dahua ``DHAV``.
    Give it :data:`SNIFF_BYTES` bytes (MPEG-TS needs ~400; the rest need 16).

    >>> looks_like_video(b"\\x00\\x00\\x00\\x20ftypisom"), looks_like_video(b"hello world")
    (True, False)
    """
    if head[4:8] == b"ftyp":
        return head[8:12] not in _NOT_VIDEO_BRANDS
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return True
    if head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return True
    if head[:4] in (b"\x1a\x45\xdf\xa3", b"FLV\x01", b"DHAV") or head[:16] == _ASF_GUID:
        return True
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return True
    for first, size in ((0, 188), (4, 192)):  # MPEG-TS; M2TS has a 4-byte timecode per packet
        if len(head) >= first + 2 * size + 1 and all(
            head[first + i * size] == 0x47 for i in range(3)
        ):
            return True
    for start in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):  # Annex-B start code
        if head.startswith(start) and len(head) > len(start) + 1:
            nal = head[len(start)]
            # H.264 SEI, SPS or AUD (x264 starts with an SEI); HEVC VPS, SPS, AUD or prefix SEI
            if nal & 0x9F in (0x06, 0x07, 0x09) or nal in (0x40, 0x42, 0x46, 0x4E):
                return True
    return False


def _check_file(path: Path) -> tuple[int, bytes]:
    """Size and first bytes of ``path``; MediaError for what ffmpeg would report cryptically."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError(path, "file not found") from None
    except OSError as e:
        raise MediaError(path, f"cannot access: {e.strerror or e}") from None
    if path.is_dir():
        raise MediaError(path, "is a directory, not a video file")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if st.st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except PermissionError:
        raise MediaError(path, "permission denied") from None
    except OSError as e:
        raise MediaError(path, f"unreadable: {e.strerror or e}") from None
    return st.st_size, head


def _open_problem(stderr: str, head: bytes) -> str:
    """Why ``ffmpeg -i`` could not open a file, in words (``head``: its first bytes)."""
    if "Permission denied" in stderr:
        return "permission denied"
    if not looks_like_video(head):
        return "not a video (ffmpeg recognises no video format in it)"
    if "Error opening input: End of file" in stderr:
        return "truncated or corrupt: the file ends before its first video frame"
    if "moov atom not found" in stderr:
        return "truncated or corrupt: MP4 index (moov atom) missing, recording cut off?"
    return f"truncated or corrupt: {ffmpeg_problem(stderr)}"


_DURATION = re.compile(r"Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)")
_STREAM = re.compile(r"^\s*Stream #0:(\d+)\S*: (\w+): (.*)$")
_SIZE = re.compile(r"[ ,](\d{1,5})x(\d{1,5})(?=[ ,\[]|$)")
_RATE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_KEY = re.compile(r"^\s+(\S[^:]*?)\s*: (.*)$")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
#: Demuxers that produce still images, not videos.
_IMAGE_FORMATS = re.compile(r"^(image2|\w+_pipe)$")


def exact_rate(x: float) -> Fraction:
    """An exact rate for ffmpeg's rounded print-out: 29.97 -> 30000/1001, 25 -> 25; a
    time-lapse's rate below 1 fps is kept as printed (never rounded to 0).

    >>> exact_rate(29.97), exact_rate(25.0), exact_rate(0.0033)
    (Fraction(30000, 1001), Fraction(25, 1), Fraction(33, 10000))
    """
    if x < 1:  # a time-lapse (0.0033 fps: a frame every 5 minutes); no NTSC form to snap to
        return Fraction(x).limit_denominator(1_000_000)
    if abs(x - round(x)) < 1e-6:
        return Fraction(round(x))
    ntsc = Fraction(round(x * 1.001) * 1000, 1001)
    if abs(float(ntsc) - x) < 0.006:
        return ntsc
    return Fraction(x).limit_denominator(1000)


def _parse_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return (t.replace(tzinfo=UTC) if t.tzinfo is None else t).astimezone(UTC)


def _parse_header(path: Path, size: int, text: str) -> VideoInfo:
    """Parse ``ffmpeg -i`` output into a :class:`VideoInfo` (first non-cover-art video stream)."""
    fmt = re.search(r"^Input #0, (.*), from '", text, re.M)
    if fmt and _IMAGE_FORMATS.match(fmt.group(1)):
        raise MediaError(path, f"not a video (a still image, {fmt.group(1)})")
    duration: float | None = None
    tags: dict[str, str] = {}  # format-level tags; the video stream's own are merged in below
    video: dict | None = None
    current: dict | None = None  # the chosen video stream while we read its Metadata/Side data
    target: dict[str, str] | None = tags  # where "key : value" lines go (None: ignored)
    kinds: list[str] = []
    for line in text.splitlines():
        if m := _DURATION.search(line):
            if m.group(1) is not None:
                h, mi, s = m.groups()
                duration = 3600 * int(h) + 60 * int(mi) + float(s)
        elif m := _STREAM.match(line):
            index, kind, rest = int(m.group(1)), m.group(2), m.group(3)
            kinds.append(kind.lower())
            current = target = None
            if kind == "Video" and video is None and "(attached pic)" not in rest:
                current = video = {"index": index, "rest": rest, "tags": {}, "rotation": 0.0}
                target = current["tags"]
        elif (m := _ROTATION.search(line)) and current is not None:
            current["rotation"] = float(m.group(1))
        elif (m := _KEY.match(line)) and target is not None:
            target.setdefault(m.group(1).lower(), m.group(2))
    if video is None:
        what = "audio only" if "audio" in kinds else "no video stream"
        raise MediaError(path, f"not a video ({what})")
    rest = video["rest"]
    codec = rest.split()[0].rstrip(",")
    if codec in ("ansi", "tty", "bintext", "xbin", "idf"):
        raise MediaError(path, "not a video (ffmpeg reads it as a text file)")
    size_m = _SIZE.search(rest)
    if not size_m:
        raise MediaError(path, "not a video (no frame size in the video stream)")
    width, height = int(size_m.group(1)), int(size_m.group(2))
    if round(abs(video["rotation"])) % 180 == 90:
        width, height = height, width
    rates = {kind: float(v) * (1000 if k else 1) for v, k, kind in _RATE.findall(rest)}
    fps = next((r for r in (rates.get("fps"), rates.get("tbr")) if r and 0 < r <= 1000), None)
    if fps is None:
        raise MediaError(path, "no usable frame rate in the video stream")
    if duration is not None and duration <= 0:
        raise MediaError(path, "no usable duration (the container says 0 s)")
    for k, v in video["tags"].items():
        tags.setdefault(k, v)
    created = None
    for key in ("creation_time", "com.apple.quicktime.creationdate", "date"):
        if key in tags and (created := _parse_time(tags[key])):
            break
    return VideoInfo(
        path=path,
        size_bytes=size,
        duration_s=duration or 0.0,
        fps=float(exact_rate(fps)),
        width=width,
        height=height,
        codec=codec,
        creation_time=created,
        stream=video["index"],
    )


def probe(path: Path | str) -> VideoInfo:
    """Read a video's header with ``ffmpeg -i`` (no decoding; milliseconds).

    Raises:
        MediaError: ``"<path>: <problem>"`` for a missing, unreadable or empty file, a directory,
            a file that is not a video (text, audio, still image), a truncated container (an MP4
            cut before its ``moov`` atom), or a video stream without a usable frame rate/duration.
    """
    path = Path(path)
    size, head = _check_file(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", ffmpeg_url(path)]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MediaError(path, f"ffmpeg read no header in {_PROBE_TIMEOUT_S} s") from None
    text = r.stderr.decode("utf-8", "replace")
    if not re.search(r"^Input #0", text, re.M):
        raise MediaError(path, _open_problem(text, head))
    return _parse_header(path, size, text)
