"""Install a locally generated model folder once, atomically, shared by concurrent processes.

The tiny models (the event encoder's, :mod:`marc.memory.encoders.tiny`, and the answer model's,
:mod:`marc.compression.vlm.tiny`) are generated on first use under ``MARC_HOME/models``. A model is
written to a temporary sibling folder and renamed into place, so an interrupted run never leaves a
half model and two processes generating at once both end up with the same, complete folder. A
folder from another spec (older version, other seed) is replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from marc.memory.core.errors import ModelError

__all__ = ["install_generated"]


def install_generated(
    target: Path,
    is_current: Callable[[Path], bool],
    write: Callable[[Path], None],
) -> Path:
    """Make ``target`` hold the current generated model, writing it with ``write`` if needed.

    Args:
        target: the model's folder (its parent is created).
        is_current: whether a folder holds the current model (same spec, complete).
        write: fills an empty folder with the model.

    Returns:
        ``target``, resolved.

    Raises:
        ModelError: the folder cannot be written.
    """
    target = Path(target).expanduser().resolve()
    if is_current(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as e:
        msg = f"{target.parent}: cannot write a generated model there ({e.strerror})"
        raise ModelError(msg) from e
    try:
        write(tmp)
        _swap_into_place(tmp, target, is_current)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _swap_into_place(tmp: Path, target: Path, is_current: Callable[[Path], bool]) -> None:
    if is_current(target):  # another process finished first
        return
    stale: Path | None = None
    if target.exists():
        stale = target.with_name(f".{target.name}-stale-{os.getpid()}")
        shutil.rmtree(stale, ignore_errors=True)
        try:
            target.rename(stale)
        except FileNotFoundError:  # another process moved it first
            stale = None
    try:
        tmp.rename(target)
    except OSError as e:
        # Another process put a folder there meanwhile; fine if it is the current model.
        if not is_current(target):
            raise ModelError(f"{target}: cannot install the generated model ({e.strerror})") from e
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)
