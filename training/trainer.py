"""What C-GRPO and SFT training share: models, data order, optimizer, logging, checkpoints, resume.

A run is a sequence of optimizer steps. Step ``s`` (0-based) trains on the prompts
``order[s*P : (s+1)*P]`` with ``P = batch * gradient_accumulation``, where ``order`` is the
concatenation of one seeded permutation of the training subset per epoch; every random draw inside
a step is seeded from ``(seed, step, ...)`` (:func:`~marc.training.policy.seeded`). So the data and
rollouts of a step depend only on the config and the step number, and a run resumed from
``checkpoint-<s>`` (weights, optimizer and scheduler state) continues exactly as an uninterrupted
one would.

Only the language model trains. The vision tower (with its patch merger) is frozen: the prompts'
visual rows are computed once per sample without gradients (:class:`~marc.training.policy.
PromptCache`), which is also why TRL's ``GRPOTrainer`` does not fit (it re-runs the vision tower
on PIL images and cannot take precomputed, compressed visual embeddings).

Output layout::

    output_dir/
      checkpoint-<step>/   model + processor (save_pretrained) + trainer_state.pt
      final/               the trained model, a normal checkpoint folder (marc eval --model)
      runs/                TensorBoard event files
      metrics.jsonl        the logged scalars, one JSON object per logged step
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marc.memory.core.config import AnswerModelConfig
from marc.training.config import TrainConfig
from marc.training.data import (
    Sample,
    load_samples,
    mixed_subset,
    random_subset,
    summarize_problems,
)
from marc.training.policy import PromptCache

__all__ = ["Trainer", "latest_checkpoint", "load_frozen", "resolve_model"]

_STATE = "trainer_state.pt"
# a resumed run must agree on these, or it would not continue the same data order and rollouts
_SAME_ON_RESUME = ("seed", "batch", "gradient_accumulation", "num_generations", "student_input")


def resolve_model(name: str, config: AnswerModelConfig) -> Path:
    """The local folder of a checkpoint folder, hub id or ``"tiny"`` (downloaded/generated into
    ``config.cache_dir``)."""
    from marc.compression.vlm.loading import model_dir

    return model_dir(dataclasses.replace(config, model=name))


def load_frozen(folder: Path, config: AnswerModelConfig):
    """A model that never trains (reference, teacher): eval mode, no gradients."""
    from marc.compression.vlm.loading import load_model

    model = load_model(folder, config)
    model.requires_grad_(False)
    return model


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The ``checkpoint-<step>`` folder with the highest step that holds a trainer state."""
    found = []
    for p in Path(output_dir).glob("checkpoint-*"):
        suffix = p.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (p / _STATE).is_file():
            found.append((int(suffix), p))
    return max(found)[1] if found else None


