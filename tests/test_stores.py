"""Vector stores: real Qdrant Edge shards and real qdrant-client local mode, one contract."""

from __future__ import annotations

import http.server
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from marc.memory.core.settings import Settings
from marc.memory.stores import (
    EdgeStore,
    EventPoint,
    QdrantStore,
    StoreError,
    VectorStore,
    open_store,
)

DIM = 16
T0 = datetime(2024, 1, 31, 22, 0, tzinfo=UTC)
CAMERAS = ("gate", "lobby", "yard")
VIDEOS = ("v-a", "v-b", "v-c", "v-d")
NAME = VectorStore.collection_name("tiny", DIM)


def make_points(n: int = 240, seed: int = 0, dim: int = DIM) -> list[EventPoint]:
    """``n`` events of 10-40 s, tiling 4 videos of 3 cameras over a few hours."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)  # [n, dim]
    points, clock = [], {v: T0 + timedelta(minutes=17 * i) for i, v in enumerate(VIDEOS)}
    for i in range(n):
        video = VIDEOS[i % len(VIDEOS)]
        start = clock[video]
        length = float(rng.uniform(10, 40))
        clock[video] = start + timedelta(seconds=length)
        eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"marc-test/{seed}/{i}"))
        origin = T0 + timedelta(minutes=17 * VIDEOS.index(video))
        start_s = (start - origin).total_seconds()
        points.append(
            EventPoint(
                id=eid,
                vector=vectors[i],
                payload={
                    "event_id": eid,
                    "video_id": video,
                    "camera": CAMERAS[VIDEOS.index(video) % len(CAMERAS)],
                    "start_s": start_s,
                    "end_s": start_s + length,
                    "start_at": start.isoformat(),
                    "end_at": (start + timedelta(seconds=length)).isoformat(),
                },
            )
        )
    return points


def brute_force(points, query, k, keep=lambda p: True):
    """Expected hits: exact cosine top-k over the points ``keep`` accepts, as ``[(id, score)]``."""
    kept = [p for p in points if keep(p)]
    if not kept:
        return []
    X = np.stack([p.vector for p in kept]).astype(np.float64)  # [n, dim]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    q = query.astype(np.float64) / np.linalg.norm(query)
    scores = X @ q  # [n]
    order = np.argsort(-scores)[:k]
    return [(kept[i].id, float(scores[i])) for i in order]


def overlaps(p, since=None, until=None) -> bool:
    start = datetime.fromisoformat(p.payload["start_at"])
    end = datetime.fromisoformat(p.payload["end_at"])
    return (since is None or end > since) and (until is None or start < until)


def open_backend(kind: str, root: Path) -> VectorStore:
    return EdgeStore(root / "edge") if kind == "edge" else QdrantStore(path=root / "local")


BACKENDS = ["edge", "qdrant-local"]


@pytest.fixture(params=BACKENDS)
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Both backends, each holding ``make_points()`` in ``NAME``: read-only tests share them.

    (qdrant-client's path mode commits to SQLite once per point, about 15 ms here, so filling
    stores once per module keeps the file fast.)
    """
    points = make_points()
    stores = {kind: open_backend(kind, tmp_path_factory.mktemp(kind)) for kind in BACKENDS}
    for store in stores.values():
        store.ensure_collection(NAME, DIM)
        store.upsert(NAME, points)
    yield stores, points
    for store in stores.values():
        store.close()


@pytest.fixture
def filled(kind, shared):
    """A store of ``kind`` holding ``make_points()``; do not modify it."""
    stores, points = shared
    return stores[kind], points


@pytest.fixture
def fresh(kind, tmp_path):
    """An empty store of ``kind`` with collection ``NAME``, and 40 points not yet in it."""
    with open_backend(kind, tmp_path) as store:
        store.ensure_collection(NAME, DIM)
        yield store, make_points(40, seed=5)


