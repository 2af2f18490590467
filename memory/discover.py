"""Which files to ingest: :func:`discover` expands the paths given on the command line into
video files.

Which camera recorded a file and when (:func:`camera_for`, :func:`recorded_at`,
:func:`timestamp_from_name`) is :mod:`marc.memory.layout`'s; they are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from marc.memory.core.errors import MediaError
from marc.memory.layout import PLAUSIBLE_YEARS, camera_for, recorded_at, timestamp_from_name
from marc.memory.media import SNIFF_BYTES, looks_like_video

__all__ = [
    "PLAUSIBLE_YEARS",
    "VIDEO_EXTENSIONS",
    "camera_for",
    "discover",
    "is_video_file",
    "recorded_at",
    "timestamp_from_name",
]

_EXTENSIONS = (
    "mp4 m4v mov qt mkv webm avi divx ts mts m2ts m2t tts trp flv f4v wmv asf mpg mpeg mpe m1v "
    "m2v vob mxf ogv 3gp 3g2 h264 264 h265 265 hevc avc dav lrv insv mjpeg mjpg rm rmvb y4m"
)
#: File name extensions taken as video without looking inside (lower case, no dot).
VIDEO_EXTENSIONS = frozenset(_EXTENSIONS.split())


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
