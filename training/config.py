"""Training configuration: one documented dataclass for C-GRPO and its SFT baseline, read from YAML.

Every field says whose value it is: **paper** (MARC, arXiv 2510.07915, states it), **Video-R1**
(the recipe it builds on: ``src/r1-v/src/open_r1/grpo.py``, its trainer and
``src/scripts/run_grpo_video.sh``), or **ours** (neither states it; our choice). The paper
states ``G = 8`` rollouts, the maintenance threshold ``tau = 0.6`` and weight ``alpha = 1.0``,
the reward form, the clipped objective with a KL term, learning rate 1e-6, a 64-frame teacher, a
one-frame student budget and a 5,000-sample mixed training subset drawn at random. Video-R1
gives rollouts at temperature 1.0 and top-p 0.95 of at most 768 tokens, ``beta = 0.04``, a cosine
schedule, weight decay 0.01 and gradient clipping at 5, its prompt templates and scoring, and its
T-GRPO and length bonuses (on in ``run_grpo_video.sh``; off here unless asked). Nothing else is
called the paper's.

The answer model and the compression are configured by the same
:class:`~marc.memory.core.config.AnswerModelConfig` and
:class:`~marc.memory.core.config.CompressionConfig` MARC answers with, embedded as the YAML
sections ``answer_model:`` and ``compression:``. A run reads only its YAML (and the CLI's
overrides): never ``MARC_*`` variables or a ``.env`` file.

>>> cfg = TrainConfig(method="grpo", data="train.json", output_dir="runs/x")
>>> cfg.num_generations, cfg.beta, cfg.tau, cfg.compression.budget, cfg.answer_model.frames
(8, 0.04, 0.6, 1, 64)
>>> TrainConfig(method="grpo", data="t.json", output_dir="o", num_generations=1)
Traceback (most recent call last):
...
ValueError: num_generations must be >= 2 (group advantages need a group); set num_generations: 8
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from marc.memory.core.config import AnswerModelConfig, CompressionConfig

__all__ = ["TrainConfig", "load_config"]

Method = Literal["grpo", "sft"]
#: The sections that are component configs, and their types.
_SECTIONS: dict[str, type] = {"answer_model": AnswerModelConfig, "compression": CompressionConfig}
#: Flat keys of earlier configs, still read: ``{old key: (section, field)}``.
LEGACY_KEYS = {
    "model": ("answer_model", "model"),
    "teacher_frames": ("answer_model", "frames"),
    "frame_pixels": ("answer_model", "frame_pixels"),
    "device": ("answer_model", "device"),
    "dtype": ("answer_model", "dtype"),
    "budget": ("compression", "budget"),
    "compression_window": ("compression", "window"),
    "compression_ratio": ("compression", "ratio"),
}


@dataclass
class TrainConfig:
    """What to train, on what, and how (``marc train grpo|sft --config FILE``).

    Model and data:
        method: ``"grpo"`` (C-GRPO, the paper's method) or ``"sft"`` (the cross-entropy baseline
            on the same data and budget).
        answer_model: the student, an :class:`AnswerModelConfig` (YAML section
            ``answer_model:``). ``model``: its starting checkpoint, a local folder, a hub id
            (``Qwen/Qwen2.5-VL-3B-Instruct``, the paper's student) or ``"tiny"`` (the generated
            random-weight model, in ``cache_dir``); the frozen reference model of the KL term is
            loaded from the same place. ``frames``: frames sampled across each video for the
            teacher and, before compression, for the student (the paper's 64), at most:
            ``sample_fps`` (2 here, Video-R1's qwen-vl-utils rule; 0: always ``frames``) reads 2
            frames per second of video, at least ``min_frames`` (4), so short clips get fewer.
            ``frame_pixels``, ``min_frame_pixels``: the pixel bounds per frame (both 128*28*28
            as Video-R1's qwen-vl-utils; the ceiling is then 105,369, 128-134 tokens a group).
            ``device``, ``dtype``: where and in what precision the models run (``auto``:
            bfloat16 on CUDA, float32 on CPU). ``backend`` must be ``transformers`` (training
            runs the model in this process); the rollouts' length is ``max_completion_length``.
        teacher: the teacher's checkpoint (sees ``answer_model.frames`` uncompressed frames);
            ``None``: the same as ``answer_model.model`` (the paper's Qwen2.5-VL teacher of the
            same size). When it is the same, the frozen reference model doubles as the teacher.
        data: the training set, a Video-R1-format JSON list (``marc.training.data``).
        data_root: folder the records' ``path`` fields are relative to; ``None``: the JSON's
            folder.
        subset_size: samples drawn from ``data`` (paper: a mixed 5k subset of Video-R1-260k,
            randomly sampled); ``0`` or a set no larger than this uses all of it.
        subset_stratify: ours, off: draw the subset stratified by problem type instead of at
            random.
        strict: ours: ``false`` skips invalid records and counts them on stderr (one bad
            record does not abort loading 263 k); ``true`` fails on the first.
        output_dir: where checkpoints (``checkpoint-<step>``), TensorBoard logs (``runs``) and the
            final model (``final``) go.
        teacher_cache: the teacher-result cache (a_full per prompt, computed once); ``None``:
            ``<output_dir>/teacher_cache.sqlite``.

    Inputs (what the models see):
        compression: a :class:`CompressionConfig` (YAML section ``compression:``): ``budget``,
            the frame groups the student's compressed input keeps (1: one frame's worth);
            ``window`` and ``ratio``, stage 1 of the compression (see
            :func:`marc.compression.compress`).
        reasoning: ask for (and train) the ``<think>``/``<answer>`` format.
        student_input: what the trained model reads: ``"compressed"`` (``answer_model.frames``
            frames compressed to ``compression.budget`` groups: the paper's student) or
            ``"full"`` (all those frames uncompressed: SFT of a teacher, as the miniature does).

    Rollouts and reward (C-GRPO):
        num_generations: ``G``, rollouts per prompt (student and teacher).
        temperature, top_p: rollout sampling.
        max_completion_length: most tokens per rollout (Video-R1's GRPO uses 768).
        epsilon: the ratio clip ``[1 - epsilon, 1 + epsilon]``.
        beta: weight of the k3 KL estimate to the reference model.
        num_iterations: policy updates per batch of rollouts (TRL's ``num_iterations``, the
            GRPO paper's mu); with 1 the ratio is 1 at the update and clipping never acts.
        tau: maintenance threshold: compression reward when ``a_comp / a_full > tau``.
        alpha: compression reward weight.
        format_weight: weight of the format reward in the base reward.
        threshold: a score at or above this counts as correct (numeric/OCR/free-form answers).
        compression_reward: ``False`` gives plain GRPO (the ablation) on the same inputs.
        scoring: how answers and the format are scored (Video-R1 / ours): ``"video_r1"``
            (default: Video-R1's ``accuracy_reward`` and ``format_reward``, exactly, quirks
            included; :mod:`marc.training.video_r1`) or ``"lenient"`` (the archive scorer of
            :func:`marc.training.answers.score`).
        prompt: ``"video_r1"`` (Video-R1: its ``grpo.py`` question and type templates, the
            visual input and nothing else; they always ask for ``<think>``/``<answer>``) or
            ``"marc"`` (ours: the archive prompt, each event's file, camera and times, and the
            reasoning suffix when ``reasoning``).
        a_comp_scope: ``"question"`` (ours): a_comp is the fraction of a question's ``G``
            student rollouts that are correct (the paper defines it as the student's accuracy
            without saying over what).
        teacher_generations, teacher_temperature, teacher_top_p: how a_full is sampled (ours):
            that many teacher rollouts on the full input (``None``: ``num_generations``,
            ``temperature``, ``top_p``), computed once and cached (``teacher_cache``).
        teacher_seed: ours: ``None`` seeds the teacher's rollouts of a sample by the sample
            alone (a_full does not depend on when it is computed or on ``seed``); a number adds
            it to that seed (and to the cache key).
        eta_cap: ours: ``eta = a_comp / a_full`` is capped at this (``None``: uncapped; the
            paper gives no cap, so a student beating the teacher earns more).
        a_full_zero: ours: ``"no_bonus"``: when the teacher never answers right (a_full = 0,
            eta undefined in the paper) there is no maintenance term.
        temporal: Video-R1's T-GRPO (``--temporal true`` in ``run_grpo_video.sh``): ``G / 2``
            more rollouts on the same frames in random order; when the ordered rollouts' mean
            accuracy reward is at least 0.8 times the shuffled ones', every ordered rollout with
            accuracy reward > 0.1 gets +0.3. Off by default (not in the paper).
        len_control: Video-R1's length bonus (``--len_control true``): when more than one
            rollout has accuracy reward > 0.1, those of 320 to 512 tokens get +0.2. Off by
            default (not in the paper).

    Optimisation:
        learning_rate: AdamW learning rate (paper and Video-R1: 1e-6).
        weight_decay: AdamW weight decay (Video-R1: 0.01).
        adam_beta1, adam_beta2: AdamW's betas (ours: PyTorch's and TRL's 0.9, 0.999).
        max_grad_norm: gradient clipping (Video-R1: 5).
        lr_scheduler: ``constant``, ``linear`` or ``cosine`` (decaying to 0 at the last step;
            Video-R1: cosine).
        warmup_ratio: fraction of the steps with linear warm-up (Video-R1: none).
        freeze_vision_tower: ours, must be ``true``: the vision tower is frozen (its rows are
            computed once per sample and compressed); Video-R1 trains the whole model.
        epochs: passes over the subset.
        batch: prompts per micro-batch (each brings ``num_generations`` rollouts in GRPO).
        gradient_accumulation: micro-batches per optimizer step.
        max_steps: stop after this many optimizer steps (``None``: ``epochs`` decide).
        seed: the data order and every sampled rollout derive from it.

    Bookkeeping:
        save_steps: checkpoint every this many optimizer steps (and at the end).
        logging_steps: TensorBoard scalars every this many steps.
        resume: continue from the latest ``checkpoint-<step>`` in ``output_dir`` (same data order,
            same rollouts).
        progress: show a progress bar on stderr.

    Flat keys of earlier configs (``model``, ``teacher_frames``, ``frame_pixels``, ``device``,
    ``dtype``, ``budget``, ``compression_window``, ``compression_ratio``) are still read by
    :func:`load_config` and :meth:`from_dict` (:data:`LEGACY_KEYS`).
    """

    method: Method = "grpo"
    # model and data
    answer_model: AnswerModelConfig = field(default_factory=lambda: _answer_model({}))
    teacher: str | None = None
    data: str = ""
    data_root: str | None = None
    subset_size: int = 5000  # paper: a 5K mixed subset, randomly sampled
    subset_stratify: bool = False  # ours (option)
    strict: bool = False  # ours
    output_dir: str = ""
    teacher_cache: str | None = None
    # inputs
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    reasoning: bool = True
    student_input: Literal["compressed", "full"] = "compressed"
    # rollouts and reward
    num_generations: int = 8  # paper: G = 8 (Video-R1 too)
    temperature: float = 1.0  # Video-R1 (its trainer's GenerationConfig)
    top_p: float = 0.95  # Video-R1
    max_completion_length: int = 768  # Video-R1 (run_grpo_video.sh)
    epsilon: float = 0.2  # ours (the paper's clipped objective gives no value; TRL's default)
    beta: float = 0.04  # Video-R1 (run_grpo_video.sh)
    num_iterations: int = 1  # Video-R1 (one update per batch of rollouts)
    tau: float = 0.6  # paper
    alpha: float = 1.0  # paper
    format_weight: float = 1.0  # Video-R1 (accuracy + format rewards, summed)
    threshold: float = 0.5  # ours: the score at which graded answers count as correct
    compression_reward: bool = True  # paper (false: the plain GRPO ablation)
    scoring: Literal["video_r1", "lenient"] = "video_r1"  # Video-R1's reward, exactly
    prompt: Literal["video_r1", "marc"] = "video_r1"  # Video-R1's templates
    a_comp_scope: Literal["question"] = "question"  # ours: over a question's G rollouts
    teacher_generations: int | None = None  # ours: None = num_generations
    teacher_temperature: float | None = None  # ours: None = temperature
    teacher_top_p: float | None = None  # ours: None = top_p
    teacher_seed: int | None = None  # ours: None = seeded by the sample alone
    eta_cap: float | None = None  # ours: uncapped
    a_full_zero: Literal["no_bonus"] = "no_bonus"  # ours: a_full = 0 gives no maintenance term
    temporal: bool = False  # Video-R1's T-GRPO (on in run_grpo_video.sh; not in the paper)
    len_control: bool = False  # Video-R1's length bonus (on in run_grpo_video.sh)
    # optimisation
    learning_rate: float = 1e-6  # paper (Video-R1 too)
    weight_decay: float = 0.01  # Video-R1
    adam_beta1: float = 0.9  # ours (PyTorch / TRL default)
    adam_beta2: float = 0.999  # ours (PyTorch / TRL default)
    max_grad_norm: float = 5.0  # Video-R1
    lr_scheduler: Literal["constant", "linear", "cosine"] = "cosine"  # Video-R1
    warmup_ratio: float = 0.0  # Video-R1 (none)
    freeze_vision_tower: bool = True  # ours (Video-R1 trains it; ours precomputes its rows)
    epochs: int = 1  # Video-R1 (num_train_epochs 1)
    batch: int = 1  # Video-R1 (1 prompt per device; it runs 4 GPUs)
    gradient_accumulation: int = 1  # Video-R1 (1; 4 prompts per step across its 4 GPUs)
    max_steps: int | None = None  # ours (None: epochs decide)
    seed: int = 42  # ours
    # bookkeeping
    save_steps: int = 100
    logging_steps: int = 1
    resume: bool = False
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        need(self.method in ("grpo", "sft"), f"method must be grpo or sft, got {self.method!r}")
        need(
            self.student_input in ("compressed", "full"),
            f"student_input must be compressed or full, got {self.student_input!r}",
        )
        for name, cls in _SECTIONS.items():
            need(
                isinstance(getattr(self, name), cls),
                f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}",
            )
        need(
            self.answer_model.backend == "transformers",
            "training runs the model in this process; set answer_model: {backend: transformers}",
        )
        need(bool(self.data), "data is empty; set data: the training JSON (Video-R1 format)")
        need(bool(self.output_dir), "output_dir is empty; set output_dir: a folder for the run")
        need(
            self.num_generations >= 2,
            "num_generations must be >= 2 (group advantages need a group); set num_generations: 8",
        )
        need(self.temperature > 0, "temperature must be > 0 for sampled rollouts; set 1.0")
        need(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}; set 0.95")
        need(self.max_completion_length >= 1, "max_completion_length must be >= 1")
        need(0 <= self.epsilon < 1, f"epsilon must be in [0, 1), got {self.epsilon}; set 0.2")
        need(self.beta >= 0, f"beta must be >= 0, got {self.beta}; set 0.04")
        need(self.num_iterations >= 1, "num_iterations must be >= 1")
        need(0 <= self.tau <= 1, f"tau must be in [0, 1], got {self.tau}; set 0.6")
        need(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}; set 1.0")
        need(self.learning_rate > 0, "learning_rate must be > 0; set 1e-6")
        need(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        need(self.epochs >= 1, "epochs must be >= 1")
        need(self.batch >= 1, "batch (prompts per micro-batch) must be >= 1")
        need(self.gradient_accumulation >= 1, "gradient_accumulation must be >= 1")
        need(self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1 or null")
        need(self.subset_size >= 0, "subset_size must be >= 0 (0: all samples)")
        need(self.save_steps >= 1, "save_steps must be >= 1")
        need(self.logging_steps >= 1, "logging_steps must be >= 1")
        need(
            self.prompt in ("video_r1", "marc"),
            f"prompt must be video_r1 or marc, got {self.prompt!r}",
        )
        need(self.a_comp_scope == "question", "a_comp_scope must be question (the only one)")
        need(self.a_full_zero == "no_bonus", "a_full_zero must be no_bonus (the only one)")
        need(
            self.freeze_vision_tower is True,
            "freeze_vision_tower must be true: the trainer precomputes the tower's rows",
        )
        need(
            self.teacher_generations is None or self.teacher_generations >= 1,
            "teacher_generations must be >= 1 or null (null: num_generations)",
        )
        need(
            self.teacher_temperature is None or self.teacher_temperature > 0,
            "teacher_temperature must be > 0 or null (null: temperature)",
        )
        need(
            self.teacher_top_p is None or 0 < self.teacher_top_p <= 1,
            "teacher_top_p must be in (0, 1] or null (null: top_p)",
        )
        need(self.eta_cap is None or self.eta_cap > 0, "eta_cap must be > 0 or null (uncapped)")
        need(
            not self.temporal or self.num_generations >= 2,
            "temporal needs num_generations >= 2 (G / 2 shuffled rollouts)",
        )
        need(
            self.scoring in ("video_r1", "lenient"),
            f"scoring must be video_r1 or lenient, got {self.scoring!r}; set scoring: video_r1",
        )
        need(
            self.lr_scheduler in ("constant", "linear", "cosine"),
            f"lr_scheduler must be constant, linear or cosine, got {self.lr_scheduler!r}",
        )

    # ------------------------------------------------------------------ derived paths
    @property
    def output_path(self) -> Path:
        return Path(self.output_dir).expanduser()

    @property
    def teacher_model(self) -> str:
        """The teacher's checkpoint (``answer_model.model`` when ``teacher`` is unset)."""
        return self.teacher or self.answer_model.model

    @property
    def teacher_cache_path(self) -> Path:
        if self.teacher_cache:
            return Path(self.teacher_cache).expanduser()
        return self.output_path / "teacher_cache.sqlite"

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (JSON-ready; what :meth:`from_dict` reads back)."""
        d = dataclasses.asdict(self)
        d.pop("extra")
        for name in _SECTIONS:
            d[name] = {k: str(v) if isinstance(v, Path) else v for k, v in d[name].items()}
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from plain data: the sections as mappings, flat keys of earlier configs
        (:data:`LEGACY_KEYS`) moved into their sections.

        Raises:
            ValueError: an unknown key, a key given twice (flat and in its section), or an
                invalid value.
        """
        values = dict(values)
        sections: dict[str, dict[str, Any]] = {}
        for name, cls_ in _SECTIONS.items():
            given = values.pop(name, None)
            if isinstance(given, cls_):
                given = dataclasses.asdict(given)
            if given is not None and not isinstance(given, dict):
                raise ValueError(f"{name} must be a mapping of {cls_.__name__} fields")
            sections[name] = dict(given or {})
            known = {f.name for f in fields(cls_)}
            for key in sections[name]:
                if key not in known:
                    raise ValueError(f"unknown key {name}.{key} (see {cls_.__name__})")
        for old, (section, key) in LEGACY_KEYS.items():
            if old in values:
                if key in sections[section]:
                    raise ValueError(f"{old} and {section}.{key} both given; keep {section}.{key}")
                sections[section][key] = values.pop(old)
        for key in values:
            if key not in _FIELDS:
                raise ValueError(f"unknown key {key!r} (see marc.training.config.TrainConfig)")
        built = {
            "answer_model": _answer_model(sections["answer_model"]),
            "compression": CompressionConfig(**sections["compression"]),
        }
        return cls(**values, **built)


_FIELDS = {f.name for f in fields(TrainConfig)} - {"extra"}

#: Video-R1's sampling (its qwen-vl-utils): 2 frames per second of video, at least 4, at most
#: ``answer_model.frames`` (64 here, the paper's teacher; Video-R1 trains with 16). Training and
#: evaluation default to it; a YAML section may set ``sample_fps: 0`` for always ``frames``.
TRAIN_SAMPLE_FPS = 2.0


def _answer_model(values: dict[str, Any]) -> AnswerModelConfig:
    """The ``answer_model:`` section, with training's default sampling (``sample_fps`` 2)."""
    return AnswerModelConfig(**{"sample_fps": TRAIN_SAMPLE_FPS, **values})


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML mapping of its fields (``answer_model:`` and
    ``compression:`` as sections; see :meth:`TrainConfig.from_dict`), with ``overrides``
    (``None`` values ignored) applied on top. Relative ``data``/``data_root``/``output_dir``/
    ``teacher_cache``/``answer_model.model``/``teacher`` paths are taken as written (relative to
    the working directory), like the CLI's other paths. Nothing is read from the environment.

    Raises:
        ValueError: the file is missing or not YAML, a key is unknown, or a value is invalid
            (one line naming the file and what to set).
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config ({e.strerror or e})") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}") from e
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(raw).__name__}")
    values = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("learning_rate", "epsilon", "beta", "tau", "alpha", "temperature", "top_p",
                "weight_decay", "max_grad_norm", "eta_cap", "teacher_temperature",
                "teacher_top_p"):  # fmt: skip
        if isinstance(values.get(key), str):  # YAML reads 1e-6 as a string
            try:
                values[key] = float(values[key])
            except ValueError:
                raise ValueError(f"{path}: {key} must be a number, got {values[key]!r}") from None
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
