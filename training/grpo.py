"""C-GRPO (MARC, arXiv 2510.07915): GRPO on compressed input with a compression maintenance reward.

Per step, for each prompt ``q`` of the batch:

1. ``a_full``: the teacher's accuracy on ``q`` over ``G`` rollouts with the full
   ``teacher_frames`` (64) uncompressed frames, from the teacher cache (computed once per prompt,
   :class:`~marc.training.teacher_cache.TeacherCache`); image samples need none.
2. ``G`` student rollouts ``o_i`` on the compressed one-frame input (temperature 1.0, top-p 0.95).
3. Rewards ``R_i = r_i + 1[correct_i] * alpha * max(0, a_comp / a_full - tau)``
   (:class:`~marc.training.rewards.CGRPOReward`) and group advantages
   ``A_i = (R_i - mean R) / (std R + 1e-4)`` (unbiased std).
4. The loss, with ``rho = pi / pi_old`` per token (``pi_old``: the policy that sampled, detached)
   and the k3 estimate of KL to the frozen reference model::

       KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1
       L = -mean_i 1/|o_i| sum_t [min(rho_t A_i, clip(rho_t, 1-eps, 1+eps) A_i) - beta KL_t]

   averaged over the prompts of the step; one AdamW update per ``num_iterations``.

Why not TRL's ``GRPOTrainer``: it builds VLM inputs from PIL images through the processor and runs
the vision tower itself; the student's input here is the output of the compression operator
(precomputed, compressed visual embeddings), which it cannot take. The loss is the one above,
the original GRPO sequence-mean (TRL's ``loss_type="grpo"``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from marc.training.answers import training_score
from marc.training.config import TrainConfig
from marc.training.data import Sample
from marc.training.policy import (
    PromptCache,
    Rollouts,
    completion_logprobs,
    generate_rollouts,
    seeded,
)
from marc.training.rewards import (
    CGRPOReward,
    RolloutRewards,
    accuracy,
    group_advantages,
    length_bonus,
    temporal_bonus,
)
from marc.training.teacher_cache import TeacherCache, TeacherResult
from marc.training.trainer import Trainer, load_frozen, resolve_model

__all__ = ["GRPOTrainer", "Group", "grpo_loss"]


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float = 0.2,
    beta: float = 0.04,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped GRPO objective with the k3 KL penalty, for one group.

    Args:
        logp, old_logp, ref_logp: ``[G, T]`` token log-probs under the policy (with grad), the
            sampling policy and the reference (``None`` when ``beta == 0``).
        advantages: ``[G]``.
        mask: ``[G, T]`` 1 on completion tokens.

    Returns:
        The loss (a scalar) and its parts: ``kl`` (token mean), ``clip_fraction`` (share of
        tokens whose clipped term was the minimum and differs).

    >>> z = torch.zeros(2, 3)
    >>> loss, parts = grpo_loss(z, z, z, torch.tensor([1.0, -1.0]), torch.ones(2, 3))
    >>> abs(float(loss)), parts["kl"]
    (0.0, 0.0)
    """
    G, T = logp.shape
    m = mask.to(logp.dtype)
    A = advantages.to(logp.dtype).view(G, 1)  # [G, 1] broadcast over tokens
    ratio = torch.exp(logp - old_logp)  # [G, T]
    unclipped = ratio * A
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * A
    per_token = torch.min(unclipped, clipped)  # [G, T]
    if beta and ref_logp is not None:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1  # k3, >= 0
        per_token = per_token - beta * kl
    else:
        kl = torch.zeros_like(logp)
    lengths = m.sum(1).clamp(min=1)  # [G]
    loss = -((per_token * m).sum(1) / lengths).mean()
    n_tok = m.sum().clamp(min=1)
    with torch.no_grad():
        was_clipped = (clipped < unclipped) & (m > 0)
        parts = {
            "kl": float((kl * m).sum() / n_tok),
            "clip_fraction": float(was_clipped.sum() / n_tok),
        }
    return loss, parts


@dataclass
class Group:
    """One prompt's ``G`` rollouts and what the update needs of them."""

    prompt: dict[str, Any]
    roll: Rollouts
    rewards: RolloutRewards
    advantages: torch.Tensor  # [G]
    old_logp: torch.Tensor | None  # [G, T]; None: the policy at the update (num_iterations 1)
    ref_logp: torch.Tensor | None  # [G, T]; None: no KL term (beta 0)