# ---------------------------------------------------------------------------- congruence
def test_backends_agree(shared):
    stores, points = shared
    queries = np.random.default_rng(7).standard_normal((6, DIM)).astype(np.float32)
    window = {"since": T0 + timedelta(minutes=20), "until": T0 + timedelta(minutes=50)}
    filters = [{}, {"cameras": ["gate"]}, window, {"cameras": ["lobby", "yard"], **window}]
    results = {}
    for kind, store in stores.items():
        assert store.count(NAME) == len(points)
        assert store.video_ids(NAME) == set(VIDEOS)
        results[kind] = [
            [(h.id, h.score) for h in store.search(NAME, q, 5, **f)]
            for q in queries
            for f in filters
        ]
    edge, local = results["edge"], results["qdrant-local"]
    for e, loc in zip(edge, local, strict=True):
        assert [i for i, _ in e] == [i for i, _ in loc]
        np.testing.assert_allclose([s for _, s in e], [s for _, s in loc], atol=1e-5)
    assert sum(len(r) for r in edge) == len(queries) * len(filters) * 5


def test_search_is_exact_cosine_top_k(filled):
    store, points = filled
    for q in np.random.default_rng(1).standard_normal((4, DIM)).astype(np.float32):
        hits = store.search(NAME, q, k=7)
        expected = brute_force(points, q, 7)
        assert [h.id for h in hits] == [i for i, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        by_id = {p.id: p.payload for p in points}
        for h in hits:  # Edge may round a float payload by one ulp (1022.3133854074423 -> ...424)
            want = by_id[h.id]
            assert h.payload.keys() == want.keys()
            for key, value in want.items():
                assert h.payload[key] == (pytest.approx(value) if key.endswith("_s") else value)


@pytest.mark.parametrize(
    "filters",
    [
        {"cameras": ["gate"]},
        {"cameras": ["lobby", "yard"]},
        {"since": T0 + timedelta(minutes=40)},
        {"until": T0 + timedelta(minutes=10)},
        {"since": T0 + timedelta(minutes=30), "until": T0 + timedelta(minutes=31)},
        {
            "cameras": ["yard"],
            "since": T0 + timedelta(minutes=35),
            "until": T0 + timedelta(hours=2),
        },
        {"video_ids": ["v-b", "v-d"]},
        {"video_ids": ["v-a"], "cameras": ["gate"], "until": T0 + timedelta(minutes=5)},
        {"exclude_video_ids": ["v-a", "v-c"]},
        {"exclude_video_ids": ["v-b"], "cameras": ["gate", "yard"]},
    ],
)
def test_filters_run_inside_qdrant(filled, filters):
    store, points = filled

    def keep(p):
        cams, vids = filters.get("cameras"), filters.get("video_ids")
        return (
            (cams is None or p.payload["camera"] in cams)
            and (vids is None or p.payload["video_id"] in vids)
            and p.payload["video_id"] not in filters.get("exclude_video_ids", ())
            and overlaps(p, filters.get("since"), filters.get("until"))
        )

    matching = sum(map(keep, points))
    assert 0 < matching < len(points)  # every filter here really filters
    for q in np.random.default_rng(2).standard_normal((3, DIM)).astype(np.float32):
        for k in (1, 5, matching + 3):
            hits = store.search(NAME, q, k, **filters)
            assert len(hits) == min(k, matching)  # k whenever k match: no over-fetch shortfall
            expected = brute_force(points, q, k, keep)
            assert [h.id for h in hits] == [i for i, _ in expected]


def test_time_window_is_overlap_of_half_open_spans(filled):
    store, points = filled
    p = points[50]
    start, end = (datetime.fromisoformat(p.payload[k]) for k in ("start_at", "end_at"))
    ids = lambda **f: {h.id for h in store.search(NAME, p.vector, 1000, **f)}  # noqa: E731
    assert p.id in ids(since=start, until=start + timedelta(microseconds=1))
    assert p.id in ids(since=end - timedelta(microseconds=1), until=end + timedelta(hours=1))
    assert p.id not in ids(since=end)  # ended exactly when the window opens
    assert p.id not in ids(until=start)  # starts exactly when the window closes
    east = start.astimezone(timezone(timedelta(hours=5)))  # the same instant, another offset
    assert ids(since=east, until=east + timedelta(seconds=1)) == ids(
        since=start, until=start + timedelta(seconds=1)
    )


def test_empty_selections_match_nothing(filled):
    store, points = filled
    assert store.search(NAME, points[0].vector, 3, cameras=[]) == []
    assert store.search(NAME, points[0].vector, 3, video_ids=[]) == []
    assert store.search(NAME, points[0].vector, 3, cameras=["no-such-camera"]) == []


# ------------------------------------------------------------------------------- writes
def test_upsert_is_idempotent_and_overwrites(fresh):
    store, points = fresh
    store.upsert(NAME, points)
    store.upsert(NAME, points)
    store.upsert(NAME, points[:10])
    assert store.count(NAME) == len(points)
    p = points[3]
    moved = EventPoint(p.id, -p.vector, {**p.payload, "camera": "moved"})
    store.upsert(NAME, [moved])
    assert store.count(NAME) == len(points)
    [hit] = store.search(NAME, -p.vector, 1, cameras=["moved"])
    assert hit.id == p.id and hit.score == pytest.approx(1.0, abs=1e-5)


def test_delete_video(fresh):
    store, points = fresh
    store.upsert(NAME, points)
    assert store.video_ids(NAME) == set(VIDEOS)
    gone = sum(p.payload["video_id"] == "v-b" for p in points)
    other = sum(p.payload["video_id"] == "v-c" for p in points)
    assert store.count(NAME, exclude_video_ids=["v-b", "v-c"]) == len(points) - gone - other
    store.delete_video(NAME, "v-b")
    store.delete_video(NAME, "never-ingested")
    assert store.count(NAME) == len(points) - gone
    assert store.video_ids(NAME) == set(VIDEOS) - {"v-b"}
    b_point = next(p for p in points if p.payload["video_id"] == "v-b")
    hits = store.search(NAME, b_point.vector, len(points))
    assert len(hits) == len(points) - gone
    assert all(h.payload["video_id"] != "v-b" for h in hits)


@pytest.mark.parametrize("where", ["edge", "qdrant-memory"])
def test_video_ids_scrolls_past_one_page(where, tmp_path):
    points = make_points(n=2100, seed=3, dim=4)
    points = [
        EventPoint(p.id, p.vector, {**p.payload, "video_id": f"vid-{i // 2}"})
        for i, p in enumerate(points)
    ]
    store = EdgeStore(tmp_path) if where == "edge" else QdrantStore(location=":memory:")
    with store:
        store.ensure_collection("small", 4)
        store.upsert("small", points)
        assert store.video_ids("small") == {f"vid-{i}" for i in range(1050)}


def test_reopen_keeps_data(kind, tmp_path):
    points = make_points(60)
    with open_backend(kind, tmp_path) as store:
        store.ensure_collection(NAME, DIM)
        store.upsert(NAME, points)
        before = [h.id for h in store.search(NAME, points[9].vector, 5, cameras=["gate"])]
    with open_backend(kind, tmp_path) as store:
        assert store.collections() == [NAME]
        assert store.dim(NAME) == DIM
        assert store.count(NAME) == len(points)
        assert [h.id for h in store.search(NAME, points[9].vector, 5, cameras=["gate"])] == before
        store.ensure_collection(NAME, DIM)  # reopening an existing collection is a no-op
        assert store.count(NAME) == len(points)
        with pytest.raises(StoreError, match="dimension"):
            store.ensure_collection(NAME, DIM + 1)


def test_collection_names_keep_encoders_apart(kind, tmp_path):
    names = {
        VectorStore.collection_name(enc, dim)
        for enc, dim in [
            ("tiny", 16),
            ("tiny", 32),
            ("Tiny", 16),
            ("hf-hub:timm/PE-Core-B-16", 1024),
            ("hf-hub:timm/PE-Core-B-16", 16),
            ("hf-hub:timm/PE-Core-L-14", 1024),
            ("hf-hub:timm/pe-core-b-16", 1024),
        ]
    }
    assert len(names) == 7
    assert all(n.startswith("events__") and "/" not in n and ":" not in n for n in names)
    a, b = (VectorStore.collection_name(e, DIM) for e in ("tiny", "hf-hub:timm/PE-Core-B-16"))
    pa, pb = make_points(20, seed=1), make_points(30, seed=2)
    with open_backend(kind, tmp_path) as store:
        for name, pts in ((a, pa), (b, pb)):
            store.ensure_collection(name, DIM)
            store.upsert(name, pts)
        assert store.collections() == sorted([a, b])
        assert (store.count(a), store.count(b)) == (20, 30)
        assert {h.id for h in store.search(a, pb[0].vector, 50)} == {p.id for p in pa}


def test_misuse_is_reported(kind, tmp_path):
    with open_backend(kind, tmp_path) as store:
        with pytest.raises(StoreError):
            store.count("events__missing__3")
        store.ensure_collection(NAME, DIM)
        p = make_points(1, dim=DIM + 1)[0]
        with pytest.raises(ValueError, match="shape"):
            store.upsert(NAME, [p])
        with pytest.raises(ValueError, match="zero"):
            store.upsert(NAME, [EventPoint(p.id, np.zeros(DIM), p.payload)])
        with pytest.raises(ValueError, match="timezone"):
            store.search(NAME, np.ones(DIM), since=datetime(2024, 1, 1))
        with pytest.raises(TypeError):
            store.search(NAME, np.ones(DIM), cameras="gate")
        with pytest.raises(ValueError):
            store.ensure_collection("../escape", DIM)
    with pytest.raises(StoreError, match="closed"):
        store.count(NAME)


def test_event_point_checks_its_payload():
    good = make_points(1)[0]
    EventPoint(good.id, good.vector, good.payload)
    with pytest.raises(ValueError, match="event_id"):
        EventPoint(good.id, good.vector, {**good.payload, "event_id": str(uuid.uuid4())})
    with pytest.raises(ValueError, match="offset"):
        EventPoint(good.id, good.vector, {**good.payload, "start_at": "2024-01-31T23:59:59"})
    with pytest.raises(ValueError, match="lacks camera"):
        EventPoint(good.id, good.vector, {k: v for k, v in good.payload.items() if k != "camera"})
    with pytest.raises(ValueError, match="not canonical"):
        EventPoint(good.id.upper(), good.vector, {**good.payload, "event_id": good.id.upper()})


# ------------------------------------------------------------------------- Edge specifics
_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from marc.memory.stores import EdgeStore, EventPoint
root, name, n, dim = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
payload = dict(video_id="killed", camera="gate", start_s=0.0, end_s=1.0,
               start_at="2024-01-31T23:59:59+00:00", end_at="2024-02-01T00:00:00+00:00")
rng = np.random.default_rng(0)
ids = [line.strip() for line in sys.stdin]
points = [EventPoint(i, rng.standard_normal(dim), dict(payload, event_id=i)) for i in ids[:n]]
release = None if sys.argv[5] == "hold" else float(sys.argv[5])
store = EdgeStore(root, release_after_s=release)
store.ensure_collection(name, dim)
store.upsert(name, points)
print("upserted", flush=True)
time.sleep(120)
"""


def _writer(tmp_path, root, ids, release: str) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), str(root), NAME, str(len(ids)), str(DIM), release],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_edge_upsert_survives_kill_9_and_locks_out_second_opener(tmp_path):
    """A real process upserts, says so, and is SIGKILLed at once; the points must be there."""
    root, n = tmp_path / "vectors", 300
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"kill/{i}")) for i in range(n)]
    proc = _writer(tmp_path, root, ids, "hold")
    try:
        proc.stdin.write("\n".join(ids))
        proc.stdin.close()
        assert proc.stdout.readline().strip() == "upserted"
        # While the writer holds the shard, a second opener waits, then is refused clearly,
        # without damage.
        t0 = time.monotonic()
        with (
            EdgeStore(root, wait_s=0.5) as other,
            pytest.raises(StoreError, match="in use by another process"),
        ):
            other.count(NAME)
        assert 0.5 <= time.monotonic() - t0 < 5
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    with EdgeStore(root) as store:
        assert store.count(NAME) == n
        assert store.video_ids(NAME) == {"killed"}
        hits = store.search(NAME, np.ones(DIM, dtype=np.float32), n)
        assert sorted(h.id for h in hits) == sorted(ids)


_BUSY_WRITER = """
import sys
from pathlib import Path
import numpy as np
from marc.memory.stores import EdgeStore
sys.path.insert(0, sys.argv[3])
root, name = Path(sys.argv[1]), sys.argv[2]
from test_stores import DIM, make_points
with EdgeStore(root, release_after_s=None) as store:
    store.ensure_collection(name, DIM)
    print("open", flush=True)
    for i in range(150):  # every upsert flushes the payload index
        store.upsert(name, make_points(n=10, seed=i))
print("done", flush=True)
"""


@pytest.mark.slow
def test_edge_refused_openers_do_not_corrupt_the_holder(tmp_path):
    """Qdrant Edge's own failed ``load`` (WAL locked) damaged the holder's payload index, so
    that the holder's next flush failed ("Tracker journal ... is shorter than expected"); two
    ``marc ingest`` at once hit it. The store's own lock keeps refused openers away from Edge."""
    script = tmp_path / "busy_writer.py"
    script.write_text(_BUSY_WRITER)
    root = tmp_path / "vectors"
    here = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), NAME, here],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "open"
        refused = 0
        while proc.poll() is None:
            with EdgeStore(root, wait_s=0) as other:
                try:
                    other.count(NAME)
                except StoreError:
                    refused += 1
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "done" and refused > 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with EdgeStore(root) as store:
        assert store.count(NAME) == 1500


