"""Which files to ingest, which camera recorded them, and when.

- :func:`discover` expands the paths given on the command line into video files.
- :func:`camera_for` names the camera: an explicit ``--camera``, else the file's folder
  (NVRs and dashcam exports keep one folder per channel).
- :func:`recorded_at` dates the recording: container metadata, else a timestamp in the file
  name, else the file's modification time.

All datetimes are timezone-aware UTC. Cameras rarely say their zone: a naive time (file name,
metadata without offset) is taken as UTC, so it round-trips unchanged into the catalog.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from marc.memory.core.errors import MediaError
from marc.memory.core.paths import printable
from marc.memory.media import SNIFF_BYTES, VideoInfo, looks_like_video

_EXTENSIONS = (
    "mp4 m4v mov qt mkv webm avi divx ts mts m2ts m2t tts trp flv f4v wmv asf mpg mpeg mpe m1v "
    "m2v vob mxf ogv 3gp 3g2 h264 264 h265 265 hevc avc dav lrv insv mjpeg mjpg rm rmvb y4m"
)
#: File name extensions taken as video without looking inside (lower case, no dot).
VIDEO_EXTENSIONS = frozenset(_EXTENSIONS.split())
#: Recordings are dated between these years; other values are camera clock defaults or noise.
PLAUSIBLE_YEARS = (1990, 2100)


def _is_video_name(path: Path) -> bool:
    return path.suffix[1:].lower() in VIDEO_EXTENSIONS


def _sniffs_as_video(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return looks_like_video(f.read(SNIFF_BYTES))
    except OSError:
        return False


def is_video_file(path: Path) -> bool:
    """Whether :func:`discover` takes the file ``path`` as a video: by its extension, else by its
    first bytes."""
    return _is_video_name(path) or _sniffs_as_video(path)


#: ``on_error(MediaError(folder, problem))``: a folder the walk could not enter or list.
OnError = Callable[[MediaError], None]


def _ignore(_e: MediaError) -> None:
    pass


def _walk(folder: Path, seen_dirs: set[tuple[int, int]], on_error: OnError) -> Iterator[Path]:
    """Files under ``folder`` in sorted order, depth first; hidden entries and loops skipped."""
    try:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen_dirs:  # symlink loop, or a folder reached twice
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:  # nothing can be ingested from it: say so
        problem = f"unreadable folder: {e.strerror or e}; its files were skipped"
        on_error(MediaError(folder, problem))
        return
    here = folder.resolve()
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir():  # follows symlinks, except back up to an ancestor (a loop)
                if not (entry.is_symlink() and here.is_relative_to(path.resolve())):
                    yield from _walk(path, seen_dirs, on_error)
            elif entry.is_file() and is_video_file(path):
                yield path
        except OSError:
            continue


def discover(paths: Sequence[Path], on_error: OnError = _ignore) -> Iterator[Path]:
    """The video files named by ``paths``, in a deterministic order, each once.

    A file given explicitly is always yielded, whatever its name or content:
    :func:`~marc.memory.media.probe` then accepts it or says why not (the CLI reports it, the
    ingest goes on).

    A folder is walked recursively in sorted name order (a folder's entries sorted by name,
    sub-folders expanded where they sort). Symlinks are followed, except one pointing back to an
    ancestor (a loop), and no folder is entered twice. Hidden files and folders (names starting
    with ``.``: ``.Trash``, macOS ``._clip.mp4`` resource forks) are skipped. A file is taken if
    its extension is in :data:`VIDEO_EXTENSIONS` or, for other names (``.bin``, ``.dat``, none),
    if its first bytes look like a video container (:func:`~marc.memory.media.looks_like_video`:
    MP4/MOV, AVI, Matroska, MPEG-TS, FLV, ASF, raw H.264/HEVC, ...): NVR exports often use
    their own extensions.

    A folder that cannot be entered or listed (permissions, I/O error) is handed to
    ``on_error`` as a :class:`~marc.memory.core.errors.MediaError` naming it, and the walk goes
    on; ``marc ingest`` reports it as a failure.

    Raises:
        FileNotFoundError: a path does not exist (raised by this call, before any iteration).
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if _missing(p):
            raise FileNotFoundError(2, "no such file or folder", str(p))
    return _discover(paths, on_error)