class Trainer:
    """The training loop; :class:`~marc.training.grpo.GRPOTrainer` and
    :class:`~marc.training.sft.SFTTrainer` implement :meth:`train_step`.

    Args:
        config: the run's configuration.
        samples: the training samples; default: ``config.data`` read and subset to
            ``config.subset_size`` (a seeded random sample; stratified by problem type with
            ``subset_stratify``); bad records are skipped and counted on stderr (``strict``:
            the first one raises).
    """

    method = "base"

    def __init__(self, config: TrainConfig, *, samples: list[Sample] | None = None) -> None:
        from marc.compression.vlm.loading import load_model, load_processor
        from marc.training.inputs import InputBuilder

        self.config = config
        self.output = config.output_path
        self.data_problems: list[str] = []
        if samples is None:
            samples, self.data_problems = load_samples(
                config.data, root=config.data_root, strict=config.strict
            )
            if self.data_problems:  # reported, not fatal (``strict: true`` fails instead)
                print(f"{config.data}: {summarize_problems(self.data_problems)}", file=sys.stderr)
            if config.subset_size and config.subset_stratify:
                samples = mixed_subset(samples, config.subset_size, seed=config.seed)
            elif config.subset_size:
                samples = random_subset(samples, config.subset_size, seed=config.seed)
        if not samples:
            raise ValueError(f"{config.data}: no training samples")
        self.samples = samples

        self.model_dir = resolve_model(config.answer_model.model, config.answer_model)
        self.resumed_from = latest_checkpoint(self.output) if config.resume else None
        start_dir = self.resumed_from or self.model_dir
        self.processor = load_processor(start_dir)
        self.tokenizer = self.processor.tokenizer
        self.model = load_model(start_dir, config.answer_model)
        self.model.model.visual.requires_grad_(False)  # frozen: visual rows are precomputed
        self.inputs = InputBuilder.for_model(
            self.model, self.processor, config.answer_model, config.compression
        )
        self.backend = self.inputs.backend
        self.prompts = PromptCache()

        params = [p for n, p in self.model.named_parameters() if p.requires_grad]
        assert params and not any(p.requires_grad for p in self.model.model.visual.parameters()), (
            "only the language model trains"
        )
        self.optimizer = torch.optim.AdamW(
            params,
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
        )
        per_step = config.batch * config.gradient_accumulation
        self.prompts_per_step = per_step
        self.total_steps = math.ceil(config.epochs * len(samples) / per_step)
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        if self.resumed_from is not None:
            self._load_state(self.resumed_from)
        self._writer = None

    # ------------------------------------------------------------------ schedule and data
    def updates_per_step(self) -> int:
        """Optimizer updates in one step (GRPO's ``num_iterations``)."""
        return 1

    def _lr_factor(self, update: int) -> float:
        c = self.config
        total = max(1, self.total_steps * self.updates_per_step())
        warmup = int(c.warmup_ratio * total)
        if update < warmup:
            return (update + 1) / (warmup + 1)
        if c.lr_scheduler == "constant":
            return 1.0
        progress = (update - warmup) / max(1, total - warmup)
        if c.lr_scheduler == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def order(self) -> list[int]:
        """Sample indices in training order: one seeded permutation per epoch."""
        out: list[int] = []
        for epoch in range(self.config.epochs):
            g = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
            out += torch.randperm(len(self.samples), generator=g).tolist()
        return out

    def batches(self) -> Iterator[tuple[int, list[Sample]]]:
        """``(step, samples)`` from the current step to the last."""
        order = self.order()
        P = self.prompts_per_step
        for step in range(self.step, self.total_steps):
            yield step, [self.samples[i] for i in order[step * P : (step + 1) * P]]

    def prompt(self, sample: Sample) -> dict[str, Any]:
        """The trained model's input for ``sample`` (computed once, kept for the run)."""
        c = self.config
        mode = c.student_input

        def build() -> dict[str, Any]:
            prepared = self.inputs.prepare(
                sample,
                mode,
                frames=c.answer_model.frames,
                budget=c.compression.budget,
                reasoning=c.reasoning,
                prompt=c.prompt,
                stage="train",
            )
            return self.backend.inputs(prepared.prompt)

        return self.prompts.get((sample.key(), mode), build)

    # ------------------------------------------------------------------ the loop
    def train_step(self, step: int, samples: list[Sample]) -> dict[str, float]:
        """Run one step (backward passes and optimizer update(s)); return its metrics."""
        raise NotImplementedError

    def optimizer_update(self) -> float:
        """Clip gradients, step the optimizer and scheduler; the gradient norm before clipping."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def train(self, *, stop_at: int | None = None) -> Path:
        """Train to the last step (or stop after step ``stop_at``, for tests and time limits).

        Returns:
            ``output_dir/final`` when training finished, else the last checkpoint written.
        """
        from torch.utils.tensorboard import SummaryWriter

        c = self.config
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "config.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n")
        if self.step == 0:  # a fresh run: forget the metrics of an earlier one in this folder
            (self.output / "metrics.jsonl").unlink(missing_ok=True)
        self._writer = SummaryWriter(str(self.output / "runs"), purge_step=self.step or None)
        last = stop_at if stop_at is not None else self.total_steps
        last = min(last, self.total_steps)
        saved: Path | None = None
        with _progress(c.progress, f"{self.method} ", self.step, self.total_steps) as bar:
            for step, samples in self.batches():
                if step >= last:
                    break
                self.model.eval()  # no dropout in Qwen2.5-VL; eval keeps generation exact
                metrics = self.train_step(step, samples)
                metrics["lr"] = self.scheduler.get_last_lr()[0]
                self.step = step + 1
                if self.step % c.logging_steps == 0 or self.step == self.total_steps:
                    self.log(metrics)
                if self.step % c.save_steps == 0 or self.step in (last, self.total_steps):
                    saved = self.save()
                bar(self.step, metrics)
        self._writer.close()
        if self.step >= self.total_steps:
            return self.save_final()
        return saved or self.output

    def log(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(f"train/{key}", value, self.step)
        self._writer.flush()
        with (self.output / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"step": self.step, **metrics}) + "\n")

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        """Write ``checkpoint-<step>`` (atomically: a temporary folder renamed at the end)."""
        final = self.output / f"checkpoint-{self.step}"
        tmp = self.output / f".checkpoint-{self.step}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.processor.save_pretrained(tmp)
        state = {
            "step": self.step,
            "method": self.method,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "python": random.getstate(),
                "numpy": np.random.get_state(),
            },
            "config": self.config.to_dict(),
        }
        torch.save(state, tmp / _STATE)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def save_final(self) -> Path:
        """The trained model as a normal checkpoint folder, ``output_dir/final``."""
        final = self.output / "final"
        tmp = self.output / f".final.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.processor.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def _load_state(self, folder: Path) -> None:
        state = torch.load(folder / _STATE, weights_only=False)
        if state["method"] != self.method:
            raise ValueError(
                f"{folder}: a {state['method']} checkpoint; resume it with marc train "
                f"{state['method']} or use another output_dir"
            )
        saved = state.get("config", {})
        for key in _SAME_ON_RESUME:  # what the data order and rollouts derive from
            if key in saved and saved[key] != getattr(self.config, key):
                raise ValueError(
                    f"{folder}: was trained with {key}={saved[key]!r}, the config says "
                    f"{getattr(self.config, key)!r}; set it back or use another output_dir"
                )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])


class _progress:  # noqa: N801 - a context manager used like a function
    """A rich progress bar on stderr (or nothing), updated with the step and a few metrics."""

    _SHOWN = ("loss", "reward_mean", "a_comp")

    def __init__(self, enabled: bool, label: str, done: int, total: int) -> None:
        self.enabled = enabled and total > 0
        self.label, self.done, self.total = label, done, total

    def __enter__(self):
        if not self.enabled:
            return lambda step, metrics: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total, completed=self.done, info="")

        def update(step: int, metrics: dict[str, float]) -> None:
            info = " ".join(f"{k}={metrics[k]:.3g}" for k in self._SHOWN if k in metrics)
            self._bar.update(task, completed=step, info=info)

        return update

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)