@pytest.mark.slow
def test_edge_idle_shard_is_released_to_another_process(tmp_path):
    """A live process that stopped using a shard lets another process read and write it."""
    root, n = tmp_path / "vectors", 50
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"idle/{i}")) for i in range(n)]
    proc = _writer(tmp_path, root, ids, "0.2")
    try:
        proc.stdin.write("\n".join(ids))
        proc.stdin.close()
        assert proc.stdout.readline().strip() == "upserted"
        with EdgeStore(root, wait_s=10) as other:  # the writer is alive, its shard idle
            assert other.count(NAME) == n
            other.upsert(NAME, make_points(n=3))
            assert other.count(NAME) == n + 3
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_edge_store_reopens_after_idle_release(tmp_path):
    points = make_points(n=20)
    with EdgeStore(tmp_path, release_after_s=0.05) as store:
        store.ensure_collection(NAME, DIM)
        store.upsert(NAME, points[:10])
        deadline = time.monotonic() + 5
        while store._shards and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not store._shards, "the idle shard was not released"
        # Released means closed: another opener in this very process gets it at once.
        with EdgeStore(tmp_path, wait_s=0) as other:
            assert other.count(NAME) == 10
        store.upsert(NAME, points[10:])
        assert store.count(NAME) == 20


def test_edge_optimize_builds_hnsw_and_filtered_search_stays_exact(tmp_path):
    points = make_points(n=300)
    with EdgeStore(tmp_path) as store:
        store.ensure_collection(NAME, DIM)
        store.upsert(NAME, points)
    # Lower the shard's indexing threshold (default ~10 MB of vectors) so that 300 points get an
    # HNSW index; Edge persists the changed config in the shard and keeps it on later loads.
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
    )
    qe.EdgeShard.load(str(tmp_path / NAME), config).close()
    with EdgeStore(tmp_path) as store:
        store.optimize(NAME)
        with store._use(NAME) as shard:
            assert shard.info().indexed_vectors_count == len(points)
        assert store.count(NAME) == len(points)
        for q in np.random.default_rng(4).standard_normal((5, DIM)).astype(np.float32):
            for cams in (None, ["gate"], ["yard"]):
                hits = store.search(NAME, q, 5, cameras=cams)
                keep = lambda p, cams=cams: cams is None or p.payload["camera"] in cams  # noqa: E731
                assert [h.id for h in hits] == [i for i, _ in brute_force(points, q, 5, keep)]


