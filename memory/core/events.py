"""The one event type and the one filter type every layer passes around.

:class:`EventRef` is an event memory as retrieval returns it, the graph state carries it (its
JSON), the answer path samples it, the evidence export cuts it and training feeds it: an id, the
file, the camera, a :class:`~marc.memory.core.timeline.Span` of that file, the wall-clock start,
and the score where a search produced it. :class:`Filters` is what narrows a search (cameras, a
time window, videos), parsed from user text in one place (:meth:`Filters.parse`).

>>> from marc.memory.core.timeline import Span
>>> ref = EventRef("e1", "/cams/lot/a.mp4", "lot", Span(12.0, 20.0, 25.0), score=0.31)
>>> EventRef.from_json(ref.to_json()) == ref
True
>>> Filters.parse(cameras=["lot"], until="2024-01-31").until.isoformat()
'2024-02-01T00:00:00+00:00'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from marc.memory.core.timeline import Span, parse_time

__all__ = ["EventRef", "Filters"]


@dataclass(frozen=True, slots=True)
class EventRef:
    """One event memory: which file, which seconds, which camera, when, and how close.

    Attributes:
        id: the event's id in the catalog (deterministic; a pseudo id for whole-file inputs).
        video: the file's path, where it was last seen.
        camera: the camera name.
        span: the seconds of the file the event covers, with the file's frame rate if known.
        start_at, end_at: the wall-clock times of ``span.start_s`` and ``span.end_s`` (UTC), if
            known (both as the catalog stores them, so a follow-up's "after that" is exact).
        score: cosine similarity to the query, for a search hit.
        video_id: the video's id in the catalog.
        missing: why the file cannot be used now (one line), for a citation.
    """

    id: str
    video: str
    camera: str
    span: Span
    start_at: datetime | None = None
    end_at: datetime | None = None
    score: float | None = None
    video_id: str | None = None
    missing: str | None = None

    @property
    def start_s(self) -> float:
        return self.span.start_s

    @property
    def end_s(self) -> float:
        return self.span.end_s

    @property
    def duration_s(self) -> float:
        return self.span.duration_s

    def replace(self, **changes: Any) -> EventRef:
        """A copy with ``changes`` (e.g. ``missing=...``)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The wire form (``marc search --json`` hit, ``marc ask --json`` evidence item).

        Optional fields appear only when set; ``fps`` only when the span has one.
        """
        out: dict[str, Any] = {
            "id": self.id,
            "video": self.video,
            "camera": self.camera,
            "start_s": self.start_s,
            "end_s": self.end_s,
        }
        if self.start_at is not None:
            out["start_at"] = self.start_at.isoformat()
        if self.end_at is not None:
            out["end_at"] = self.end_at.isoformat()
        if self.score is not None:
            out["score"] = self.score
        if self.video_id is not None:
            out["video_id"] = self.video_id
        if self.span.fps is not None:
            out["fps"] = self.span.fps
        if self.missing is not None:
            out["missing"] = self.missing
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventRef:
        """The inverse of :meth:`to_json` (also reads what older versions wrote: no ``fps``)."""
        return cls(
            id=str(data["id"]),
            video=str(data["video"]),
            camera=str(data.get("camera", "")),
            span=Span(float(data["start_s"]), float(data["end_s"]), data.get("fps")),
            start_at=_instant(data.get("start_at")),
            end_at=_instant(data.get("end_at")),
            score=None if data.get("score") is None else float(data["score"]),
            video_id=data.get("video_id"),
            missing=data.get("missing") or None,
        )


@dataclass(frozen=True, slots=True)
class Filters:
    """What narrows a search: cameras, a time window and videos (``None``: no restriction).

    Attributes:
        cameras: only these cameras (an empty tuple matches nothing).
        since: only events that end after this aware datetime.
        until: only events that start before this aware datetime.
        videos: only these videos, as file paths or video ids.
    """

    cameras: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    videos: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            t = getattr(self, name)
            if t is not None and t.tzinfo is None:
                raise ValueError(f"{name} must be an aware datetime, got {t!r}")

    @classmethod
    def parse(
        cls,
        *,
        cameras: Iterable[str] | str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        videos: Iterable[str | Path] | None = None,
    ) -> Filters:
        """Filters from user input: one camera or several, ISO 8601 text or datetimes.

        A bare date in ``until`` includes that whole day; an empty string is an error, not "no
        filter" (``None`` is).

        Raises:
            ValueError: a time that is not ISO 8601 (the message says what to write).
        """
        if isinstance(cameras, str):
            cameras = [cameras]
        return cls(
            cameras=None if cameras is None else tuple(cameras),
            since=_time("since", since, end_of_day=False),
            until=_time("until", until, end_of_day=True),
            videos=None if videos is None else tuple(str(v) for v in videos),
        )

    @property
    def camera(self) -> str | None:
        """The one camera, when exactly one is set (the agent's ``camera`` input)."""
        return self.cameras[0] if self.cameras and len(self.cameras) == 1 else None

    def replace(self, **changes: Any) -> Filters:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """``{"camera", "since", "until"}`` as the agent's state and ``marc ask --json`` carry
        them (ISO 8601 strings; ``cameras``/``videos`` only when more than one camera or any
        video is set)."""
        out: dict[str, Any] = {
            "camera": self.camera,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
        }
        if self.cameras is not None and len(self.cameras) != 1:
            out["cameras"] = list(self.cameras)
        if self.videos is not None:
            out["videos"] = list(self.videos)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Filters:
        """The inverse of :meth:`to_json`."""
        data = data or {}
        cameras = data.get("cameras")
        if cameras is None and data.get("camera"):
            cameras = [data["camera"]]
        return cls.parse(
            cameras=cameras, since=data.get("since"), until=data.get("until"),
            videos=data.get("videos"),
        )  # fmt: skip


def _instant(value: str | datetime | None) -> datetime | None:
    if isinstance(value, str):
        return datetime.fromisoformat(value) if value else None
    return value


def _time(name: str, value: str | datetime | None, *, end_of_day: bool) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if not value.strip():
        raise ValueError(f"--{name} is empty; give an ISO 8601 time or date, or leave it out")
    return parse_time(value, end_of_day=end_of_day)
