"""Runtime settings, read once from ``MARC_*`` environment variables (and a ``.env`` file).

Only the application boundary constructs :class:`Settings` (the CLI, the LangGraph app module,
scripts, users' own code): constructing it reads the environment. Libraries take the component
configs of :mod:`marc.memory.core.config` that its properties build (``settings.memory``,
``settings.answer_model``, ...).

>>> s = Settings(home="/tmp/marc-doc", models="tiny")
>>> s.catalog_url
'sqlite:////tmp/marc-doc/catalog.db'
>>> s.memory.encoder.model, s.answer_model.model, s.compression.budget
('tiny', 'tiny', 1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from marc.memory.core.config import (
    DEVICE_FORMS,
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
    check_timezone,
    is_device,
)
from marc.memory.core.locations import check_home, client_args

__all__ = ["GATE_THRESHOLD", "PE_CORE_B16", "QWEN25_VL_3B", "Settings"]

C = TypeVar("C")


class Settings(BaseSettings):
    """Everything MARC reads from its environment. Every field maps to ``MARC_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="MARC_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
        allow_inf_nan=False,  # every float setting is finite: MARC_MAX_EVENT_S=inf is refused
    )

    home: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("marc"),
        description="Where the catalog, the embedded vector store and the model cache live.",
    )
    models: Literal["default", "tiny"] = Field(
        "default",
        description="`default`: real checkpoints, downloaded on first use. `tiny`: small "
        "random-weight models generated locally (offline use and tests), same loading code.",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL of the catalog, e.g. `postgresql+psycopg://user@host/db`; "
        "empty = SQLite file in home.",
    )
    qdrant_url: str = Field(
        "",
        description="Vector store: a Qdrant server `http(s)://host[:port]` (port 6333 if none), "
        "or qdrant-client's local mode: `file:///abs/path` / `file:relative/path` (a folder, one "
        "process at a time) or `:memory:` (gone when the process ends); empty = embedded Qdrant "
        "Edge shards in home. Anything else is refused at start-up.",
    )
    qdrant_api_key: str | None = Field(
        None, description="API key for the Qdrant server, if it needs one."
    )
    encoder: str = Field(
        "",
        description="open_clip model id of the event encoder, or a generated tiny encoder "
        "(`tiny`, `tiny-wide`); empty = PE-Core-B/16 (`default`) or `tiny` (`tiny`). After a "
        "change, `marc reindex` re-embeds the stored events.",
    )
    device: str = Field(
        "cpu",
        description="torch device for the models (`cpu`, `cuda`, `cuda:1`, `mps`); its form is "
        "checked at start-up, whether the machine has it when a model is loaded.",
    )

    # Segmentation: these decide the event boundaries, hence the event ids (see segmentation_key).
    cut_threshold: float = Field(
        0.5, gt=0, lt=1, description="TransNetV2 shot-cut probability threshold."
    )
    max_event_s: float = Field(
        30.0, gt=0, description="Longest event; longer stretches are split evenly."
    )
    min_event_s: float = Field(
        2.0, ge=0, description="Shortest stretch an activity boundary may create (hysteresis hold)."
    )
    gate_threshold: float = Field(
        GATE_THRESHOLD,
        ge=0,
        description="Change (grey levels) below which TransNetV2 windows are skipped; 0 runs every "
        "window. The default gives the ungated cuts on all test footage (bench/segmentation.md).",
    )
    segment_runtime: Literal["auto", "openvino", "torch"] = Field(
        "auto",
        description="Where TransNetV2 runs: `auto` (OpenVINO on CPU when installed, else PyTorch), "
        "`openvino` or `torch`; same probabilities within 1e-6.",
    )
    # Ingest: cameras and recording times.
    timezone: str = Field(
        "UTC",
        description="IANA time zone (`UTC`, `Europe/Berlin`, ...) of the times read from file "
        "and folder names (`20240301_120500.mp4`, `2024-03-01/120500.mp4`); container times are "
        "UTC. Every stored time is UTC; `marc ingest` states the zone it used.",
    )
    # Embedding.
    frames_per_event: int = Field(8, ge=1, description="N frames sampled evenly inside each event.")
    sample_fps: float = Field(
        4.0,
        gt=0,
        description="Rate at which the decoder keeps encoder-sized frames to sample from.",
    )
    batch_size: int = Field(32, ge=1, description="Frames per encoder forward pass.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="Encoder arithmetic. `bf16` is faster on CPUs with AVX512-BF16 (how much: "
        "bench/ingest.md); its embeddings stay close to fp32's, so vectors of both precisions "
        "share one collection.",
    )

    # Answering (marc.compression.vlm): the vision-language model and the compression of its input.
    vlm: str = Field(
        "",
        description="Hub id or local folder of the Qwen2.5-VL-architecture answer model (the "
        "C-GRPO student), or `tiny` (generated locally); empty = `Qwen/Qwen2.5-VL-3B-Instruct` "
        "(`default`) or `tiny` (`tiny`).",
    )
    vlm_backend: Literal["transformers", "vllm"] = Field(
        "transformers",
        description="`transformers`: the model runs in this process. `vllm`: answers come from an "
        "OpenAI-compatible `vllm serve MODEL --enable-mm-embeds` at MARC_VLM_URL (the vision tower "
        "still runs here).",
    )
    vlm_url: str = Field(
        "http://127.0.0.1:8000/v1", description="Base URL of the vLLM server (`.../v1`)."
    )
    vlm_api_key: str | None = Field(
        None, description="API key of the vLLM server, if it needs one."
    )
    vlm_served_name: str = Field(
        "",
        description="Model name the vLLM server serves (`--served-model-name`); empty = MARC_VLM.",
    )
    vlm_frames: int = Field(
        64,
        ge=2,
        description="Frames sampled across the retrieved events (the paper's teacher sees 64); "
        "rounded down to even (Qwen2.5-VL packs 2 frames per temporal group).",
    )
    vlm_frame_pixels: int = Field(
        128 * 28 * 28,
        ge=4 * 28 * 28,
        description="Most pixels per sampled frame (Qwen's smart_resize; 128*28*28 gives ~120 "
        "visual tokens per group for 16:9 footage, as Video-R1 trains with).",
    )
    vlm_min_frame_pixels: int = Field(
        128 * 28 * 28,
        ge=4 * 28 * 28,
        description="Fewest pixels per sampled frame: smaller videos are upscaled to it "
        "(Video-R1's qwen-vl-utils VIDEO_MIN_PIXELS, 128*28*28; the frame ceiling is then at "
        "least 1.05 times it, as there).",
    )
    vlm_sample_fps: float = Field(
        0.0,
        ge=0,
        description="Frames per second of video to read, qwen-vl-utils' rule (at least "
        "MARC_VLM_MIN_FRAMES, at most MARC_VLM_FRAMES, even); 0 = always MARC_VLM_FRAMES frames. "
        "marc train/eval default to 2 (Video-R1's sampling).",
    )
    vlm_min_frames: int = Field(
        4, ge=2, description="Fewest frames read when MARC_VLM_SAMPLE_FPS > 0 (qwen-vl-utils: 4)."
    )
    vlm_max_new_tokens: int = Field(256, ge=1, description="Most tokens generated per answer.")
    vlm_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Model weights' dtype; `auto` = bfloat16 on CUDA, float32 on CPU."
    )
    vlm_timeout_s: float = Field(300.0, gt=0, description="Timeout of one vLLM request.")
    compression_budget: int = Field(
        1,
        ge=1,
        description="Frame groups kept after compression (1 = one frame's worth of tokens).",
    )
    compression_window: int = Field(
        4, ge=1, description="Stage 1: most original groups one merge may span inside an event."
    )
    compression_ratio: float = Field(
        0.5, gt=0, le=1, description="Stage 1: each event is reduced to ceil(ratio * groups)."
    )

    # The agent (marc.agent): conversation threads and when to say "nothing found".
    threads_url: str = Field(
        "",
        description="Where conversation threads are kept: `postgresql://...` or "
        "`sqlite:///path`; empty = the catalog's PostgreSQL database if MARC_DATABASE_URL is one, "
        "else `MARC_HOME/threads.db`.",
    )
    min_score: float | None = Field(
        None,
        description="Retrieved events scoring below this (cosine) are not used; when none is "
        "left the agent says nothing relevant is stored. Unset = keep the top k whatever their "
        "score.",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("home", mode="after")
    @classmethod
    def _check_home(cls, v: Path) -> Path:
        check_home(v)
        return v

    @field_validator("device", mode="after")
    @classmethod
    def _check_device(cls, v: str) -> str:
        v = v.strip()
        if not is_device(v):
            raise ValueError(f"{v!r} is not a torch device; use {DEVICE_FORMS}")
        return v

    @field_validator("timezone", mode="after")
    @classmethod
    def _check_timezone(cls, v: str) -> str:
        v = v.strip()
        check_timezone(v)
        return v

    @field_validator("qdrant_url", mode="after")
    @classmethod
    def _check_qdrant_url(cls, v: str) -> str:
        v = v.strip()
        if v:
            client_args(v)  # ValueError naming v and the accepted forms
        return v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.min_event_s > self.max_event_s:
            raise ValueError(
                f"MARC_MIN_EVENT_S ({self.min_event_s}) must not exceed "
                f"MARC_MAX_EVENT_S ({self.max_event_s})"
            )
        return self

    # Derived locations -------------------------------------------------------------------
    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def vectors_path(self) -> Path:
        return self.home / "vectors"

    @property
    def models_path(self) -> Path:
        return self.home / "models"

    @property
    def encoder_id(self) -> str:
        if self.encoder:
            return self.encoder
        return PE_CORE_B16 if self.models == "default" else "tiny"

    @property
    def vlm_id(self) -> str:
        if self.vlm:
            return self.vlm
        return QWEN25_VL_3B if self.models == "default" else "tiny"

    def segmentation_key(self) -> str:
        """A short digest of every setting that moves an event boundary
        (:meth:`SegmentationConfig.key`).

        Event ids are derived from the video's content fingerprint and this key, so the same file
        ingested with the same settings gets the same ids on any machine.
        """
        return self.segmentation.key()

    # Component configs: what the libraries take ----------------------------------------
    @property
    def segmentation(self) -> SegmentationConfig:
        return SegmentationConfig(
            cut_threshold=self.cut_threshold,
            max_event_s=self.max_event_s,
            min_event_s=self.min_event_s,
            gate_threshold=self.gate_threshold,
            runtime=self.segment_runtime,
            device=self.device,
        )

    @property
    def encoder_config(self) -> EncoderConfig:
        """The event encoder's config (``encoder`` is taken: ``MARC_ENCODER``)."""
        return EncoderConfig(
            model=self.encoder_id,
            device=self.device,
            frames_per_event=self.frames_per_event,
            sample_fps=self.sample_fps,
            batch_size=self.batch_size,
            precision=self.precision,
            cache_dir=self.models_path,
        )

    @property
    def store(self) -> StoreConfig:
        return StoreConfig(
            home=self.home,
            catalog_url=self.catalog_url,
            vectors_path=self.vectors_path,
            qdrant_url=self.qdrant_url,
            qdrant_api_key=self.qdrant_api_key,
        )

    @property
    def memory(self) -> MemoryConfig:
        return MemoryConfig(
            segmentation=self.segmentation,
            encoder=self.encoder_config,
            store=self.store,
            timezone=self.timezone,
        )

    @property
    def compression(self) -> CompressionConfig:
        return CompressionConfig(
            budget=self.compression_budget,
            window=self.compression_window,
            ratio=self.compression_ratio,
        )

    @property
    def answer_model(self) -> AnswerModelConfig:
        return AnswerModelConfig(
            model=self.vlm_id,
            backend=self.vlm_backend,
            url=self.vlm_url,
            api_key=self.vlm_api_key,
            served_name=self.vlm_served_name,
            frames=self.vlm_frames,
            frame_pixels=self.vlm_frame_pixels,
            min_frame_pixels=self.vlm_min_frame_pixels,
            sample_fps=self.vlm_sample_fps,
            min_frames=self.vlm_min_frames,
            max_new_tokens=self.vlm_max_new_tokens,
            dtype=self.vlm_dtype,
            timeout_s=self.vlm_timeout_s,
            device=self.device,
            cache_dir=self.models_path,
        )

    @property
    def threads(self) -> ThreadsConfig:
        """``MARC_THREADS_URL``; empty = the catalog's database if it is PostgreSQL, else
        ``MARC_HOME/threads.db``.

        Raises:
            ValueError: the URL is neither PostgreSQL nor SQLite.
        """
        url = self.threads_url.strip()
        if not url:
            db = self.database_url
            url = db if db.startswith(("postgresql", "postgres")) else ""
        return ThreadsConfig(url or f"sqlite:///{self.home / 'threads.db'}")

    @property
    def agent(self) -> AgentConfig:
        return AgentConfig(
            memory=self.memory,
            compression=self.compression,
            answer_model=self.answer_model,
            threads=self.threads,
            min_score=self.min_score,
        )

    def component(self, cls: type[C]) -> C:
        """The component config of type ``cls`` (what :func:`~marc.memory.core.config.as_config`
        calls), e.g. ``settings.component(MemoryConfig) == settings.memory``.

        Raises:
            TypeError: ``cls`` is not a component config.
        """
        parts = {
            SegmentationConfig: lambda: self.segmentation,
            EncoderConfig: lambda: self.encoder_config,
            StoreConfig: lambda: self.store,
            MemoryConfig: lambda: self.memory,
            CompressionConfig: lambda: self.compression,
            AnswerModelConfig: lambda: self.answer_model,
            ThreadsConfig: lambda: self.threads,
            AgentConfig: lambda: self.agent,
        }
        if cls not in parts:
            raise TypeError(f"Settings has no {cls.__name__}")
        return parts[cls]()
