"""Every ``marc`` command answers a bad setting and a bad argument with one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from marc.agent._cli import app

#: Every command, each with an argument list that is wrong for it and what the line must say.
COMMANDS = {
    "ingest": (["ingest", "/no/such/footage"], "/no/such/footage"),
    "ingest --watch": (["ingest", "/tmp", "--settle", "-1", "--watch"], "--settle"),
    "segment": (["segment", "/no/such.mp4"], "/no/such.mp4"),
    "events": (["events", "--video"], "--video"),
    "events --limit": (["events", "--limit", "0"], "--limit"),
    "events --since": (["events", "--camera", "gate", "--since", "noon"], "not an ISO-8601 time"),
    "videos": (["videos", "--camera"], "--camera"),
    "search": (["search", "people", "--since", "yesterday"], "not an ISO-8601 time"),
    "status": (["status", "--verbose"], "--verbose"),
    "samples": (["samples"], "'dest'"),
    "reindex": (["reindex", "extra"], "extra"),
    "repair": (["repair", "extra"], "extra"),
    "forget": (["forget", "--dry-run"], "say what to forget"),
    "forget --before": (["forget", "--before", "last week"], "not an ISO-8601 time"),
    "forget --video": (["forget", "--video", "/no/such.mp4"], "/no/such.mp4"),
    "ask": (["ask", "who?", "--until", "31/01/2024"], "not an ISO-8601 time"),
    "ask --thread": (["ask", "who?", "--thread", "no-such-id"], "no-such-id: no such thread"),
    "ask --new-thread": (["ask", "who?", "--thread", "a", "--new-thread", "b"], "not both"),
    "chat": (["chat", "--k", "3"], "--k"),
    "chat --thread": (["chat", "--thread", "no-such-id"], "--new-thread no-such-id"),
    "mcp": (["mcp", "--port", "8000"], "--port"),
    "serve": (["serve", "--port", "70000"], "--port"),
    "serve --host": (["serve", "--host", "0.0.0.0"], "needs MARC_API_TOKEN"),
    "thread show": (["thread", "show"], "ID"),
    "thread list": (["thread", "list", "--all"], "--all"),
    "train grpo": (["train", "grpo"], "--config"),
    "train sft": (["train", "sft", "--config", "/no/such.yaml"], "/no/such.yaml"),
    "eval": (["eval", "--model", "tiny"], "--data"),
}
#: Settings that pydantic refuses, with the variable the line must name.
BAD_SETTINGS = [
    ({"MARC_MIN_EVENT_S": "5", "MARC_MAX_EVENT_S": "1"}, "MARC_MIN_EVENT_S"),
    ({"MARC_SEGMENT_RUNTIME": "banana"}, "MARC_SEGMENT_RUNTIME"),
    ({"MARC_DEVICE": "banana"}, "MARC_DEVICE"),
    ({"MARC_MAX_EVENT_S": "inf"}, "MARC_MAX_EVENT_S"),
    ({"MARC_MAX_EVENT_S": "nan"}, "MARC_MAX_EVENT_S"),
    ({"MARC_MIN_SCORE": "-inf"}, "MARC_MIN_SCORE"),
    ({"MARC_HOME": "/etc/passwd"}, "MARC_HOME"),
    ({"MARC_HOME": "/proc/self"}, "MARC_HOME"),
    ({"MARC_RETENTION_DAYS": "0"}, "MARC_RETENTION_DAYS"),
]


def _valid_args(args: list[str]) -> list[str]:
    """Arguments that get past parsing, so that the settings are what fails."""
    good = {
        "ingest": ["ingest", "/tmp"],
        "segment": ["segment", "/tmp"],
        "events": ["events"],
        "videos": ["videos"],
        "search": ["search", "people"],
        "samples": ["samples", "/tmp/x"],
        "reindex": ["reindex"],
        "repair": ["repair"],
        "forget": ["forget", "--camera", "gate", "--dry-run"],
        "ask": ["ask", "who?"],
        "chat": ["chat"],
        "mcp": ["mcp"],
        "serve": ["serve", "--port", "0"],
        "thread": ["thread", "list"],
        "train": ["train", "sft", "--config", "/no/such.yaml"],
        "eval": ["eval", "--model", "tiny", "--data", "/no/such.json"],
        "status": ["status"],
    }
    return good[args[0]]


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_bad_argument_is_one_line_and_exit_2(name, marc_home):
    args, expected = COMMANDS[name]
    result = CliRunner().invoke(app, args)
    line = _one_line(result)
    assert result.exit_code == 2, (args, result.output)
    assert line.startswith("error: ") and expected in line, line


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize(("env", "variable"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_and_exit_2(name, env, variable, marc_home, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = _valid_args(COMMANDS[name][0])
    result = CliRunner().invoke(app, args)
    line = _one_line(result)
    assert result.exit_code == 2, (args, result.output)
    assert line.startswith("error: invalid setting") and variable in line, line


def test_every_command_is_covered():
    import typer

    names = set(typer.main.get_command(app).commands)
    covered = {n.split()[0] for n in COMMANDS}
    assert names <= covered, names - covered


def test_debug_shows_the_traceback_for_any_command(marc_home):
    result = CliRunner().invoke(app, ["--debug", "train", "sft", "--config", "/no/such.yaml"])
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_ask_with_an_invalid_event_length_pair_is_one_line_in_a_real_process(marc_home):
    env = {"MARC_MIN_EVENT_S": "5", "MARC_MAX_EVENT_S": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "marc.agent._cli", "ask", "who"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: invalid settings: MARC_MIN_EVENT_S (5.0) must not exceed MARC_MAX_EVENT_S (1.0)"
    ]
