"""Issue 17's one-line contract, checked on the real ``marc`` process and generated media: a bad
setting, a bad time, a file that is not a regular file, a bad evidence folder, a time-lapse.

Each failure is one line on stderr (the last one, after any progress display) with the exit code
of the CLI's policy: ``2`` for what the user wrote, ``1`` for what went wrong at run time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def marc(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 180):
    """Run ``marc ARGS`` in a new process (the environment of the test plus ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "marc.agent._cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def error_line(p: subprocess.CompletedProcess) -> str:
    """The one error line: no traceback, and no other line that is an error."""
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.stderr
    return errors[0]


def status(env: dict[str, str] | None = None) -> dict:
    p = marc("status", "--json", env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def clip(tmp_path: Path, run_ffmpeg) -> Path:
    """A 6 s, 10 fps test pattern (one event with the tiny models)."""
    out = tmp_path / "footage" / "cam" / "clip.mp4"
    out.parent.mkdir(parents=True)
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "6",
               "-pix_fmt", "yuv420p", out)  # fmt: skip
    return out


# ------------------------------------------------------------------ item 7: the settings
@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MARC_DEVICE": "banana"}, "MARC_DEVICE: 'banana' is not a torch device"),
        ({"MARC_MAX_EVENT_S": "inf"}, "MARC_MAX_EVENT_S: Input should be a finite number"),
        ({"MARC_CUT_THRESHOLD": "nan"}, "MARC_CUT_THRESHOLD"),
        ({"MARC_HOME": "/etc/passwd"}, "MARC_HOME: /etc/passwd is a file, not a folder"),
        ({"MARC_HOME": "/etc/passwd/sub"}, "MARC_HOME: /etc/passwd/sub lies under the file"),
        ({"MARC_HOME": "/proc/self"}, "is on a virtual file system"),
    ],
)
def test_an_invalid_setting_is_one_line_and_exit_2_before_any_work(env, says, marc_home, clip):
    p = marc("ingest", clip, env=env)
    assert p.returncode == 2, p.stderr
    line = error_line(p)
    assert line.startswith("error: invalid setting") and says in line, line
    assert not marc_home.exists()  # refused at start-up: nothing was created, nothing claimed


@pytest.mark.slow
def test_a_device_the_machine_lacks_is_one_line_at_model_load_and_claims_nothing(marc_home, clip):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.device_count() >= 8:
        pytest.skip("this machine has cuda:7")
    p = marc("ingest", clip, env={"MARC_DEVICE": "cuda:7"})
    assert p.returncode == 2, p.stderr
    assert "MARC_DEVICE=cuda:7 but this machine has" in error_line(p)
    s = status()
    assert (s["videos"], s["failed"]) == (0, 0), s  # the file is neither done nor failed
    p = marc("ingest", clip)  # the same file ingests once the device is right
    assert p.returncode == 0, p.stderr
    assert status()["videos"] == 1


