"""Time in MARC is one type: :class:`Span`, seconds as floats plus the video's frame rate.

Events, search hits and citations all carry a ``Span``; frame numbers are derived from it at the
boundary (``span.start_frame``), never stored beside it as a second truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


def format_seconds(seconds: float) -> str:
    """Seconds into a video as ``HH:MM:SS.s`` (rounded to 0.1 s first, so 59.96 s is one minute).

    >>> format_seconds(3725.06), format_seconds(59.96), format_seconds(-1)
    ('01:02:05.1', '00:01:00.0', '00:00:00.0')
    """
    t = round(max(seconds, 0.0), 1)
    return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:04.1f}"


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open interval ``[start_s, end_s)`` of a video with frame rate ``fps``."""

    start_s: float
    end_s: float
    fps: float | None = None  # unknown for some wire forms; frame numbers then raise

    def __post_init__(self) -> None:
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be a positive number, got {self.fps!r}")
        if not (0 <= self.start_s <= self.end_s):
            raise ValueError(f"need 0 <= start_s <= end_s, got {self.start_s!r}, {self.end_s!r}")

    @classmethod
    def from_frames(cls, start_frame: int, end_frame: int, fps: float) -> Span:
        """The span of frames ``[start_frame, end_frame)``."""
        return cls(start_frame / fps, end_frame / fps, fps)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def start_frame(self) -> int:
        return round(self.start_s * self._rate())

    @property
    def end_frame(self) -> int:
        return round(self.end_s * self._rate())

    def _rate(self) -> float:
        if self.fps is None:
            raise ValueError("this span has no frame rate, so no frame numbers")
        return self.fps

    def at(self, origin: datetime) -> tuple[datetime, datetime]:
        """Absolute ``(start_at, end_at)`` for a recording that started at ``origin``."""
        return origin + timedelta(seconds=self.start_s), origin + timedelta(seconds=self.end_s)

    def sample_times(self, n: int) -> list[float]:
        """``n`` times spread evenly inside the span: the centres of ``n`` equal slices."""
        step = self.duration_s / n
        return [self.start_s + (i + 0.5) * step for i in range(n)]


def parse_time(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO-8601 date-time or date as an aware UTC datetime (for ``--since`` / ``--until``).

    A time without an offset is taken as UTC, as file-name timestamps are. A bare date is the start
    of that day, or with ``end_of_day`` the start of the next one, so ``--until 2024-01-31``
    includes all of the 31st.

    >>> parse_time("2024-01-31T23:59:59+01:00").isoformat()
    '2024-01-31T22:59:59+00:00'
    >>> parse_time("2024-01-31").isoformat(), parse_time("2024-01-31", end_of_day=True).isoformat()
    ('2024-01-31T00:00:00+00:00', '2024-02-01T00:00:00+00:00')

    Raises:
        ValueError: ``text`` is neither an ISO-8601 date-time nor a date, or its UTC time (or
            the day after a bare date, for ``end_of_day``) is outside 0001-01-02..9999-12-31.
    """
    text = text.strip()
    if len(text) <= 10:  # YYYY-MM-DD (or the compact YYYYMMDD)
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            t = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return _in_range(text, lambda: t + timedelta(days=1) if end_of_day else t)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 time; write e.g. 2024-01-31, 2024-01-31T18:00 or "
            "2024-01-31T18:00:00+01:00"
        ) from None
    return _in_range(text, lambda: t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


#: Times MARC compares and stores: a day of margin inside what ``datetime`` can hold, so that
#: adding a day or converting to UTC never overflows downstream.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def _in_range(text: str, make) -> datetime:
    try:
        t = make()
    except OverflowError:
        t = None
    if t is None or not (_EARLIEST <= t <= _LATEST):
        raise ValueError(
            f"{text!r} is out of range; give a time between {_EARLIEST.date()} and "
            f"{(_LATEST - timedelta(days=1)).date()} (UTC)"
        )
    return t
