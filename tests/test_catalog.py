"""The SQL catalog on SQLite and on the machine's PostgreSQL: schema, time zones, counts."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from marc.memory.catalog import Base, Catalog, Event, Video
from marc.memory.catalog.catalog import _alembic_config, upgrade
from marc.memory.core.errors import StoreError


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'c.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with Catalog(url) as c:
        if (
            request.param == "postgresql"
        ):  # the session database is shared by the tests: start empty
            with c.session() as s:
                s.execute(sa.delete(Event))
                s.execute(sa.delete(Video))
        yield c


def test_migrations_create_exactly_the_models_schema(catalog: Catalog):
    with catalog.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head
    Catalog(catalog.url).close()  # opening again is a no-op upgrade


def test_upgrade_renames_start_sources_and_adds_partial(tmp_path):
    """A catalog of the first schema (``metadata``/``filename`` sources) upgrades: its rows say
    ``container``/``name`` and its videos are whole (``declared_duration_s`` NULL)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        for vid, source in [("a", "metadata"), ("b", "filename"), ("c", "mtime"), ("d", None)]:
            conn.execute(
                sa.text(
                    "INSERT INTO videos (id, path, camera, status, recorded_at_source, created_at,"
                    " updated_at) VALUES (:id, :p, 'cam', 'done', :s, '2024-01-01', '2024-01-01')"
                ),
                {"id": vid, "p": f"/{vid}.mp4", "s": source},
            )
    engine.dispose()
    with Catalog(url) as c, c.session() as s:
        rows = {
            v.id: (v.recorded_at_source, v.declared_duration_s) for v in s.scalars(sa.select(Video))
        }
    assert rows == {"a": ("container", None), "b": ("name", None), "c": ("mtime", None),
                    "d": (None, None)}  # fmt: skip


def test_times_come_back_as_the_same_utc_instant(catalog: Catalog):
    cet = timezone(timedelta(hours=1))
    t = datetime(2024, 1, 31, 23, 59, 59, 250000, tzinfo=cet)
    with catalog.session() as s:
        s.add(Video(id="v1", fingerprint="f1", path="/x.mp4", status="done", recorded_at=t))
        s.add(
            Event(
                id="e1",
                video_id="v1",
                index=0,
                start_s=0,
                end_s=1,
                start_at=t,
                end_at=t,
                boundary="start",
            )
        )
    with catalog.session() as s:
        got = s.get(Video, "v1").recorded_at
    assert got == t and got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert catalog.counts() == {"videos": 1, "events": 1, "failed": 0}


def test_naive_times_are_refused(catalog: Catalog):
    with pytest.raises((ValueError, StoreError)), catalog.session() as s:
        s.add(Video(id="v2", path="/y.mp4", recorded_at=datetime(2024, 1, 1)))
        s.flush()


def test_failed_rows_count_separately_and_rollback_keeps_data(catalog: Catalog):
    with catalog.session() as s:
        s.add(
            Video(id="ok", fingerprint="a", path="/a", status="done", recorded_at=datetime.now(UTC))
        )
        s.add(Video(id="bad", fingerprint="b", path="/b", status="failed", error="not a video"))
    with pytest.raises(StoreError), catalog.session() as s:
        s.add(Video(id="dup", fingerprint="a", path="/c", status="done"))  # same content twice
    assert catalog.counts() == {"videos": 1, "events": 0, "failed": 1}


def test_unreachable_database_is_a_one_line_store_error():
    with pytest.raises(StoreError) as e:
        Catalog("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    assert "127.0.0.1:9" in str(e.value) and "\n" not in str(e.value)


def test_named_queries_see_only_committed_videos(catalog: Catalog):
    t = datetime(2024, 5, 1, 12, tzinfo=UTC)
    with catalog.session() as s:
        for vid, status, at in (("late", "done", t), ("early", "done", t - timedelta(hours=1))):
            s.add(Video(id=vid, fingerprint=vid, path=f"/{vid}.mp4", status=status, recorded_at=at))
        s.add(Video(id="claim", fingerprint="claim", path="/claim.mp4", status="pending"))
        for vid in ("late", "early", "claim"):
            for i in (1, 0):
                s.add(
                    Event(
                        id=f"{vid}{i}",
                        video_id=vid,
                        index=i,
                        start_s=i,
                        end_s=i + 1,
                        start_at=t,
                        end_at=t,
                        boundary="cut" if i else "start",
                    )
                )
    assert set(catalog.hits(["late0", "claim0", "nowhere"])) == {"late0"}
    e, v = catalog.hits(["early1"])["early1"]
    assert (e.index, e.boundary, v.path) == (1, "cut", "/early.mp4")
    assert [e.id for e, _ in catalog.events()] == ["early0", "early1", "late0", "late1"]
    assert [e.id for e, _ in catalog.events("late")] == ["late0", "late1"]
    assert catalog.video_ids("done") == {"early", "late"}
    assert catalog.video_ids("done", "pending") == {"early", "late", "claim"}
    assert catalog.done_video("claim") is None and catalog.done_video("nowhere") is None
    video = catalog.done_video("late")  # usable after its session: events loaded, by index
    assert [e.index for e in video.events] == [0, 1] and video.paths == []
    catalog.move_video("late", "events__other", "/moved.mp4")
    assert catalog.placements()["late"] == "events__other"


def test_display_url_hides_the_password():
    with pytest.raises(StoreError) as e:
        Catalog("postgresql+psycopg://marc:s3cret@127.0.0.1:9/none?connect_timeout=2")
    assert "s3cret" not in str(e.value) and "***" in str(e.value)
    with Catalog("sqlite://") as c:
        assert c.display_url == "sqlite://"


def test_an_interrupted_runs_claims_are_listed_and_first_time_ones_released(catalog, tmp_path):
    f = tmp_path / "x.mp4"
    f.write_bytes(b"x")
    st = os.stat(f)
    run = catalog.start_run("host", 1, [])
    # "old" was stored before (it has events); "new" is claimed for the first time
    with catalog.session() as s:
        s.add(Video(id="old", fingerprint="f-old", path="/old.mp4", status="done",
                    recorded_at_source="folder+name", declared_duration_s=212.1))  # fmt: skip
        s.add(Event(id="e-old", video_id="old", index=0, start_s=0, end_s=1, boundary="start",
                    start_at=datetime(2024, 1, 1, tzinfo=UTC),
                    end_at=datetime(2024, 1, 1, tzinfo=UTC)))  # fmt: skip
    assert catalog.start_source_counts() == {"container": 0, "name": 0, "folder+name": 1,
                                             "mtime": 0}  # fmt: skip
    assert catalog.partial_count() == 1
    for vid in ("old", "new"):
        assert catalog.claim(vid, f"f-{vid}", f"/{vid}.mp4", st, run, "k", "c") == "claimed"
    assert sorted(catalog.pending_video_ids(run)) == ["new", "old"]
    assert catalog.release_claims(run) == 1
    assert catalog.video_ids("pending") == {"old"}  # its old events have no vectors now
    catalog.finish_run(run, ingested=0, skipped=0, failed=0, events_added=0, status="interrupted")
    other = catalog.start_run("host", 2, [])  # the next run takes the claim left over
    assert catalog.claim("old", "f-old", "/old.mp4", st, other, "k", "c") == "claimed"