# ----------------------------------------------------------------------- server & factory
def test_qdrant_store_takes_exactly_one_location(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        QdrantStore()
    with pytest.raises(ValueError, match="exactly one"):
        QdrantStore("http://127.0.0.1:9", path=tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        QdrantStore(path=tmp_path, location=":memory:")
    with QdrantStore(location=":memory:") as store:
        store.ensure_collection(NAME, DIM)
        store.upsert(NAME, make_points(12))
        assert store.count(NAME) == 12


def test_unreachable_url_fails_fast():
    t = time.monotonic()
    with pytest.raises(StoreError, match=r"Qdrant at http://127\.0\.0\.1:9 is unreachable"):
        QdrantStore("http://127.0.0.1:9")
    assert time.monotonic() - t < 10


def test_url_that_is_not_qdrant_is_reported(tmp_path):
    """A real HTTP server that is not Qdrant (a misconfigured URL) answers 404."""
    (tmp_path / "index.html").write_text("not qdrant")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(StoreError, match=rf"Qdrant at {url} refused the request: HTTP 404"):
            QdrantStore(url)
    finally:
        server.shutdown()
        server.server_close()


def test_open_store_follows_settings(tmp_path):
    store = open_store(Settings(home=tmp_path, models="tiny", qdrant_url=""))
    assert isinstance(store, EdgeStore) and store.path == tmp_path.resolve() / "vectors"
    store.close()
    with pytest.raises(StoreError, match="unreachable"):
        open_store(Settings(home=tmp_path, models="tiny", qdrant_url="http://127.0.0.1:9"))


def test_edge_shard_creation_is_atomic(tmp_path):
    """A kill -9 while a shard was being created leaves only a scratch folder, never a shard."""
    name = EdgeStore.collection_name("enc", 4)
    stale = tmp_path / f"{name}.creating-999999"
    stale.mkdir(parents=True)
    (stale / "edge_config.json").write_text("{half written")
    with EdgeStore(tmp_path) as store:
        store.ensure_collection(name, 4)
        assert store.collections() == [name] and store.count(name) == 0
    assert not stale.exists()


# ------------------------------------------------------------ per-video counts, vector checks
def test_video_counts_and_vector_checks_agree_with_the_points(filled):
    """Both backends count every video's points in one facet, and find every stored vector sound
    (Qdrant keeps cosine vectors normalised), all of them or a sample."""
    store, points = filled
    want = {v: sum(p.payload["video_id"] == v for p in points) for v in VIDEOS}
    assert store.video_counts(NAME) == want
    assert store.video_counts(NAME, ["v-b", "never-ingested"]) == {"v-b": want["v-b"]}
    assert store.video_counts(NAME, []) == {}
    check = store.check_vectors(NAME)
    assert (check.checked, check.bad) == (len(points), {})
    assert store.check_vectors(NAME, limit=300).checked == len(points)
    assert store.check_vectors(NAME, limit=7).checked == 7


def test_an_impossible_cosine_score_is_an_error_never_a_hit():
    """A score outside [-1, 1] beyond rounding can only come from a damaged stored vector."""
    from marc.memory.stores.base import ScoredPoint

    store = EdgeStore("/nonexistent-unused")
    with pytest.raises(StoreError, match=r"damaged: event e1 scored 3.7e\+37.*marc repair"):
        store._checked(NAME, ScoredPoint("e1", 3.7e37, {}))
    with pytest.raises(StoreError, match="scored nan"):
        store._checked(NAME, ScoredPoint("e1", float("nan"), {}))
    assert store._checked(NAME, ScoredPoint("e1", 1.0000002, {})).score == 1.0
    assert store._checked(NAME, ScoredPoint("e1", -0.5, {})).score == -0.5
