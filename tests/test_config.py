"""Component configs (marc.memory.core.config) and how Settings builds them.

Libraries take these configs and never read the environment; ``Settings`` (``MARC_*``, ``.env``)
is read at the application boundary and builds them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from marc.memory.core.config import (
    GATE_THRESHOLD,
    PE_CORE_B16,
    QWEN25_VL_3B,
    AgentConfig,
    AnswerModelConfig,
    CompressionConfig,
    EncoderConfig,
    MemoryConfig,
    SegmentationConfig,
    StoreConfig,
    ThreadsConfig,
    as_config,
    default_home,
)
from marc.memory.core.settings import Settings

#: Segmentation keys of the implementation before the component configs (commit d21f1fc's
#: ``Settings.segmentation_key()``): event ids derive from them, so they must never move.
PINNED_KEYS = [
    ({}, "211633f94564e313"),
    ({"max_event_s": 10}, "03c0185dcfb4c059"),
    ({"gate_threshold": 9, "min_event_s": 0}, "8f3e6dca93c80fd9"),
    ({"cut_threshold": 0.3, "max_event_s": 4, "min_event_s": 1}, "fc0a65e0c8c9df25"),
    ({"gate_threshold": 1}, "211633f94564e313"),  # a lower gate never skips a transition
]


@pytest.fixture(autouse=True)
def _no_marc_environment(monkeypatch):
    """Each test sets the MARC_* variables it means; none leak in from the test process."""
    import os

    for var in [v for v in os.environ if v.startswith("MARC_")]:
        monkeypatch.delenv(var)


@pytest.mark.parametrize(("values", "key"), PINNED_KEYS)
def test_the_segmentation_key_is_unchanged(values, key, tmp_path):
    assert Settings(home=tmp_path, _env_file=None, **values).segmentation_key() == key
    assert SegmentationConfig(**values).key() == key  # ints are hashed as the floats they mean


def test_every_marc_variable_reaches_its_component(monkeypatch, tmp_path: Path):
    env = {
        "MARC_HOME": str(tmp_path / "h"),
        "MARC_MODELS": "tiny",
        "MARC_DATABASE_URL": "postgresql+psycopg://u@db/marc",
        "MARC_QDRANT_URL": "http://qdrant:6333",
        "MARC_QDRANT_API_KEY": "qk",
        "MARC_ENCODER": "tiny-wide",
        "MARC_DEVICE": "cuda:1",
        "MARC_CUT_THRESHOLD": "0.4",
        "MARC_MAX_EVENT_S": "12",
        "MARC_MIN_EVENT_S": "1.5",
        "MARC_GATE_THRESHOLD": "3",
        "MARC_SEGMENT_RUNTIME": "torch",
        "MARC_FRAMES_PER_EVENT": "5",
        "MARC_SAMPLE_FPS": "2",
        "MARC_BATCH_SIZE": "7",
        "MARC_PRECISION": "bf16",
        "MARC_VLM": "/models/student",
        "MARC_VLM_BACKEND": "vllm",
        "MARC_VLM_URL": "http://vllm:8000/v1",
        "MARC_VLM_API_KEY": "vk",
        "MARC_VLM_SERVED_NAME": "student",
        "MARC_VLM_FRAMES": "16",
        "MARC_VLM_FRAME_PIXELS": "6272",
        "MARC_VLM_MIN_FRAME_PIXELS": "3136",
        "MARC_VLM_SAMPLE_FPS": "1.5",
        "MARC_VLM_MIN_FRAMES": "6",
        "MARC_VLM_MAX_NEW_TOKENS": "9",
        "MARC_VLM_DTYPE": "bfloat16",
        "MARC_VLM_TIMEOUT_S": "12",
        "MARC_COMPRESSION_BUDGET": "2",
        "MARC_COMPRESSION_WINDOW": "3",
        "MARC_COMPRESSION_RATIO": "0.25",
        "MARC_MIN_SCORE": "0.2",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MARC_THREADS_URL", raising=False)
    s = Settings(_env_file=None)
    home = (tmp_path / "h").resolve()
    a = s.agent
    assert a == AgentConfig(
        memory=MemoryConfig(
            segmentation=SegmentationConfig(0.4, 12.0, 1.5, 3.0, "torch", "cuda:1"),
            encoder=EncoderConfig("tiny-wide", "cuda:1", 5, 2.0, 7, "bf16", home / "models"),
            store=StoreConfig(
                home, "postgresql+psycopg://u@db/marc", home / "vectors", "http://qdrant:6333", "qk"
            ),
        ),
        compression=CompressionConfig(2, 3, 0.25),
        answer_model=AnswerModelConfig(
            "/models/student",
            "vllm",
            "http://vllm:8000/v1",
            "vk",
            "student",
            16,
            6272,
            9,
            "bfloat16",
            12.0,
            "cuda:1",
            home / "models",
            min_frame_pixels=3136,
            sample_fps=1.5,
            min_frames=6,
        ),  # fmt: skip
        threads=ThreadsConfig("postgresql://u@db/marc"),  # the catalog's PostgreSQL database
        min_score=0.2,
    )
    assert (s.memory, s.compression, s.answer_model, s.threads) == (
        a.memory, a.compression, a.answer_model, a.threads
    )  # fmt: skip
    assert (s.segmentation, s.encoder_config, s.store) == (
        a.memory.segmentation, a.memory.encoder, a.memory.store
    )  # fmt: skip
    assert s.segmentation_key() == a.memory.segmentation.key()


def test_defaults_agree_with_settings_defaults(tmp_path: Path):
    """A config's defaults are MARC's defaults (models resolved to ``MARC_MODELS=default``)."""
    s = Settings(home=default_home(), _env_file=None)
    assert s.agent == AgentConfig()
    assert EncoderConfig().model == PE_CORE_B16 and AnswerModelConfig().model == QWEN25_VL_3B
    assert SegmentationConfig().gate_threshold == GATE_THRESHOLD


def test_derived_locations_and_threads():
    store = StoreConfig(home=Path("/tmp/marc-a"))
    assert store.catalog_url == "sqlite:////tmp/marc-a/catalog.db"
    assert store.vectors_path == Path("/tmp/marc-a/vectors")
    assert (
        StoreConfig(home="/tmp/marc-a", catalog_url="sqlite:///x.db").catalog_url
        == "sqlite:///x.db"
    )
    s = Settings(home="/tmp/marc-a", _env_file=None)
    assert s.threads.url == "sqlite:////tmp/marc-a/threads.db"
    assert ThreadsConfig(" postgres://u@h/db ").url == "postgresql://u@h/db"
    with pytest.raises(ValueError, match=r"MARC_THREADS_URL=mysql://h/db: use postgresql://"):
        ThreadsConfig("mysql://h/db")
    with pytest.raises(ValueError, match="not-a-url"):
        StoreConfig(qdrant_url="not-a-url")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SegmentationConfig(cut_threshold=1), r"cut_threshold must be in \(0, 1\)"),
        (lambda: SegmentationConfig(min_event_s=5, max_event_s=4), r"min_event_s must be <="),
        (lambda: SegmentationConfig(runtime="gpu"), r"set runtime='auto'"),
        (lambda: EncoderConfig(frames_per_event=0), r"set frames_per_event=8"),
        (lambda: EncoderConfig(model=""), r"EncoderConfig\.model must be a model id"),
        (lambda: CompressionConfig(ratio=0), r"ratio must be in \(0, 1\].*set ratio=0\.5"),
        (lambda: CompressionConfig(window=0), r"MARC_COMPRESSION_WINDOW"),
        (lambda: AnswerModelConfig(frames=1), r"AnswerModelConfig\.frames must be >= 2"),
        (lambda: AnswerModelConfig(frame_pixels=100), r"set frame_pixels=100352"),
        (lambda: AnswerModelConfig(backend="tgi"), r"transformers or vllm"),
        (lambda: AnswerModelConfig(timeout_s=0), r"MARC_VLM_TIMEOUT_S"),
    ],
)
def test_invalid_configs_say_what_to_set(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_limits_settings_accepts_are_valid_configs(tmp_path: Path):
    s = Settings(
        home=tmp_path, _env_file=None, min_event_s=4, max_event_s=4, gate_threshold=0,
        compression_ratio=1, vlm_frames=2, vlm_frame_pixels=4 * 28 * 28,
    )  # fmt: skip
    assert s.agent.memory.segmentation.min_event_s == 4.0
    assert s.answer_model.frames == 2 and s.compression.ratio == 1


def test_configs_are_frozen_and_change_by_replace():
    c = AnswerModelConfig(model="tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.frames = 8  # type: ignore[misc]
    d = dataclasses.replace(c, frames=8)
    assert (c.frames, d.frames, d.model) == (64, 8, "tiny")
    with pytest.raises(ValueError, match="frames must be >= 2"):
        dataclasses.replace(c, frames=0)


def test_as_config(tmp_path: Path):
    s = Settings(home=tmp_path, models="tiny", _env_file=None)
    assert as_config(None, MemoryConfig) == MemoryConfig()
    assert as_config(s, MemoryConfig) == s.memory
    assert as_config(s.agent, EncoderConfig) == s.memory.encoder  # nested parts are found
    mem = s.memory
    assert as_config(mem, MemoryConfig) is mem
    with pytest.raises(TypeError, match="MemoryConfig has no CompressionConfig"):
        as_config(mem, CompressionConfig)
    with pytest.raises(TypeError, match="expected a MemoryConfig or Settings, got str"):
        as_config("home", MemoryConfig)


def test_libraries_given_nothing_use_defaults_not_the_environment(monkeypatch, tmp_path):
    """With MARC_* set, a library object built without a config uses the config's defaults."""
    from marc.agent.conversation import Conversation
    from marc.agent.graph import build_graph
    from marc.memory.archive import Archive
    from marc.memory.retrieval import Retriever

    monkeypatch.setenv("MARC_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("MARC_MODELS", "tiny")
    monkeypatch.setenv("MARC_COMPRESSION_BUDGET", "5")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MARC_VLM_FRAMES=4\n")
    assert Archive().config == MemoryConfig()  # nothing opened: the catalog opens on first use
    resources = build_graph().marc_resources
    assert resources.config == AgentConfig()
    with Conversation() as conv:
        assert conv.config == AgentConfig()
    here = StoreConfig(home=tmp_path / "lib", catalog_url="sqlite:///" + str(tmp_path / "c.db"))
    with Retriever(MemoryConfig(store=here)) as r:  # opens a catalog and a store, here only
        assert r.config.store == here
    assert not (tmp_path / "env-home").exists()
    assert Settings().compression.budget == 5  # the boundary does read the environment
    assert Settings().answer_model.frames == 4
