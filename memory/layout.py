"""Which camera recorded a file, and when, from the recorder's folder layout and file names.

NVRs, DVRs and dashcams write ``CAM/DATE/TIME.mp4``, ``DATE/CAM_TIME.mp4``, ``chN/...``; copying
the footage resets the files' modification times, so the layout is often the only record of
where and when. The rules (``docs/ingest.md`` describes them for users):

**Camera** (:class:`CameraRule`, first that applies):

1. ``--camera NAME``: every file is NAME's.
2. ``--camera-from parent`` / ``grandparent``: the name of the file's folder / the folder above
   it, whatever it looks like; ``--camera-from REGEX``: the named group (``(?P<camera>...)``, or
   the pattern's only named group) of the first match in the file's absolute path; a path the
   pattern does not match is that file's failure (nothing is guessed).
3. Otherwise: *date folders are not cameras*. A folder whose name is a date (``2024-03-01``,
   ``20240301``, ``2024_03_01``, ``2024.03.01``, or a ``2024/03/01`` chain) directly above the
   file is skipped. If the file sits in such a date folder and its name has a camera-like prefix
   before the time (``frontdoor_120500.mp4``, ``ch2-20240301120500.mp4``), that prefix is the
   camera, unless it is a generic word (``clip``, ``video``, ``rec``, ``event``, ...: see
   :data:`GENERIC_PREFIXES`). Else the camera is the nearest folder above the file that is not a
   date folder (``parking/2024-03-01/clip_120500.mp4`` -> ``parking``; ``ch1/x.mp4`` -> ``ch1``).

**Start time** (:func:`recorded_at`, first that applies; the source is stored with the video):

- ``container``: the container's ``creation_time`` (implausible clock defaults such as
  1970-01-01 or 1904-01-01 ignored); containers store UTC.
- ``name``: a full date and time in the file name (``20240301_120500``,
  ``2024-03-01 12.05.00``, Hikvision's ``..._20240301120500123``, ...).
- ``folder+name``: the date of the nearest date folder (the file's folder or one of the two above
  it) joined with a time of day in the file name (``120500``, ``12-05-00``, ``12.05.00``).
- ``mtime``: the file's modification time, a last resort (copying resets it; it is usually the
  recording's end). Ingest warns once per batch when it came to this.

Times read from names and folders are local times of the zone ``MARC_TIMEZONE`` (an IANA name,
default ``UTC``); every datetime returned is timezone-aware UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marc.memory.core.errors import ConfigError, MediaError
from marc.memory.core.paths import printable
from marc.memory.probe import VideoInfo

#: Recordings are dated between these years; other values are camera clock defaults or noise.
PLAUSIBLE_YEARS = (1990, 2100)
#: Where a start time came from, most to least trustworthy.
TIME_SOURCES = ("container", "name", "folder+name", "mtime")
#: File-name prefixes that name the recording, not the camera (compared in lower case, trailing
#: digits and separators removed): ``clip_120500.mp4`` in a date folder is the folder's camera.
GENERIC_PREFIXES = frozenset({
    "alarm", "cap", "capture", "clip", "cont", "continuous", "dvr", "event", "file", "footage",
    "img", "manual", "motion", "mov", "movie", "normal", "nvr", "rec", "record", "recording",
    "sched", "schedule", "snap", "timer", "vid", "video",
})  # fmt: skip

# YYYY MM DD, optional separator, HH MM SS; separators optional and independent, so this covers
# 20240131_235959, 20240131235959, 2024-01-31_23-59-59, 2024-01-31 23.59.59,
# 2024-01-31T23:59:59 and Viofo's 2024_0131_235959. Not inside a longer run of digits, except
# for trailing milliseconds (Hikvision's ..._20240131235959123).
_STAMP = re.compile(
    r"(?<!\d)(\d{4})[-_.]?(\d\d)[-_.]?(\d\d)"  # date
    r"[-_T .]?(\d\d)[-_:.h]?(\d\d)[-_:.m]?(\d\d)"  # time
    r"(?:\d{3})?(?!\d)"  # optional milliseconds, then no more digits
)
# A time of day alone: 120500, 12-05-00, 12.05.00, 12_05_00, 12h05m00 (optional milliseconds).
_TIME_OF_DAY = re.compile(r"(?<!\d)(\d\d)[-_:.h]?(\d\d)[-_:.m]?(\d\d)(?:\d{3})?(?!\d)")
# A folder named by a date: 2024-03-01, 20240301, 2024_03_01, 2024.03.01.
_DATE_FOLDER = re.compile(r"(\d{4})([-_.]?)(\d\d)\2(\d\d)")
# The folders of a YYYY/MM/DD chain.
_YEAR, _DAY = re.compile(r"[0-9]{4}"), re.compile(r"[0-9]{1,2}")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Berlin``, ...).

    Raises:
        ConfigError: no such zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"MARC_TIMEZONE={name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, "
            "America/New_York)"
        ) from None


def _date(year: int, month: int, day: int) -> date | None:
    if not PLAUSIBLE_YEARS[0] <= year <= PLAUSIBLE_YEARS[1]:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _local(day: date, hh: int, mm: int, ss: int, tz: tzinfo) -> datetime | None:
    try:
        return datetime.combine(day, time(hh, mm, ss), tz).astimezone(UTC)
    except ValueError:
        return None


def timestamp_from_name(name: str, tz: str | ZoneInfo = "UTC") -> datetime | None:
    """The first valid date-time in a file name, a local time of ``tz``, as UTC.

    Invalid dates (month 13, Feb 30) and years outside :data:`PLAUSIBLE_YEARS` are skipped.

    >>> timestamp_from_name("NVR_ch1_main_20240131235959_20240201000000.mp4")
    datetime.datetime(2024, 1, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
    >>> timestamp_from_name("20240131_235959.mp4", "Europe/Berlin").hour
    22
    >>> timestamp_from_name("clip_0001.mp4") is None
    True
    """
    found = _stamp(name, zone(tz) if isinstance(tz, str) else tz)
    return None if found is None else found[0]


def _stamp(name: str, tz: tzinfo = UTC) -> tuple[datetime, int] | None:
    """The first valid date-time in ``name`` (as UTC) and where its match starts."""
    for m in _STAMP.finditer(name):
        year, month, day, hour, minute, second = map(int, m.groups())
        if (d := _date(year, month, day)) and (t := _local(d, hour, minute, second, tz)):
            return t, m.start()
    return None


def _time_of_day(name: str) -> tuple[tuple[int, int, int], int] | None:
    """The first valid ``HHMMSS`` time of day in ``name`` and where its match starts."""
    for m in _TIME_OF_DAY.finditer(name):
        hh, mm, ss = map(int, m.groups())
        if hh < 24 and mm < 60 and ss < 60:
            return (hh, mm, ss), m.start()
    return None


def date_of_folder(name: str) -> date | None:
    """The date a folder's name is, if it is one (``2024-03-01``, ``20240301``, ...).

    >>> date_of_folder("2024-03-01"), date_of_folder("parking")
    (datetime.date(2024, 3, 1), None)
    """
    m = _DATE_FOLDER.fullmatch(name)
    return _date(int(m[1]), int(m[3]), int(m[4])) if m else None


def _date_folders(folders: list[str]) -> tuple[date | None, int]:
    """The date of the date folders at the start of ``folders`` (nearest first) and how many
    there are: ``2024-03-01`` counts one, a ``2024/03/01`` chain three."""
    found: date | None = None
    i = 0
    while i < len(folders):
        if d := date_of_folder(folders[i]):
            found, i = found or d, i + 1
            continue
        dd, mm, yyyy = (folders[i : i + 3] + ["", ""])[:3]
        chain = _DAY.fullmatch(dd) and _DAY.fullmatch(mm) and _YEAR.fullmatch(yyyy)
        if chain and (d := _date(int(yyyy), int(mm), int(dd))):
            found, i = found or d, i + 3
            continue
        break
    return found, i


def _folders(path: Path) -> list[str]:
    """The names of the folders holding ``path``, nearest first (``/`` for the root)."""
    parent = Path(path).absolute().parent
    return [p.name or "/" for p in (parent, *parent.parents)]


def _name_prefix(stem: str, at: int) -> str | None:
    """The camera-like part of a file name before its time stamp at ``at``, if any."""
    prefix = stem[:at].strip("-_. ")
    if not prefix or prefix.isdigit():
        return None
    if prefix.lower().rstrip("0123456789-_. ") in GENERIC_PREFIXES:
        return None
    return prefix


@dataclass(frozen=True)
class CameraRule:
    """How files are given a camera: ``marc ingest --camera`` / ``--camera-from``.

    Attributes:
        camera: every file's camera (``--camera``); wins over ``source``.
        source: ``"parent"``, ``"grandparent"``, a regular expression with a named group, or
            ``None`` for the default rule (the module docstring).
    """

    camera: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if self.source in (None, "parent", "grandparent"):
            return
        try:
            pattern = re.compile(self.source)
        except re.error as e:
            raise ConfigError(
                f"--camera-from {self.source!r}: not a regular expression: {e}"
            ) from None
        names = list(pattern.groupindex)
        if "camera" not in names and len(names) != 1:
            raise ConfigError(
                f"--camera-from {self.source!r}: use parent, grandparent or a regular expression "
                "with one named group, e.g. '/(?P<camera>[^/]+)/\\d{4}-\\d\\d-\\d\\d/'"
            )

    @property
    def _group(self) -> str:
        names = list(re.compile(self.source or "").groupindex)
        return "camera" if "camera" in names else names[0]

    def describe(self) -> str:
        """The rule in words, for a run's record (``--camera=NAME``, ``--camera-from=...``)."""
        if self.camera:
            return f"--camera={self.camera}"
        return f"--camera-from={self.source}" if self.source else ""

    def camera_for(self, path: Path) -> str:
        """The camera of the file ``path``.

        >>> CameraRule().camera_for(Path("/footage/parking/2024-03-01/clip_120500.mp4"))
        'parking'
        >>> CameraRule().camera_for(Path("/footage/2024-03-01/frontdoor_120500.mp4"))
        'frontdoor'
        >>> CameraRule(source="grandparent").camera_for(Path("/nvr/ch1/2024-03-01/1.mp4"))
        'ch1'

        Raises:
            MediaError: ``--camera-from REGEX`` does not match the path.
        """
        return printable(self._camera(path))  # a label: a name that is not UTF-8 shows as \xHH

    def _camera(self, path: Path) -> str:
        if self.camera:
            return self.camera
        folders = _folders(path)
        if self.source == "parent":
            return folders[0]
        if self.source == "grandparent":
            return folders[1] if len(folders) > 1 else folders[0]
        if self.source is not None:
            m = re.search(self.source, Path(path).absolute().as_posix())
            if m is None or not m[self._group]:
                raise MediaError(
                    path, f"--camera-from {self.source!r} does not match this path (no camera)"
                )
            return m[self._group]
        _, skip = _date_folders(folders)
        if skip:
            stem = Path(path).stem
            at = _stamp(stem) or _time_of_day(stem)
            if at is not None and (prefix := _name_prefix(stem, at[1])):
                return prefix
        return folders[skip] if skip < len(folders) else folders[-1]


def camera_for(path: Path, override: str | None) -> str:
    """``override`` if given, else the default camera rule (:class:`CameraRule`).

    >>> camera_for(Path("/footage/gate-cam/2024-01-31.mp4"), None)
    'gate-cam'
    """
    return CameraRule(camera=override).camera_for(path)


def _plausible(t: datetime | None) -> bool:
    return t is not None and PLAUSIBLE_YEARS[0] <= t.year <= PLAUSIBLE_YEARS[1]


def recorded_at(path: Path, info: VideoInfo, tz: str | ZoneInfo = "UTC") -> tuple[datetime, str]:
    """When the recording started, and how we know: ``(utc_time, source)``.

    ``source`` is one of :data:`TIME_SOURCES` (the module docstring gives the rule); times from
    the name and folders are local times of ``tz``.
    """
    tz = zone(tz) if isinstance(tz, str) else tz
    path = Path(path)
    if _plausible(info.creation_time):
        return info.creation_time.astimezone(UTC), "container"
    if (found := _stamp(path.name, tz)) is not None:
        return found[0], "name"
    folders = _folders(path)
    day = next((d for i in range(3) if (d := _date_folders(folders[i:])[0])), None)
    tod = _time_of_day(path.stem) if day is not None else None
    if day is not None and tod is not None and (t := _local(day, *tod[0], tz)) is not None:
        return t, "folder+name"
    return datetime.fromtimestamp(path.stat().st_mtime, UTC), "mtime"