class GRPOTrainer(Trainer):
    """Trains the student with C-GRPO (``compression_reward: false``: plain GRPO).

    Args:
        config: the run's configuration.
        samples: the training samples (default: from ``config.data``).
        reward: the reward of a group, called like :class:`~marc.training.rewards.CGRPOReward`
            (default: ``CGRPOReward`` with the config's ``tau``, ``alpha``, ...).
    """

    method = "grpo"

    def __init__(
        self,
        config: TrainConfig,
        *,
        samples: list[Sample] | None = None,
        reward: Callable[..., RolloutRewards] | None = None,
    ) -> None:
        from marc.compression.vlm.loading import load_processor
        from marc.training.inputs import InputBuilder

        super().__init__(config, samples=samples)
        c = config
        self.reward = reward or CGRPOReward(
            tau=c.tau,
            alpha=c.alpha,
            format_weight=c.format_weight,
            threshold=c.threshold,
            compression_reward=c.compression_reward,
            scoring=c.scoring,
            eta_cap=c.eta_cap,
        )
        # the reference model: the starting checkpoint, frozen (also on resume)
        self.ref = load_frozen(self.model_dir, c.answer_model) if c.beta > 0 else None
        teacher_dir = resolve_model(c.teacher_model, c.answer_model)
        if self.ref is not None and teacher_dir == self.model_dir:
            self.teacher = self.ref  # the same frozen weights: load them once
        else:
            self.teacher = load_frozen(teacher_dir, c.answer_model)
        self.teacher_inputs = InputBuilder.for_model(
            self.teacher, load_processor(teacher_dir), c.answer_model, c.compression
        )
        self.teacher_backend = self.teacher_inputs.backend
        self.teacher_prompts = PromptCache()
        self.teacher_id = _fingerprint(teacher_dir)
        self.teacher_setting = (
            f"frames={c.answer_model.frames};G={self.teacher_g};"
            f"temperature={self.teacher_temperature};"
            f"top_p={self.teacher_top_p};max_tokens={c.max_completion_length};"
            f"reasoning={c.reasoning};"
            f"pixels={c.answer_model.frame_pixels};threshold={c.threshold}"
            f";min_pixels={c.answer_model.min_frame_pixels};fps={c.answer_model.sample_fps}"
            f";min_frames={c.answer_model.min_frames}"
            + ("" if c.prompt == "marc" else f";prompt={c.prompt}")
            + ("" if c.teacher_seed is None else f";teacher_seed={c.teacher_seed}")
            + ("" if c.scoring == "lenient" else f";scoring={c.scoring}")  # lenient: old caches
        )
        self.output.mkdir(parents=True, exist_ok=True)
        self.teacher_cache = TeacherCache(c.teacher_cache_path)
        self.teacher_calls = 0  # samples whose teacher rollouts were computed in this process

    @property
    def teacher_g(self) -> int:
        """Teacher rollouts per sample for a_full (``teacher_generations`` or ``G``)."""
        return self.config.teacher_generations or self.config.num_generations

    @property
    def teacher_temperature(self) -> float:
        c = self.config
        return c.teacher_temperature if c.teacher_temperature is not None else c.temperature

    @property
    def teacher_top_p(self) -> float:
        return self.config.teacher_top_p if self.config.teacher_top_p is not None else (
            self.config.top_p
        )  # fmt: skip

    def updates_per_step(self) -> int:
        return self.config.num_iterations

    # ------------------------------------------------------------------ teacher
    def _teacher_rollouts(self, samples: list[Sample]) -> list[TeacherResult]:
        """``G`` teacher rollouts on the full-frame input of each sample, and their accuracy.

        Seeded by the sample alone, so a_full does not depend on when it is computed."""
        c = self.config
        out = []
        for sample in samples:
            self.teacher_calls += 1

            def build(sample=sample) -> dict:
                prepared = self.teacher_inputs.prepare(
                    sample, "full", frames=c.answer_model.frames, reasoning=c.reasoning,
                    prompt=c.prompt, stage="train",
                )  # fmt: skip
                return self.teacher_backend.inputs(prepared.prompt)

            prompt = self.teacher_prompts.get(sample.key(), build)
            parts = ("teacher", sample.key()) if c.teacher_seed is None else (
                "teacher", c.teacher_seed, sample.key()
            )  # fmt: skip
            with seeded(*parts):
                roll = generate_rollouts(
                    self.teacher,
                    self.teacher_backend.tokenizer,
                    prompt,
                    self.teacher_g,
                    temperature=self.teacher_temperature,
                    top_p=self.teacher_top_p,
                    max_new_tokens=c.max_completion_length,
                )
            acc = accuracy(sample.problem_type, sample.solution, roll.texts, c.threshold, c.scoring)
            out.append(TeacherResult(roll.texts, acc))
        return out

    def a_full(self, samples: list[Sample]) -> list[float | None]:
        """The teacher's accuracy per sample (``None`` for images), through the cache."""
        videos = [s for s in samples if s.data_type == "video"]
        results = self.teacher_cache.get_or_compute(
            self.teacher_id, videos, self.teacher_setting, self._teacher_rollouts
        )
        by_key = {s.key(): r.accuracy for s, r in zip(videos, results, strict=True)}
        return [by_key.get(s.key()) for s in samples]

    # ------------------------------------------------------------------ one step
    def rollout(self, step: int, samples: list[Sample]) -> list[Group]:
        """Rollouts, rewards, advantages and the fixed log-probs (sampling policy, reference) of
        each prompt; seeded by ``(seed, step, prompt index)``."""
        c = self.config
        G = c.num_generations
        a_full = self.a_full(samples)
        groups = []
        for i, sample in enumerate(samples):
            prompt = self.prompt(sample)
            with seeded(c.seed, step, i):
                roll = generate_rollouts(
                    self.model,
                    self.tokenizer,
                    prompt,
                    G,
                    temperature=c.temperature,
                    top_p=c.top_p,
                    max_new_tokens=c.max_completion_length,
                )
            rewards = self.reward(
                sample.problem_type, sample.solution, roll.texts, a_full[i],
                data_type=sample.data_type,
            )  # fmt: skip
            self.video_r1_bonuses(step, i, sample, roll, rewards)
            adv = group_advantages(rewards.rewards, G).to(self.model.device)
            old = ref = None
            with torch.no_grad():
                if c.num_iterations > 1:  # else pi_old == pi at the (only) update
                    old = completion_logprobs(
                        self.model, prompt, roll.ids, roll.mask, temperature=c.temperature
                    )
                if self.ref is not None:
                    ref = completion_logprobs(
                        self.ref, prompt, roll.ids, roll.mask, temperature=c.temperature
                    )
            groups.append(Group(prompt, roll, rewards, adv, old, ref))
        return groups

    def video_r1_bonuses(
        self, step: int, i: int, sample: Sample, roll: Rollouts, rewards: RolloutRewards
    ) -> None:
        """Add Video-R1's T-GRPO and length bonuses to ``rewards`` (``temporal``,
        ``len_control``; :func:`~marc.training.rewards.temporal_bonus`,
        :func:`~marc.training.rewards.length_bonus`). Both read the accuracy rewards
        (``rewards.scores``) before any bonus, as Video-R1's ``rewards_per_func[:, 0]``."""
        c = self.config
        extra = [0.0] * len(rewards.rewards)
        if c.temporal and sample.data_type == "video":
            prepared = self.inputs.prepare(
                sample, c.student_input, frames=c.answer_model.frames,
                budget=c.compression.budget, reasoning=c.reasoning, prompt=c.prompt,
                stage="train", shuffle_seed=seeded("shuffle", c.seed, step, i).seed,
            )  # fmt: skip
            with seeded(c.seed, step, i, "shuffled"):
                shuffled = generate_rollouts(
                    self.model, self.tokenizer, self.backend.inputs(prepared.prompt),
                    max(1, c.num_generations // 2), temperature=c.temperature, top_p=c.top_p,
                    max_new_tokens=c.max_completion_length,
                )  # fmt: skip
            s_scores = [
                training_score(sample.problem_type, t, sample.solution, c.scoring)
                for t in shuffled.texts
            ]
            extra = [
                e + b for e, b in zip(extra, temporal_bonus(rewards.scores, s_scores), strict=True)
            ]
        if c.len_control:
            lengths = roll.lengths.tolist()
            extra = [
                e + b for e, b in zip(extra, length_bonus(rewards.scores, lengths), strict=True)
            ]
        rewards.rewards = [r + e for r, e in zip(rewards.rewards, extra, strict=True)]

    def update(self, groups: list[Group]) -> dict[str, float]:
        """``num_iterations`` AdamW updates on the loss averaged over ``groups``."""
        c = self.config
        n = len(groups)
        sums = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0}
        norms = []
        for _ in range(c.num_iterations):
            for g in groups:
                logp = completion_logprobs(
                    self.model, g.prompt, g.roll.ids, g.roll.mask, temperature=c.temperature
                )
                old = logp.detach() if g.old_logp is None else g.old_logp
                loss, parts = grpo_loss(
                    logp, old, g.ref_logp, g.advantages, g.roll.mask,
                    epsilon=c.epsilon, beta=c.beta,
                )  # fmt: skip
                (loss / n).backward()
                sums["loss"] += loss.item()
                sums["kl"] += parts["kl"]
                sums["clip_fraction"] += parts["clip_fraction"]
            norms.append(self.optimizer_update())
        out = {key: v / (n * c.num_iterations) for key, v in sums.items()}
        out["grad_norm"] = sum(norms) / len(norms)
        return out

    def train_step(self, step: int, samples: list[Sample]) -> dict[str, float]:
        groups = self.rollout(step, samples)
        metrics = self.update(groups)
        n, G = len(groups), self.config.num_generations
        rewards = torch.tensor([r for g in groups for r in g.rewards.rewards])
        a_fulls = [g.rewards.a_full for g in groups if g.rewards.a_full is not None]
        return {
            **metrics,
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
            "a_comp": sum(g.rewards.a_comp for g in groups) / n,
            "a_full": sum(a_fulls) / len(a_fulls) if a_fulls else float("nan"),
            "maintenance": sum(g.rewards.maintenance for g in groups) / n,
            "completion_length": float(torch.cat([g.roll.lengths for g in groups]).float().mean()),
            "format": sum(sum(g.rewards.formats) / G for g in groups) / n,
            "teacher_cache_hits": float(self.teacher_cache.hits),
        }

    def close(self) -> None:
        """Close the teacher cache (the trainer is done)."""
        self.teacher_cache.close()


def _fingerprint(folder: Path) -> str:
    """The teacher's identity for the cache: its folder and its weight files' sizes and times."""
    h = hashlib.sha256(str(Path(folder).resolve()).encode())
    for f in sorted(Path(folder).glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{Path(folder).name}@{h.hexdigest()[:16]}"
