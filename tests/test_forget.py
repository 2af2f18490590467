"""Issue 16 item 8: ``marc forget`` and the retention period of ``marc ingest --watch``.

Generated videos of known recording times (their modification times) are ingested with the tiny
models; ``marc forget`` in real processes must remove their events, vectors and catalog rows
together, never touch the files, keep ``marc status`` consistent, and finish after a ``kill -9``
at any step when the same command runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

MARC = [sys.executable, "-m", "marc.agent._cli"]
DAY = 86400.0


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(MARC_HOME=str(home), MARC_MODELS="tiny", MARC_MAX_EVENT_S="2")
    env["MARC_MIN_EVENT_S"] = "1"
    return env


def marc(home: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MARC, *map(str, args)], capture_output=True, text=True, env=_env(home), timeout=300
    )


def js(home: Path, *args: str | Path):
    p = marc(home, *args, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def consistent(home: Path) -> dict:
    st = js(home, "status")
    assert st["consistent"] and st["vectors"] == st["events"] and st["damaged"] == [], st
    return st


def stored_videos(home: Path) -> set[str]:
    return {Path(v["path"]).name for v in js(home, "videos")}


def digest(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


@pytest.fixture(scope="module")
def template(tmp_path_factory, run_ffmpeg) -> tuple[Path, dict[str, Path]]:
    """Three generated 6 s clips: gate/old.mp4 recorded 10 days ago, gate/new.mp4 and
    lot/car.mp4 an hour ago (the recording time is the file's modification time), ingested."""
    root = tmp_path_factory.mktemp("forget")
    files = {
        "old.mp4": (root / "footage" / "gate" / "old.mp4", "testsrc", 10 * DAY),
        "new.mp4": (root / "footage" / "gate" / "new.mp4", "mandelbrot", 3600.0),
        "car.mp4": (root / "footage" / "lot" / "car.mp4", "smptebars", 3600.0),
    }
    for path, source, age in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        run_ffmpeg("-f", "lavfi", "-i", f"{source}=size=160x120:rate=10", "-t", "6",
                   "-pix_fmt", "yuv420p", path)  # fmt: skip
        t = time.time() - age
        os.utime(path, (t, t))
    home = root / "home"
    report = js(home, "ingest", root / "footage")
    assert report["ingested"] == 3 and report["failed"] == [], report
    return home, {name: f[0] for name, f in files.items()}


@pytest.fixture
def home(template, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(template[0], home, symlinks=True)
    return home


@pytest.mark.slow
def test_forget_by_camera_time_and_video_keeps_files_and_status_consistent(home, template):
    _, files = template
    before_files = {n: digest(p) for n, p in files.items()}
    st = consistent(home)
    assert st["videos"] == 3

    dry = js(home, "forget", "--camera", "gate", "--dry-run")
    assert dry["dry_run"] and dry["forgotten"] == 0
    assert {Path(v["path"]).name for v in dry["videos"]} == {"old.mp4", "new.mp4"}
    assert js(home, "status") == st  # a dry run changes nothing

    cutoff = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    report = js(home, "forget", "--before", cutoff)
    assert report["forgotten"] == 1 and [Path(v["path"]).name for v in report["videos"]] == [
        "old.mp4"
    ]
    assert report["events"] > 0
    after = consistent(home)
    assert after["videos"] == 2 and after["events"] == st["events"] - report["events"]
    assert stored_videos(home) == {"new.mp4", "car.mp4"}

    report = js(home, "forget", "--video", files["car.mp4"])
    assert report["forgotten"] == 1
    assert consistent(home)["videos"] == 1
    assert {Path(e["video"]).name for e in js(home, "events")} == {"new.mp4"}
    hits = js(home, "search", "a test pattern", "--k", "10")
    assert hits and {Path(h["video"]).name for h in hits} == {"new.mp4"}

    assert js(home, "forget", "--camera", "gate")["forgotten"] == 1
    final = consistent(home)
    assert (final["videos"], final["events"], final["vectors"]) == (0, 0, 0)
    assert {n: digest(p) for n, p in files.items()} == before_files  # files never touched

    again = js(home, "ingest", files["car.mp4"])  # a forgotten file is a new file to ingest
    assert again["ingested"] == 1
    consistent(home)


#: Kill the forget at a step: (method, which call of it). Forgetting 2 videos of one collection:
#: delete_video #1 comes after both are marked, drop_forgotten #1 after the first one's vectors
#: went, delete_video #2 after the first one is wholly gone.
KILL_AT = [("delete_video", 1), ("drop_forgotten", 1), ("delete_video", 2)]

_DYING_FORGET = """
import os, signal, sys
from marc.memory.archive import Archive
from marc.memory.catalog import Catalog
from marc.memory.core.settings import Settings
from marc.memory.stores.edge import EdgeStore

method, at = sys.argv[1], int(sys.argv[2])
owner = EdgeStore if method == "delete_video" else Catalog
real, calls = getattr(owner, method), [0]

def dying(self, *args):
    calls[0] += 1
    if calls[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args)

setattr(owner, method, dying)
Archive(Settings()).forget(cameras=["gate"])
"""


@pytest.mark.slow
@pytest.mark.parametrize(("method", "at"), KILL_AT)
def test_kill_9_mid_forget_then_the_same_command_again_is_done(home, template, method, at):
    st = consistent(home)
    p = subprocess.run(
        [sys.executable, "-c", _DYING_FORGET, method, str(at)],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == -signal.SIGKILL, p.stderr
    mid = consistent(home)  # consistent meanwhile: the marked videos are out of the archive
    assert mid["videos"] == 1 and stored_videos(home) >= {"car.mp4"}

    report = js(home, "forget", "--camera", "gate")
    assert report["forgotten"] == 2 - (method == "delete_video" and at == 2)
    final = consistent(home)
    assert stored_videos(home) == {"car.mp4"}
    assert (final["videos"], final["events"]) == (1, st["cameras"]["lot"]["events"])


@pytest.mark.slow
def test_watch_retention_forgets_old_recordings_and_does_not_ingest_old_files(
    home, template, tmp_path: Path, run_ffmpeg, monkeypatch
):
    from marc.memory.archive import Archive
    from marc.memory.core.settings import Settings
    from marc.memory.watch import IngestService

    _, files = template
    yard = tmp_path / "cams" / "yard"
    yard.mkdir(parents=True)
    run_ffmpeg("-f", "lavfi", "-i", "rgbtestsrc=size=160x120:rate=10", "-t", "4",
               "-pix_fmt", "yuv420p", yard / "fresh.mp4")  # fmt: skip
    shutil.copyfile(files["car.mp4"], yard / "ancient.mp4")
    for name, age in (("fresh.mp4", 3600.0), ("ancient.mp4", 20 * DAY)):
        t = time.time() - age
        os.utime(yard / name, (t, t))
    for key in [k for k in os.environ if k.startswith("MARC_")]:
        monkeypatch.delenv(key)
    for key, value in _env(home).items():
        if key.startswith("MARC_"):
            monkeypatch.setenv(key, value)

    forgotten = []
    with Archive(Settings()) as archive:
        service = IngestService(
            archive,
            [files["old.mp4"].parent.parent, yard.parent],
            settle_s=0.5,
            retention_days=5,
            on_forget=forgotten.append,
        )
        summary = service.run(max_batches=1)
        st = archive.status()
        names = {Path(v["path"]).name for v in archive.videos()}
    assert summary.forgotten == 1 and [Path(v["path"]).name for v in forgotten[0].videos] == [
        "old.mp4"
    ]
    assert (summary.ingested, summary.skipped) == (1, 2)  # fresh.mp4; new.mp4, car.mp4 stored
    assert names == {"new.mp4", "car.mp4", "fresh.mp4"}  # neither old file is ingested
    assert st["consistent"] and st["videos"] == 3
