"""The C-GRPO reward of MARC (arXiv 2510.07915): GRPO plus a compression maintenance bonus.

For a question with ``G`` completions ``o_i`` of the student (who sees the compressed tokens)::

    R_i = r_i + 1[correct_i] * alpha * max(0, eta - tau)        eta = a_comp / a_full

``r_i`` is the base reward (the answer score plus a format reward: Video-R1's own
``accuracy_reward`` and ``format_reward`` with ``scoring="video_r1"``, the default), ``a_comp`` the
fraction of the ``G`` student completions that are correct and ``a_full`` the accuracy of the
teacher on the same question with the full 64-frame input (see
:mod:`marc.training.teacher_cache`). Correct completions earn the bonus when the compressed student
keeps more than ``tau`` of the teacher's accuracy. Image samples carry no temporal redundancy to
compress, so they get no maintenance term, as in the paper.

The advantages are GRPO's (:func:`group_advantages`): each reward minus its group's mean, over the
group's standard deviation.

>>> reward = CGRPOReward()
>>> out = reward("multiple choice", "<answer>B</answer>",
...              ["<think>x</think><answer>B</answer>", "<think>x</think><answer>C</answer>"],
...              a_full=0.5)
>>> out.a_comp, out.maintenance, out.rewards  # eta = 0.5 / 0.5 = 1, so 1 - 0.6 for the correct
(0.5, 0.4, [2.4, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from marc.training.answers import (
    Scoring,
    check_scoring,
    correct_from_score,
    format_score,
    is_correct,
    training_score,
)

__all__ = [
    "ALPHA",
    "GROUP_SIZE",
    "TAU",
    "CGRPOReward",
    "RolloutRewards",
    "accuracy",
    "c_grpo_reward",
    "group_advantages",
    "length_bonus",
    "maintenance",
    "temporal_bonus",
]

TAU = 0.6  # the paper's tau: the share of the teacher's accuracy the student must keep for a bonus
ALPHA = 1.0  # the paper's alpha: weight of the maintenance term relative to the base reward
GROUP_SIZE = 8  # the paper's G: completions sampled per question (GRPO group)
_EPS = 1e-4  # added to the group std, as TRL's GRPOTrainer


def _check_accuracy(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be an accuracy in [0, 1], got {value}")


def maintenance(
    a_comp: float, a_full: float, *, tau: float = TAU, eta_cap: float | None = None
) -> float:
    """The maintenance term ``max(0, min(a_comp / a_full, eta_cap) - tau)``; 0 when
    ``a_full = 0`` (ours: the paper leaves eta undefined there).

    ``eta`` may exceed 1 when the student beats the teacher; it is not capped unless
    ``eta_cap`` is given (ours: the paper gives no cap).

    >>> round(maintenance(0.9, 1.0), 6), maintenance(0.5, 1.0), maintenance(0.5, 0.0)
    (0.3, 0.0, 0.0)
    >>> round(maintenance(1.0, 0.5), 6), round(maintenance(1.0, 0.5, eta_cap=1.0), 6)
    (1.4, 0.4)

    Raises:
        ValueError: an accuracy is outside [0, 1].
    """
    _check_accuracy("a_comp", a_comp)
    _check_accuracy("a_full", a_full)
    if a_full == 0.0:
        return 0.0
    eta = a_comp / a_full
    if eta_cap is not None:
        eta = min(eta, eta_cap)
    return max(0.0, eta - tau)


def length_bonus(accuracy: Sequence[float], lengths: Sequence[int]) -> list[float]:
    """Video-R1's length bonus (``--len_control``), per rollout of one question.

    Video-R1 ``src/r1-v/src/open_r1/trainer/grpo_trainer.py``, ``compute_loss``: when more than
    one rollout has an accuracy reward above 0.1, each of those whose completion is 320 to 512
    tokens long (its end-of-turn token included) gets +0.2.

    >>> length_bonus([1.0, 1.0, 0.0, 0.5], [400, 600, 400, 320])
    [0.2, 0.0, 0.0, 0.2]
    >>> length_bonus([1.0, 0.0], [400, 400])  # only one right: no bonus
    [0.0, 0.0]
    """
    selected = [i for i, a in enumerate(accuracy) if a > 0.1]
    if len(selected) <= 1:
        return [0.0] * len(accuracy)
    return [0.2 if i in selected and 320 <= int(n) <= 512 else 0.0 for i, n in enumerate(lengths)]


def temporal_bonus(accuracy: Sequence[float], shuffled: Sequence[float]) -> list[float]:
    """Video-R1's T-GRPO bonus (``--temporal``), per rollout of one question.

    Video-R1 ``grpo_trainer.py``, ``compute_loss``: ``G / 2`` more rollouts answer from the same
    frames in random order; when the ordered rollouts' mean accuracy reward is at least 0.8 times
    the shuffled ones', every ordered rollout with accuracy reward above 0.1 gets +0.3.

    >>> temporal_bonus([1.0, 0.0], [1.0, 1.0]), temporal_bonus([1.0, 0.0], [0.0, 0.0])
    ([0.0, 0.0], [0.3, 0.0])
    """
    if not accuracy or not shuffled:
        return [0.0] * len(accuracy)
    ordered_mean = sum(accuracy) / len(accuracy)
    shuffled_mean = sum(shuffled) / len(shuffled)
    if ordered_mean >= 0.8 * shuffled_mean:
        return [0.3 if a > 0.1 else 0.0 for a in accuracy]
    return [0.0] * len(accuracy)


def c_grpo_reward(
    base: float,
    correct: bool,
    a_comp: float,
    a_full: float,
    *,
    tau: float = TAU,
    alpha: float = ALPHA,
) -> float:
    """The reward ``R_i = r_i + 1[correct_i] * alpha * max(0, a_comp / a_full - tau)``.

    >>> round(c_grpo_reward(1.0, True, 0.9, 1.0), 6), c_grpo_reward(1.0, False, 0.9, 1.0)
    (1.3, 1.0)
    """
    bonus = alpha * maintenance(a_comp, a_full, tau=tau) if correct else 0.0
    return base + bonus


def group_advantages(rewards: Sequence[float] | torch.Tensor, group_size: int) -> torch.Tensor:
    """GRPO advantages: ``(R - mean) / (std + 1e-4)`` within each group of ``group_size``.

    ``rewards`` is flat, ordered group by group (the ``G`` completions of the first question, then
    of the second, ...). The standard deviation is the unbiased one (``torch.std``'s default, as
    TRL); a group whose rewards are all equal gets exactly 0. Computed in float64, returned as
    float32 of the same length, on ``rewards``' device when it is a tensor.

    >>> group_advantages([1.0, 0.0], 2)
    tensor([ 0.7070, -0.7070])

    Raises:
        ValueError: ``group_size < 2`` or the length is not a multiple of it.
    """
    r = torch.as_tensor(rewards, dtype=torch.float32).flatten()
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (the unbiased std needs two), got {group_size}")
    if r.numel() % group_size:
        raise ValueError(f"{r.numel()} rewards do not split into groups of {group_size}")
    grouped = r.view(-1, group_size).double()  # [n_groups, G]
    mean = grouped.mean(dim=1, keepdim=True)  # [n_groups, 1]
    std = grouped.std(dim=1, keepdim=True)  # [n_groups, 1], unbiased
    # a group of equal rewards carries no signal: exactly 0 (its float mean may be off by an ulp,
    # which 1e-4 in the denominator would blow up to ~1e-3)
    equal = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)  # [n_groups, 1]
    adv = torch.where(equal, 0.0, (grouped - mean) / (std + _EPS))
    return adv.float().flatten()


def accuracy(
    problem_type: str,
    solution: str,
    completions: Sequence[str],
    threshold: float = 0.5,
    scoring: Scoring = "video_r1",
) -> float:
    """The fraction of ``completions`` that are correct (:func:`~marc.training.answers.is_correct`).

    Used for the teacher's ``a_full``; the student's ``a_comp`` is the same over its completions.

    >>> accuracy("numerical", "<answer>4</answer>", ["<answer>4</answer>", "5", "4.0", "four"])
    0.25
    >>> accuracy("numerical", "<answer>4</answer>", ["<answer>4</answer>", "5", "4.0", "four"],
    ...          scoring="lenient")
    0.5
    """
    if not completions:
        raise ValueError("accuracy of no completions is undefined")
    hits = sum(
        is_correct(problem_type, c, solution, threshold=threshold, scoring=scoring)
        for c in completions
    )
    return hits / len(completions)


@dataclass
class RolloutRewards:
    """The rewards of the ``G`` completions of one question, and what they were made of.

    Args:
        rewards: ``R_i``, the final reward of each completion.
        scores: the answer score of each completion, in [0, 1].
        correct: ``1[correct_i]`` of each completion.
        formats: the format reward of each completion (0 or 1).
        a_comp: the fraction of the completions that are correct.
        a_full: the teacher's accuracy, ``None`` when none was given.
        maintenance: the maintenance term ``max(0, a_comp / a_full - tau)`` applied to the correct
            completions (before ``alpha``); 0 when there is none.
    """

    rewards: list[float]
    scores: list[float]
    correct: list[bool]
    formats: list[float]
    a_comp: float
    a_full: float | None
    maintenance: float


@dataclass
class CGRPOReward:
    """The C-GRPO reward of a group of completions (picklable, for data-parallel workers).

    Args:
        tau: the paper's ``tau``, the fraction of the teacher's accuracy to keep for a bonus.
        alpha: the paper's ``alpha``, the weight of the maintenance term.
        format_weight: weight of the format reward in the base reward
            ``r_i = score_i + format_weight * format_i``; 0 disables it.
        threshold: score at which graded answers (OCR, free-form, regression) count as correct.
        compression_reward: add the maintenance term; ``False`` gives plain GRPO rewards.
        eta_cap: cap on ``eta = a_comp / a_full`` (``None``: uncapped).
        scoring: ``"video_r1"`` (Video-R1's ``accuracy_reward`` and ``format_reward``, exactly)
            or ``"lenient"`` (:func:`marc.training.answers.score`); see
            :mod:`marc.training.answers`.
    """

    tau: float = TAU
    alpha: float = ALPHA
    format_weight: float = 1.0
    threshold: float = 0.5
    compression_reward: bool = True
    scoring: Scoring = "video_r1"
    eta_cap: float | None = None

    def __post_init__(self) -> None:
        check_scoring(self.scoring)
        if self.tau < 0:
            raise ValueError(f"tau must be >= 0, got {self.tau}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if self.format_weight < 0:
            raise ValueError(
                f"format_weight must be >= 0 (0 disables it), got {self.format_weight}"
            )
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")

    def __call__(
        self,
        sample_problem_type: str,
        solution: str,
        completions: list[str],
        a_full: float | None,
        *,
        data_type: str = "video",
    ) -> RolloutRewards:
        """The rewards of ``completions``, the ``G`` answers of the student to one question.

        ``a_full`` is the teacher's accuracy on the question; with ``None``, or for an image
        sample (``data_type="image"``), there is no maintenance term.
        """
        if not completions:
            raise ValueError("no completions to reward")
        if data_type not in ("video", "image"):
            raise ValueError(f"data_type must be 'video' or 'image', got {data_type!r}")
        scores = [
            training_score(sample_problem_type, c, solution, self.scoring) for c in completions
        ]
        correct = [
            correct_from_score(sample_problem_type, s, threshold=self.threshold) for s in scores
        ]
        formats = [format_score(c, self.scoring) for c in completions]
        a_comp = sum(correct) / len(correct)
        term = 0.0
        if self.compression_reward and a_full is not None and data_type == "video":
            term = maintenance(a_comp, a_full, tau=self.tau, eta_cap=self.eta_cap)
        elif a_full is not None:
            _check_accuracy("a_full", a_full)
        rewards = [
            s + self.format_weight * f + (self.alpha * term if ok else 0.0)
            for s, f, ok in zip(scores, formats, correct, strict=True)
        ]
        return RolloutRewards(
            rewards=rewards,
            scores=scores,
            correct=correct,
            formats=formats,
            a_comp=a_comp,
            a_full=a_full,
            maintenance=term,
        )
