"""Content identity: a fast whole-file hash, and the deterministic ids derived from it.

A video is identified by what it contains, not where it lies: a renamed or byte-identical copy
has the same fingerprint and is skipped; a changed file has a new one and is ingested again.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import xxhash

from marc.memory.core.errors import MediaError

_CHUNK = 8 << 20
#: Namespace of MARC's event ids (uuid5): same content + same settings -> same ids everywhere.
EVENT_NAMESPACE = uuid.UUID("5b0f3c1e-8d0a-4f7e-9a57-6d2a1c0b9e11")


def fingerprint(path: Path) -> str:
    """XXH3-128 of the whole file, plus its size: ``"<32 hex>-<size>"``.

    XXH3 runs at memory speed (tens of GB/s), so hashing is bounded by the disk, and every byte
    counts: two recordings that differ anywhere get different fingerprints.
    """
    h = xxhash.xxh3_128()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
    except IsADirectoryError as e:
        raise MediaError(path, "is a directory, not a video file") from e
    except PermissionError as e:
        raise MediaError(path, "permission denied") from e
    except OSError as e:
        raise MediaError(path, f"unreadable: {e.strerror or e}") from e
    return f"{h.hexdigest()}-{size}"


def video_id(fp: str) -> str:
    """The catalog id of the video with fingerprint ``fp``."""
    return "v" + fp.split("-", 1)[0]


def path_video_id(path: str) -> str:
    """The catalog id of a file that could not even be read (so has no fingerprint)."""
    return "p" + xxhash.xxh3_128_hexdigest(os.fsencode(path))  # a name need not be UTF-8


def event_id(fp: str, segmentation_key: str, index: int) -> str:
    """Deterministic UUID of event ``index`` of the video ``fp`` cut with ``segmentation_key``."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{fp}/{segmentation_key}/{index}"))
