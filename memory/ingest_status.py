"""How far a running ``marc ingest`` (or ``--watch``) has got, for other processes to read.

:class:`StatusFile` is an ingest progress callback (``progress(kind, **info)``, see
:mod:`marc.memory.ingest`) that passes every call on and keeps ``MARC_HOME/ingest/<pid>.json``
up to date: files in the current run (or, for a watch, in all its batches so far), done and left,
the file and stage being worked on, the last failures with their one-line errors, and when each
of the last files was ingested. It is written atomically (temporary file + rename) at most every
:data:`WRITE_EVERY_S` seconds, and at once when a file finishes; it is removed when the ingest
ends. :func:`running` reads those of processes that are still alive (``marc serve``'s ingest
page): a file left by a killed process is ignored, and removed.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marc.memory.core.paths import printable, printable_json
from marc.memory.ingest import Progress, no_progress
from marc.memory.process import pid_alive

__all__ = ["StatusFile", "running"]

WRITE_EVERY_S = 0.5
#: Failures and finished files a status file keeps (the most recent).
KEEP = 20


def _folder(home: Path) -> Path:
    return Path(home) / "ingest"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class StatusFile:
    """A progress callback that records the ingest's progress in ``home/ingest/<pid>.json``.

    Args:
        home: ``MARC_HOME``.
        mode: ``"ingest"`` or ``"watch"``.
        progress: the callback to pass every call on to (the CLI's progress bars).
    """

    def __init__(self, home: Path, mode: str, progress: Progress = no_progress) -> None:
        self.path = _folder(home) / f"{os.getpid()}.json"
        self.progress = progress
        self.state: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "mode": mode,
            "started_at": _now(),
            "updated_at": _now(),
            "total": 0,
            "done": 0,
            "ingested": 0,
            "skipped": 0,
            "failed": 0,
            "current": None,
            "failures": [],  # [{"path", "error", "at"}], most recent last
            "finished": [],  # [{"path", "at"}] of the last ingested files, most recent last
        }
        self._written = 0.0

    def __enter__(self) -> StatusFile:
        self._write(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self, kind: str, **info: Any) -> None:
        self.progress(kind, **info)
        st = self.state
        force = False
        if kind == "files":  # a run (or a watch's batch) starts
            st["total"] += int(info.get("total", 0))
            force = True
        elif kind in ("file", "stage"):
            st["current"] = {
                "path": printable(str(info.get("path", ""))),
                "stage": info.get("stage"),
            }
        elif kind == "result":
            outcome = info.get("outcome")
            st["done"] += 1
            if outcome in ("ingested", "skipped", "failed"):
                st[outcome] += 1
            entry = {"path": printable(str(info.get("path", ""))), "at": _now()}
            if outcome == "failed":
                st["failures"] = [*st["failures"], {**entry, "error": info.get("error")}][-KEEP:]
            elif outcome == "ingested":
                st["finished"] = [*st["finished"], entry][-KEEP:]
            st["current"] = None
            force = True
        self._write(force)

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < WRITE_EVERY_S:
            return
        self._written = now
        self.state["updated_at"] = _now()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.part")
            tmp.write_text(printable_json(json.dumps(self.state, ensure_ascii=False)), "utf-8")
            os.replace(tmp, self.path)
        except OSError:  # a status the ingest cannot write never stops the ingest
            pass


def running(home: Path) -> list[dict[str, Any]]:
    """The status of every ingest of this host still running on ``home``, oldest first, each
    with ``left`` (files of its runs not done yet) added."""
    out = []
    folder = _folder(home)
    if not folder.is_dir():
        return out
    host = socket.gethostname()
    for f in sorted(folder.glob("*.json")):
        try:
            st = json.loads(f.read_text())
        except (OSError, ValueError):
            continue  # being replaced, or not ours
        if not isinstance(st, dict) or not isinstance(st.get("pid"), int):
            continue
        if st.get("host") == host and not pid_alive(st["pid"]):
            f.unlink(missing_ok=True)  # a killed ingest's
            continue
        st["left"] = max(0, int(st.get("total", 0)) - int(st.get("done", 0)))
        out.append(st)
    return sorted(out, key=lambda s: s.get("started_at", ""))
