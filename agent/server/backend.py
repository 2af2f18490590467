"""What the server's routes call: the CLI's own objects, opened once for the process.

One :class:`~marc.memory.archive.Archive` and one :class:`~marc.agent.conversation.Conversation`
sharing its retriever (as ``marc mcp`` does), so every JSON answer is the one the CLI's
``--json`` prints: the same functions produce it. The models (the encoder a search embeds with,
the answer model) run one request at a time (:attr:`Backend.models`); catalog reads, the vector
store and the thread store are safe from several threads (SQLAlchemy's pool, the store's own
lock, the checkpointer's lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from marc.agent.server.media import MediaCache
from marc.memory.core.config import AgentConfig, as_config
from marc.memory.core.events import Filters
from marc.memory.retrieval import ImageQuery

__all__ = ["Backend"]


class Backend:
    """The archive, the conversations and the media cache of one ``marc serve`` process."""

    def __init__(self, config: AgentConfig | Any) -> None:
        self.config = as_config(config, AgentConfig)
        self.media = MediaCache(self.config.memory.store.home)
        #: the encoder and the answer model: one request at a time
        self.models = threading.Lock()
        self._opening = threading.Lock()

    @property
    def home(self) -> Path:
        return self.config.memory.store.home

    @cached_property
    def archive(self):
        from marc.memory.archive import Archive

        return Archive(self.config.memory)

    @property
    def conversation(self):
        with self._opening:  # one Conversation, one checkpointer, whichever thread asks first
            if "_conversation" not in self.__dict__:
                from marc.agent.conversation import Conversation
                from marc.agent.graph import Resources

                resources = Resources(self.config)
                resources.retriever = self.archive.retriever  # one encoder, one store handle
                conv = Conversation(self.config, resources=resources)
                conv.graph  # noqa: B018 - opens the thread store now, in this lock
                self.__dict__["_conversation"] = conv
            return self.__dict__["_conversation"]

    def close(self) -> None:
        conv = self.__dict__.pop("_conversation", None)
        if conv is not None:
            conv.close()
        if "archive" in self.__dict__:
            self.archive.close()

    # ------------------------------------------------------------------------- the archive
    def search(self, query: str | ImageQuery, k: int, filters: Filters) -> list[dict[str, Any]]:
        """``marc search --json``'s list."""
        with self.models:
            hits = self.archive.search(query, k, filters=filters)
        return [h.to_json() for h in hits]

    def video(self, video_id: str) -> dict[str, Any] | None:
        """The ``marc videos --json`` row of ``video_id``; ``None`` if the catalog has none."""
        return next((v for v in self.archive.videos() if v["id"] == video_id), None)

    def event(self, event_id: str) -> dict[str, Any] | None:
        """One stored event as ``marc events --json`` lists it, with its ``video`` row
        (``marc videos --json``) and its neighbours in the same recording (``previous``,
        ``next``: event rows or ``None``); ``None`` if the catalog has no such event."""
        found = self.archive.catalog.hits([event_id]).get(event_id)
        if found is None:
            return None
        _, video = found
        rows = self.archive.events(filters=Filters(videos=(video.id,)))
        i = next(i for i, r in enumerate(rows) if r["id"] == event_id)
        return {
            **rows[i],
            "video_row": self.video(video.id),
            "previous": rows[i - 1] if i > 0 else None,
            "next": rows[i + 1] if i + 1 < len(rows) else None,
        }

    def ingest(self, recent: int = 20) -> dict[str, Any]:
        """The ingest page: ``runs`` (every running ``marc ingest``/``--watch`` on this
        ``MARC_HOME``, :func:`marc.memory.ingest_status.running`, each with its
        ``frames_per_second`` over its last files), ``status`` (``marc status --json``) and
        ``failures`` (the last ``recent`` rows of ``marc videos --failed --json``)."""
        from marc.memory.ingest_status import running

        videos = {v["path"]: v for v in self.archive.videos()}
        runs = running(self.home)
        for run in runs:
            run["frames_per_second"] = _rate(run, videos)
        failed = [v for v in videos.values() if v["state"] == "failed"]
        return {
            "runs": runs,
            "status": self.archive.status(),
            "failures": failed[-recent:][::-1],
        }

    # ------------------------------------------------------------------------------ media
    def playable(self, video_id: str) -> Path | None:
        """The browser-playable file of a video the catalog records, or ``None``."""
        row = self.video(video_id)
        if row is None or row["status"] != "done":
            return None
        return self.media.playable(row["id"], row["path"])

    def _event_and_video(self, event_id: str):
        found = self.archive.catalog.hits([event_id]).get(event_id)
        if found is None:
            return None, None
        return found

    def thumbnail(self, event_id: str) -> Path | None:
        e, v = self._event_and_video(event_id)
        if e is None:
            return None
        return self.media.thumbnail(e.id, v.path, e.start_s, e.end_s, v.fps, (v.width, v.height))

    def encoder_frames(self, event_id: str) -> list[Path] | None:
        e, v = self._event_and_video(event_id)
        if e is None:
            return None
        n = self.config.memory.encoder.frames_per_event
        return self.media.encoder_frames(e.id, v.path, e.start_s, e.end_s, n, (v.width, v.height))

    # ------------------------------------------------------------------------ conversations
    def ask(self, question: str, *, on_node: Callable[[str], None] | None = None, **kw: Any):
        """``marc ask --json``'s object (``kw``: :meth:`Conversation.ask`'s options)."""
        conv = self.conversation
        with self.models:
            return conv.ask(question, on_node=on_node, **kw).to_json()

    def thread(self, thread: str) -> dict[str, Any] | None:
        """``marc thread show --json``'s object; ``None`` for an unknown thread."""
        messages = self.conversation.history(thread)
        return {"thread": thread, "messages": messages} if messages else None

    def sheet(self, thread: str, message: int) -> Path | None:
        """The contact sheet of the answer at ``message`` in ``thread`` (exported once with
        :func:`marc.agent.evidence.export_evidence`); ``None`` when there is no such answer or it
        cites nothing."""
        from marc.agent.evidence import SHEET_NAME, export_evidence
        from marc.agent.graph import events

        messages = self.conversation.history(thread)
        if not 0 <= message < len(messages) or not messages[message].get("evidence"):
            return None
        folder = self.media.evidence_dir(thread, str(message))
        sheet = folder / SHEET_NAME
        with self.media.lock(sheet) as todo:
            if todo:
                export_evidence(events(messages[message]["evidence"]), folder)
        return sheet


def _rate(run: dict[str, Any], videos: dict[str, dict[str, Any]]) -> float | None:
    """Frames per second of a run over its last ingested files (frames from the catalog: each
    file's duration times its frame rate); ``None`` before its first file is done."""
    from datetime import datetime

    done = run.get("finished") or []
    if not done:
        return None

    def frames(entry: dict[str, Any]) -> float:
        v = videos.get(entry["path"])
        return (v["duration_s"] or 0.0) * (v["fps"] or 0.0) if v else 0.0

    times = [datetime.fromisoformat(e["at"]) for e in done]
    if len(done) >= 2:  # from the first finished file's end: the files after it
        seconds, n = (times[-1] - times[0]).total_seconds(), sum(map(frames, done[1:]))
    else:
        started = datetime.fromisoformat(run["started_at"])
        seconds, n = (times[0] - started).total_seconds(), frames(done[0])
    return n / seconds if seconds > 0 else None
