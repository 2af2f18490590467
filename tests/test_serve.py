"""``marc serve`` without a browser: the security model, the API's shape, the ingest status file.

The browser tests (real footage, a real ``marc serve`` process, headless Chromium) are in
``test_serve_browser.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marc.agent.server import Backend, create_app
from marc.agent.server.app import UPLOAD_LIMIT
from marc.agent.server.security import check_bind, cookie_value
from marc.memory import Settings
from marc.memory.ingest_status import StatusFile, running

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def backend(tmp_path: Path):
    b = Backend(Settings(home=tmp_path / "home", models="tiny").agent)
    yield b
    b.close()


@pytest.fixture
def client(backend) -> TestClient:
    # TestClient's Host is "testserver": a loopback name is what a local browser sends
    return TestClient(create_app(backend), base_url="http://127.0.0.1:8080")


@pytest.fixture
def locked(backend) -> TestClient:
    return TestClient(create_app(backend, token=TOKEN), base_url="http://10.1.2.3:8080")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_only_loopback_binds_without_a_token(host, ok):
    if ok:
        check_bind(host, None)
    else:
        with pytest.raises(ValueError, match="needs MARC_API_TOKEN"):
            check_bind(host, None)
    check_bind(host, TOKEN)  # with a token any address may be bound


def test_marc_serve_on_another_address_without_a_token_is_one_line_and_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(MARC_HOME=str(tmp_path / "home"), MARC_MODELS="tiny")
    p = subprocess.run(
        [sys.executable, "-m", "marc.agent._cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("error: --host 0.0.0.0:") and "MARC_API_TOKEN" in line


def test_a_foreign_host_header_is_refused_without_a_token(client):
    # DNS rebinding: a page on evil.example resolving its name to 127.0.0.1
    assert client.get("/api/status", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/status", headers={"Host": "localhost:8080"}).status_code == 200
    assert client.get("/api/status", headers={"Host": "[::1]:8080"}).status_code == 200


def test_the_token_is_asked_for_everywhere_but_the_login_page(locked):
    for path in ("/api/status", "/api/threads", "/media/video/x", "/openapi-3.0.json"):
        r = locked.get(path)
        assert r.status_code == 401, path
        assert "MARC_API_TOKEN" in r.json()["error"]
    r = locked.get("/search", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/search"
    assert locked.get("/login").status_code == 200
    assert locked.get("/healthz").status_code == 200
    wrong = {"Authorization": "Bearer not-it"}
    assert locked.get("/api/status", headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert locked.get("/api/status", headers=right).json()["videos"] == 0


def test_the_login_page_sets_a_cookie_that_is_not_the_token(locked):
    r = locked.post(
        "/login",
        content="token=wrong&next=/search",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 200 and "not the token" in r.text and not r.cookies
    r = locked.post(
        "/login",
        content=f"token={TOKEN}&next=//evil.example/x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"  # never off this server
    cookie = r.headers["set-cookie"]
    assert TOKEN not in cookie and cookie_value(TOKEN) in cookie
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert locked.get("/api/status").status_code == 200  # the client keeps the cookie


TRAVERSALS = [
    "/media/video/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/media/video/%2Fetc%2Fpasswd",
    "/media/video/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/media/thumb/..%2F..%2F..%2Fetc%2Fpasswd",
    "/media/frames/..%2F..%2Fetc%2Fpasswd/0",
    "/media/sheet/..%2F..%2F..%2Fetc/0",
    "/static/..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/..%2Fapp.py",
    "/static/%2e%2e%2f__init__.py",
    "/event/..%2F..%2Fetc%2Fpasswd",
    "/api/events?video=/etc/passwd",
    "/api/events?video=..%2F..%2Fetc%2Fpasswd",
    "/api/search?q=x&video=/etc/passwd",
    "/api/threads/..%2F..%2Fetc%2Fpasswd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_from_a_request_reaches_the_file_system(client, backend, path):
    # a file in the media cache is only reachable through an id the catalog knows
    cached = backend.media.root / "video" / "planted.mp4"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"planted")
    r = client.get(path)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert b"root:" not in r.content and b"import" not in r.content
    assert client.get("/media/video/planted").status_code == 404
    assert client.get("/static/app.js").status_code == 200


def test_an_example_picture_is_limited_in_size_and_kind(client, backend, tmp_path):
    r = client.post(
        "/api/search/image",
        content=b"x" * (UPLOAD_LIMIT + 1),
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 413 and "MiB" in r.json()["error"]
    r = client.post("/api/search/image", content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415  # a cross-site form cannot send image/* without a preflight
    r = client.post(
        "/api/search/image", content=b"not a png", headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 400 and "not a picture" in r.json()["error"]
    assert not (backend.home / "serve").exists() or not any((backend.home / "serve").rglob("*.png"))


def test_ask_takes_json_only_and_checks_its_thread_and_times(client):
    r = client.post(
        "/api/ask/stream", content="question=hi", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 422  # not JSON: a cross-site form cannot ask
    r = client.post("/api/ask/stream", json={"question": "who?", "thread": "no-such-thread"})
    assert r.status_code == 404 and "no-such-thread: no such thread" in r.json()["error"]
    r = client.post("/api/ask/stream", json={"question": "who?", "since": "yesterday"})
    assert r.status_code == 400 and "ISO-8601" in r.json()["error"]
    assert client.post("/api/ask", json={"question": ""}).status_code == 422


def test_the_api_is_documented_by_openapi_and_its_page_works_offline(client):
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/search", "/api/search/image", "/api/ask", "/api/ask/stream", "/api/threads",
        "/api/threads/{thread}", "/api/events", "/api/events/{event_id}", "/api/videos",
        "/api/status", "/api/ingest", "/media/video/{video_id}",
    ):  # fmt: skip
        assert path in spec["paths"], path
    legacy = client.get("/openapi-3.0.json").json()  # what the vendored Swagger UI 4 reads
    assert legacy["openapi"] == "3.0.3" and legacy["paths"].keys() == spec["paths"].keys()
    assert '{"type": "null"}' not in json.dumps(legacy)
    page = client.get("/docs").text
    assert "/static/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/static/swagger-ui-bundle.js").status_code == 200


def test_the_empty_archive_answers_with_the_cli_contracts(client):
    assert client.get("/api/videos").json() == []
    assert client.get("/api/events").json() == []
    assert client.get("/api/threads").json() == []
    st = client.get("/api/status").json()
    assert {"videos", "events", "vectors", "failed", "consistent", "cameras"} <= set(st)
    ingest = client.get("/api/ingest").json()
    assert ingest["runs"] == [] and ingest["failures"] == []
    for page in ("/", "/search", "/ask", "/ingest"):
        assert client.get(page).status_code == 200, page


def test_the_ingest_status_file_follows_the_progress_and_goes_away(tmp_path):
    seen = []
    with StatusFile(tmp_path, "ingest", lambda kind, **info: seen.append(kind)) as status:
        status("files", total=3)
        status("file", path="/f/a.mp4")
        status("stage", path="/f/a.mp4", stage="decode")
        status("result", path="/f/a.mp4", outcome="ingested", events=4)
        status("result", path="/f/b.mp4", outcome="failed", error="/f/b.mp4: not a video")
        status("file", path="/f/c.mp4")
        (run,) = running(tmp_path)
        assert run["pid"] == os.getpid() and run["mode"] == "ingest"
        assert (run["total"], run["done"], run["left"]) == (3, 2, 1)
        assert (run["ingested"], run["failed"]) == (1, 1)
        assert run["failures"][0]["error"] == "/f/b.mp4: not a video"
        assert [f["path"] for f in run["finished"]] == ["/f/a.mp4"]
    assert seen == ["files", "file", "stage", "result", "result", "file"]  # all passed on
    assert running(tmp_path) == []


def test_a_killed_ingests_status_file_is_dropped(tmp_path):
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead = int(p.stdout)
    folder = tmp_path / "ingest"
    folder.mkdir()
    import socket

    (folder / f"{dead}.json").write_text(
        json.dumps({"pid": dead, "host": socket.gethostname(), "total": 5, "done": 1})
    )
    (folder / "garbage.json").write_text("{not json")
    assert running(tmp_path) == []
    assert not (folder / f"{dead}.json").exists()