def _discover(paths: list[Path], on_error: OnError) -> Iterator[Path]:
    yielded: set[Path] = set()
    seen_dirs: set[tuple[int, int]] = set()
    for p in paths:
        # a path that cannot even be looked at (under a folder we may not enter) is a file
        # named on the command line: ingest reports why it cannot read it
        found = _walk(p, seen_dirs, on_error) if _is_dir(p) else iter([p])
        for f in found:
            key = f.resolve()
            if key not in yielded:
                yielded.add(key)
                yield f


def _missing(p: Path) -> bool:
    """Whether nothing is at ``p``; a path we may not look at (``EACCES``) is not missing."""
    try:
        p.stat()
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def camera_for(path: Path, override: str | None) -> str:
    """``override`` if given, else the name of the folder holding ``path``.

    >>> camera_for(Path("/footage/gate-cam/2024-01-31.mp4"), None)
    'gate-cam'
    """
    if override:
        return printable(override)
    return printable(Path(path).absolute().parent.name) or "/"  # a label: shown, not opened


# YYYY MM DD, optional separator, HH MM SS; separators optional and independent, so this covers
# 20240131_235959, 20240131235959, 2024-01-31_23-59-59, 2024-01-31 23.59.59,
# 2024-01-31T23:59:59 and Viofo's 2024_0131_235959. Not inside a longer run of digits, except
# for trailing milliseconds (Hikvision's ..._20240131235959123).
_STAMP = re.compile(
    r"(?<!\d)(\d{4})[-_.]?(\d\d)[-_.]?(\d\d)"  # date
    r"[-_T .]?(\d\d)[-_:.h]?(\d\d)[-_:.m]?(\d\d)"  # time
    r"(?:\d{3})?(?!\d)"  # optional milliseconds, then no more digits
)


def timestamp_from_name(name: str) -> datetime | None:
    """The first valid date-time in a file name, as UTC (naive names are taken as UTC).

    Invalid dates (month 13, Feb 30) and years outside :data:`PLAUSIBLE_YEARS` are skipped.

    >>> timestamp_from_name("NVR_ch1_main_20240131235959_20240201000000.mp4")
    datetime.datetime(2024, 1, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
    >>> timestamp_from_name("clip_0001.mp4") is None
    True
    """
    for m in _STAMP.finditer(name):
        year, month, day, hour, minute, second = map(int, m.groups())
        if not PLAUSIBLE_YEARS[0] <= year <= PLAUSIBLE_YEARS[1]:
            continue
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            continue
    return None


def _plausible(t: datetime | None) -> bool:
    return t is not None and PLAUSIBLE_YEARS[0] <= t.year <= PLAUSIBLE_YEARS[1]


def recorded_at(path: Path, info: VideoInfo) -> tuple[datetime, str]:
    """When the recording started, and how we know: ``(utc_time, source)``.

    ``source`` is ``"metadata"`` (the container's ``creation_time``; epoch-zero or otherwise
    implausible values such as 1970-01-01 or 1904-01-01 are ignored), ``"filename"``
    (:func:`timestamp_from_name`) or ``"mtime"`` (the file's modification time, a last resort:
    copying footage often resets it, and it is usually the recording's *end*).
    """
    if _plausible(info.creation_time):
        return info.creation_time.astimezone(UTC), "metadata"
    if (t := timestamp_from_name(Path(path).name)) is not None:
        return t, "filename"
    return datetime.fromtimestamp(Path(path).stat().st_mtime, UTC), "mtime"