# ------------------------------------------------------------------ item 8: times out of range
OUT_OF_RANGE = ["9999-12-31", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_a_time_out_of_range_is_a_value_error(text):
    from marc.memory.core.events import Filters
    from marc.memory.core.timeline import parse_time

    with pytest.raises(ValueError, match="out of range"):
        Filters.parse(since=text, until=text)
    assert parse_time("9999-12-30", end_of_day=True).isoformat() == "9999-12-31T00:00:00+00:00"


@pytest.mark.parametrize(
    ("option", "text", "says"),
    [
        ("--until", "9999-12-31", "'9999-12-31' is out of range"),
        ("--since", "0001-01-01T00:00:00+14:00", "is out of range"),
        ("--since", "", "--since is empty"),
    ],
)
def test_search_with_a_bad_time_is_one_line_and_exit_2(option, text, says, marc_home):
    p = marc("search", "people", option, text)
    assert p.returncode == 2, p.stderr
    assert says in error_line(p)


def _messages(thread: str) -> list[dict]:
    p = marc("thread", "show", thread, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["messages"]


@pytest.mark.slow
def test_a_failed_ask_leaves_no_half_turn_in_its_thread(marc_home, clip):
    assert marc("ingest", clip).returncode == 0
    first = marc("ask", "what moves?", "--json")
    assert first.returncode == 0, first.stderr
    thread = json.loads(first.stdout)["thread"]
    assert len(_messages(thread)) == 2

    for option, text in [("--until", OUT_OF_RANGE[0]), ("--since", OUT_OF_RANGE[1])]:
        p = marc("ask", "and then?", "--thread", thread, option, text)
        assert p.returncode == 2 and "out of range" in error_line(p)
    # the answer model fails after the question entered the graph (no server on port 9)
    down = {"MARC_VLM_BACKEND": "vllm", "MARC_VLM_URL": "http://127.0.0.1:9/v1"}
    p = marc("ask", "and then?", "--thread", thread, env=down)
    assert p.returncode == 1 and "cannot reach the vLLM server" in error_line(p)
    assert [m["role"] for m in _messages(thread)] == ["user", "assistant"]  # rolled back
    p = marc("ask", "a new thread?", env=down)  # a new thread that failed is not kept at all
    assert p.returncode == 1
    listed = marc("thread", "list", "--json")
    assert [t["thread"] for t in json.loads(listed.stdout)] == [thread]

    again = marc("ask", "and then?", "--thread", thread)  # the thread goes on normally
    assert again.returncode == 0, again.stderr
    assert [m["role"] for m in _messages(thread)] == ["user", "assistant"] * 2


# ------------------------------------------------------------------ item 3: not a regular file
@pytest.mark.slow
def test_a_fifo_or_device_named_on_the_command_line_is_its_own_failure_never_a_hang(
    marc_home, clip, tmp_path
):
    fifo, zero = tmp_path / "y.mp4", tmp_path / "z.mp4"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    p = marc("ingest", fifo, zero, clip, timeout=120)  # a hang is a TimeoutExpired here
    assert p.returncode == 1, p.stderr
    failed = [ln for ln in p.stderr.splitlines() if ln.startswith("failed:")]
    assert failed == [
        f"failed: {fifo}: not a regular file (a FIFO); only regular files are ingested",
        f"failed: {zero}: not a regular file (a character device); only regular files are ingested",
    ], p.stderr
    s = status()
    assert (s["videos"], s["failed"], s["consistent"]) == (1, 2, True), s  # the clip went in


# ------------------------------------------------------------------ item 9: --evidence
@pytest.mark.slow
def test_ask_prints_the_answer_before_an_evidence_error_and_refuses_system_folders(
    marc_home, clip, tmp_path
):
    assert marc("ingest", clip).returncode == 0
    for root in ["/", "/etc", "/usr", "/proc/self", str(Path.home())]:  # refused before asking
        p = marc("ask", "what moves?", "--evidence", root)
        assert p.returncode == 2 and p.stdout == "", p.stderr
        assert f"--evidence {root}: a system folder" in error_line(p)
    assert json.loads(marc("thread", "list", "--json").stdout) == []  # nothing was asked

    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere" / "x")
    for folder in [a_file, dangling, Path("/etc/passwd/sub")]:
        p = marc("ask", "what moves?", "--evidence", folder, "--json")
        assert p.returncode == 1, p.stderr
        answer = json.loads(p.stdout)  # the whole answer came first
        assert answer["answer"] and answer["evidence"], answer
        assert f"--evidence {folder}: cannot write the evidence" in error_line(p)
        assert len(_messages(answer["thread"])) == 2  # and it was saved in its thread
    assert a_file.read_text() == "mine" and not dangling.exists()


# ------------------------------------------------------------------ item 1: a time-lapse
@pytest.mark.slow
def test_a_time_lapse_below_one_frame_a_minute_is_ingested_with_its_neighbours(
    marc_home, clip, tmp_path, run_ffmpeg
):
    folder = tmp_path / "lowfps" / "cam"
    folder.mkdir(parents=True)
    lapse = folder / "timelapse.mp4"  # a frame every 5 minutes for 20 minutes: "0.0033 fps"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=1/300", "-t", "1200",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", lapse)  # fmt: skip
    (folder / "zz_after.mp4").write_bytes(clip.read_bytes())  # sorts after it: must go in too
    p = marc("ingest", folder.parent)
    assert p.returncode == 0, p.stderr
    s = status()
    assert (s["videos"], s["failed"], s["consistent"]) == (2, 0, True), s
    events = json.loads(marc("events", "--json").stdout)
    spans = [(e["start_s"], e["end_s"]) for e in events if e["video"] == str(lapse)]
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(1200, rel=0.02), spans
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))  # they tile
