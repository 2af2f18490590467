"""Cameras and start times from recorder folder layouts (issue 16 item 5): the rule on real
generated clips laid out as NVRs and dashcams write them, and the real ``marc`` process."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from marc.memory import layout
from marc.memory.core.errors import ConfigError, MediaError
from marc.memory.layout import CameraRule, date_of_folder, recorded_at, timestamp_from_name
from marc.memory.media import probe

MARC = [sys.executable, "-m", "marc.agent._cli"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, run_ffmpeg) -> Path:
    """A 1 s generated test pattern without any creation_time in its container."""
    path = tmp_path_factory.mktemp("clip") / "pattern.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=d=1:s=160x120:r=10", "-c:v", "libx264",
               "-preset", "ultrafast", path)  # fmt: skip
    assert probe(path).creation_time is None
    return path


def _place(clip: Path, root: Path, rel: str, mtime: datetime | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(clip.read_bytes())
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def test_docstring_examples():
    assert doctest.testmod(layout).failed == 0


# ------------------------------------------------------------------------------------ camera
@pytest.mark.parametrize(
    ("rel", "camera"),
    [
        ("parking/2024-03-01/clip_120500.mp4", "parking"),  # CAM/DATE/TIME, generic prefix
        ("2024-03-01/frontdoor_120500.mp4", "frontdoor"),  # DATE/CAM_TIME
        ("20240301/cam2-120500.mp4", "cam2"),
        ("ch1/2024/03/01/120500.mp4", "ch1"),  # a YYYY/MM/DD chain is one date
        ("ch2/20240301120500.mp4", "ch2"),  # chN/DATETIME
        ("nvr/ch3/2024_03_01/REC01_120500.mp4", "ch3"),
        ("gate-cam/2024-01-31.mp4", "gate-cam"),  # a date-named *file* is not a folder
        ("lobby/2024-03-01/night/120500.mp4", "night"),  # only date folders are skipped
    ],
)
def test_date_folders_are_not_cameras(tmp_path, rel, camera):
    assert CameraRule().camera_for(tmp_path / "footage" / rel) == camera


def test_camera_override_and_camera_from(tmp_path):
    path = tmp_path / "nvr" / "ch1" / "2024-03-01" / "frontdoor_120500.mp4"
    assert CameraRule(camera="porch").camera_for(path) == "porch"
    assert CameraRule(camera="porch", source="parent").camera_for(path) == "porch"
    assert CameraRule(source="parent").camera_for(path) == "2024-03-01"  # asked for: given
    assert CameraRule(source="grandparent").camera_for(path) == "ch1"
    assert CameraRule(source=r"/(?P<camera>ch\d+)/").camera_for(path) == "ch1"
    assert CameraRule(source=r"/nvr/(?P<cam>[^/]+)/").camera_for(path) == "ch1"  # one group
    with pytest.raises(MediaError, match="does not match this path") as err:
        CameraRule(source=r"/(?P<camera>cam\d+)/").camera_for(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("source", "problem"),
    [("(?P<camera>[", "not a regular expression"), (r"ch\d+", "named group"),
     ("(?P<a>x)(?P<b>y)", "named group")],
)  # fmt: skip
def test_bad_camera_from_is_a_config_error(source, problem):
    with pytest.raises(ConfigError, match=problem):
        CameraRule(source=source)


def test_date_of_folder():
    assert date_of_folder("2024-03-01") == date_of_folder("20240301") == datetime(2024, 3, 1).date()
    assert date_of_folder("2024_03_01") == date_of_folder("2024.03.01") is not None
    for name in ("2024-13-01", "2024-02-30", "1985-01-01", "2024-03_01", "parking", "ch1"):
        assert date_of_folder(name) is None, name


# --------------------------------------------------------------------------------- start time
def test_start_time_from_folder_date_and_name_time(clip, tmp_path):
    copied = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)  # the copy's mtime must not be used
    f = _place(clip, tmp_path, "parking/2024-03-01/clip_120500.mp4", copied)
    assert recorded_at(f, probe(f)) == (datetime(2024, 3, 1, 12, 5, tzinfo=UTC), "folder+name")
    f = _place(clip, tmp_path, "ch1/2024/03/02/23-59-58.mp4", copied)
    assert recorded_at(f, probe(f)) == (
        datetime(2024, 3, 2, 23, 59, 58, tzinfo=UTC),
        "folder+name",
    )
    f = _place(clip, tmp_path, "2024-03-03/frontdoor_081500.mp4", copied)
    assert recorded_at(f, probe(f))[0] == datetime(2024, 3, 3, 8, 15, tzinfo=UTC)
    f = _place(clip, tmp_path, "2024-03-04/cam/120000.mp4", copied)  # DATE/CAM/TIME
    assert recorded_at(f, probe(f)) == (datetime(2024, 3, 4, 12, tzinfo=UTC), "folder+name")
    # a full date and time in the name wins over the folder's date
    f = _place(clip, tmp_path, "gate/2024-03-01/20240229_235959.mp4", copied)
    assert recorded_at(f, probe(f)) == (datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), "name")
    # no time in the name, or no date folder: the modification time, said so
    for rel in ("lot/2024-03-01/clip_0001.mp4", "lot/clip_120500.mp4", "lot/123000-x/a.mp4"):
        f = _place(clip, tmp_path, rel, copied)
        assert recorded_at(f, probe(f)) == (copied, "mtime"), rel


def test_names_are_read_in_the_time_zone(clip, tmp_path):
    f = _place(clip, tmp_path, "parking/2024-03-01/clip_120500.mp4")  # CET, UTC+1
    assert recorded_at(f, probe(f), "Europe/Berlin")[0] == datetime(2024, 3, 1, 11, 5, tzinfo=UTC)
    f = _place(clip, tmp_path, "parking/2024-07-01/clip_120500.mp4")  # CEST, UTC+2
    assert recorded_at(f, probe(f), "Europe/Berlin")[0] == datetime(2024, 7, 1, 10, 5, tzinfo=UTC)
    f = _place(clip, tmp_path, "gate/cam_20240301_120500.mp4")
    assert recorded_at(f, probe(f), "America/New_York") == (
        datetime(2024, 3, 1, 17, 5, tzinfo=UTC),
        "name",
    )
    assert timestamp_from_name("20240301_120500.mp4", "Asia/Tokyo") == datetime(
        2024, 3, 1, 3, 5, tzinfo=UTC
    )
    with pytest.raises(ConfigError, match="MARC_TIMEZONE"):
        recorded_at(f, probe(f), "Mars/Olympus_Mons")


def test_container_time_wins_and_is_utc(run_ffmpeg, clip, tmp_path):
    f = tmp_path / "parking" / "2024-03-01" / "clip_120500.mp4"
    f.parent.mkdir(parents=True)
    run_ffmpeg("-i", clip, "-c", "copy", "-metadata", "creation_time=2024-03-01T10:00:00Z", f)
    assert recorded_at(f, probe(f), "Europe/Berlin") == (
        datetime(2024, 3, 1, 10, tzinfo=UTC),
        "container",
    )


# ------------------------------------------------------------------------------ marc ingest
def _marc(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*MARC, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(tmp_path: Path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    e.update(MARC_HOME=str(tmp_path / "home"), MARC_MODELS="tiny")
    return e


@pytest.mark.slow
def test_marc_ingest_names_cameras_and_times_of_recorder_layouts(run_ffmpeg, env, tmp_path):
    """``marc ingest`` on NVR/dashcam layouts of generated clips (distinct content each), read in
    Europe/Berlin: cameras and UTC start times as the layout says; one mtime warning."""
    root = tmp_path / "footage"
    copied = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    layout = {  # file -> (camera, start_at UTC, source)
        "parking/2024-03-01/clip_120500.mp4": ("parking", "2024-03-01T11:05:00+00:00",
                                               "folder+name"),
        "2024-03-01/frontdoor_120500.mp4": ("frontdoor", "2024-03-01T11:05:00+00:00",
                                            "folder+name"),
        "ch1/2024/07/02/083000.mp4": ("ch1", "2024-07-02T06:30:00+00:00", "folder+name"),
        "ch2/20240301120500.mp4": ("ch2", "2024-03-01T11:05:00+00:00", "name"),
        "misc/copied.mp4": ("misc", copied.isoformat(), "mtime"),
        "misc/also copied.mp4": ("misc", copied.isoformat(), "mtime"),
    }  # fmt: skip
    for i, rel in enumerate(layout):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        run_ffmpeg("-f", "lavfi", "-i", f"testsrc=d=1:s=160x120:r=10,hue=h={40 * i}",
                   "-c:v", "libx264", "-preset", "ultrafast", path)  # fmt: skip
        os.utime(path, (copied.timestamp(), copied.timestamp()))
    berlin = dict(env, MARC_TIMEZONE="Europe/Berlin")

    p = _marc("ingest", str(root), env=berlin)
    assert p.returncode == 0, p.stderr
    assert "read as Europe/Berlin (MARC_TIMEZONE)" in p.stdout
    assert "start times from name 1, folder+name 3, mtime 2" in p.stdout, p.stdout
    warnings = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "2 video(s)" in warnings[0] and "modification time" in warnings[0]

    p = _marc("videos", "--json", env=berlin)
    got = {Path(v["path"]).relative_to(root).as_posix(): v for v in json.loads(p.stdout)}
    assert {k: (v["camera"], v["start_at"], v["start_source"]) for k, v in got.items()} == layout
    assert {v["state"] for v in got.values()} == {"ok"}
    st = json.loads(_marc("status", "--json", env=berlin).stdout)
    assert st["start_sources"] == {"container": 0, "name": 1, "folder+name": 3, "mtime": 2}
    assert set(st["cameras"]) == {"parking", "frontdoor", "ch1", "ch2", "misc"}
    text = _marc("status", env=berlin).stdout
    assert "start times: name 1, folder+name 3, mtime 2" in text

    # --camera-from a regex, on a new archive: the pattern names the camera; a path it does not
    # match fails alone (nothing guessed); a bad pattern is a usage error before any work
    other = dict(berlin, MARC_HOME=str(tmp_path / "home2"))
    p = _marc("ingest", str(root), "--camera-from", r"/footage/(?P<camera>ch\d|parking)/",
              "--json", env=other)  # fmt: skip
    report = json.loads(p.stdout)
    assert p.returncode == 1 and report["ingested"] == 3 and len(report["failed"]) == 3
    assert all("does not match this path" in f["error"] for f in report["failed"])
    assert report["timezone"] == "Europe/Berlin" and report["start_sources"]["folder+name"] == 2
    cams = {v["camera"] for v in json.loads(_marc("videos", "--json", env=other).stdout)}
    assert {"parking", "ch1", "ch2"} <= cams
    p = _marc("ingest", str(root), "--camera-from", "ch[0-9]", env=other)
    assert p.returncode == 2 and "named group" in p.stderr and len(p.stderr.splitlines()) == 1
    p = _marc("ingest", str(root), env=dict(other, MARC_TIMEZONE="Europe/Atlantis"))
    assert p.returncode == 2 and "MARC_TIMEZONE" in p.stderr
