"""The C-GRPO reward and GRPO advantages against hand-computed numbers."""

from __future__ import annotations

import doctest
import math
import pickle

import numpy as np
import pytest
import torch

from marc.training import rewards
from marc.training.rewards import (
    ALPHA,
    GROUP_SIZE,
    TAU,
    CGRPOReward,
    accuracy,
    c_grpo_reward,
    group_advantages,
    maintenance,
)

GOOD = "<think>it is blue</think><answer>B</answer>"  # correct, well formatted
BAD = "<think>it is red</think><answer>A</answer>"  # wrong, well formatted
SOL = "<answer>B</answer>"


def test_docstring_examples():
    assert doctest.testmod(rewards).failed == 0


def test_paper_defaults():
    assert (TAU, ALPHA, GROUP_SIZE) == (0.6, 1.0, 8)


def test_maintenance():
    assert maintenance(0.9, 1.0) == pytest.approx(0.3)  # eta = 0.9
    assert maintenance(0.45, 0.5) == pytest.approx(0.3)  # eta = 0.9 again
    assert maintenance(0.5, 1.0) == 0.0  # eta = 0.5 < tau
    assert maintenance(0.6, 1.0) == 0.0  # eta = tau exactly
    assert maintenance(0.5, 0.0) == 0.0  # the teacher never got it right
    assert maintenance(1.0, 0.5) == pytest.approx(1.4)  # eta = 2: the student beats the teacher
    assert maintenance(0.9, 1.0, tau=0.5) == pytest.approx(0.4)
    for bad in [(-0.1, 1.0), (1.1, 1.0), (0.5, 1.5), (0.5, -1.0)]:
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            maintenance(*bad)


def test_c_grpo_reward():
    assert c_grpo_reward(2.0, True, 0.9, 1.0) == pytest.approx(2.3)
    assert c_grpo_reward(2.0, False, 0.9, 1.0) == 2.0  # only correct answers earn the bonus
    assert c_grpo_reward(2.0, True, 0.9, 1.0, alpha=0.5) == pytest.approx(2.15)
    assert c_grpo_reward(2.0, True, 0.4, 1.0) == 2.0  # eta below tau
    assert c_grpo_reward(1.0, True, 0.9, 0.0) == 1.0  # a_full = 0


def test_group_advantages_one_group_by_hand():
    r = [1, 0, 1, 1, 0, 0, 1, 1]
    # mean 5/8 = 0.625; squared deviations 5 * 0.375^2 + 3 * 0.625^2 = 1.875; unbiased var 1.875/7
    std = math.sqrt(1.875 / 7)
    hi, lo = 0.375 / (std + 1e-4), -0.625 / (std + 1e-4)
    adv = group_advantages(r, 8)
    assert adv.dtype == torch.float32 and adv.shape == (8,)
    assert adv.tolist() == pytest.approx([hi, lo, hi, hi, lo, lo, hi, hi], rel=1e-6)
    assert hi == pytest.approx(0.72443, abs=1e-4) and lo == pytest.approx(-1.20739, abs=1e-4)


def test_group_advantages_two_groups_and_equal_rewards():
    adv = group_advantages(torch.tensor([3.0, 1.0, 2.0, 2.0]), 2)
    # group 1: mean 2, unbiased std sqrt(2); group 2: all equal -> std 0 -> advantages 0
    a = 1 / (math.sqrt(2) + 1e-4)
    assert adv.tolist() == pytest.approx([a, -a, 0.0, 0.0], rel=1e-6)
    # equal rewards give exactly 0, even when their float mean is off by an ulp (2.3 in float32)
    assert group_advantages(np.full(8, 1.3), 8).tolist() == [0.0] * 8
    assert group_advantages([2.3] * 8 + [0.0] * 8, 8).tolist() == [0.0] * 16


def test_group_advantages_groups_are_independent():
    first, second = [1, 0, 1, 1, 0, 0, 1, 1], [5, 5, 5, 5, 5, 5, 5, 6]
    both = group_advantages(first + second, 8)
    assert torch.allclose(both[:8], group_advantages(first, 8))
    assert torch.allclose(both[8:], group_advantages(second, 8))


def test_group_advantages_refuses_bad_shapes():
    with pytest.raises(ValueError, match="groups of 8"):
        group_advantages([1.0] * 12, 8)
    with pytest.raises(ValueError, match="group_size"):
        group_advantages([1.0, 2.0], 1)


def test_accuracy():
    # Video-R1's training reward (the default): a bare "B" has no <answer> block, so it is wrong
    assert accuracy("multiple choice", SOL, [GOOD, BAD, GOOD, "B"]) == 0.5
    assert accuracy("multiple choice", SOL, [GOOD, BAD, GOOD, "B"], scoring="lenient") == 0.75
    assert accuracy("regression", "10", ["5", "4"], scoring="lenient") == 0.5
    assert accuracy("regression", "10", ["5", "4"], threshold=0.45, scoring="lenient") == 0.5
    tagged = ["<answer>5</answer>", "<answer>4</answer>"]  # 1 - rel. error (+1e-9): 0.5-, 0.4-
    assert accuracy("regression", "<answer>10</answer>", tagged) == 0.0
    assert accuracy("regression", "<answer>10</answer>", tagged, threshold=0.45) == 0.5
    with pytest.raises(ValueError):
        accuracy("numerical", "1", [])


def test_c_grpo_group_with_eta_0_9():
    # 9 of 10 correct with the teacher always right: eta = 0.9, maintenance 0.3
    out = CGRPOReward()("multiple choice", SOL, [GOOD] * 9 + [BAD], a_full=1.0)
    assert out.a_comp == pytest.approx(0.9) and out.a_full == 1.0
    assert out.maintenance == pytest.approx(0.3)
    assert out.correct == [True] * 9 + [False]
    assert out.scores == [1.0] * 9 + [0.0]
    assert out.formats == [1.0] * 10
    # correct: score 1 + format 1 + 0.3; wrong: format only
    assert out.rewards == pytest.approx([2.3] * 9 + [1.0])


def test_c_grpo_no_bonus_below_tau_or_without_teacher_or_for_images():
    completions = [GOOD, BAD, GOOD, BAD]  # a_comp = 0.5
    reward = CGRPOReward()
    assert reward("multiple choice", SOL, completions, a_full=1.0).maintenance == 0.0  # 0.5 < 0.6
    for out in [
        reward("multiple choice", SOL, completions, a_full=0.5, data_type="image"),
        reward("multiple choice", SOL, completions, a_full=None),
        reward("multiple choice", SOL, completions, a_full=0.0),
        CGRPOReward(compression_reward=False)("multiple choice", SOL, completions, a_full=0.5),
    ]:
        assert out.maintenance == 0.0
        assert out.rewards == [2.0, 1.0, 2.0, 1.0]
    # the same group as a video with a_full = 0.5: eta = 1, bonus 0.4 for the correct ones
    out = reward("multiple choice", SOL, completions, a_full=0.5)
    assert out.rewards == pytest.approx([2.4, 1.0, 2.4, 1.0])


def test_c_grpo_weights_and_graded_answers():
    out = CGRPOReward(alpha=2.0, format_weight=0.0, scoring="lenient")(
        "regression", "<answer>10</answer>", ["<answer>9</answer>", "8", "1"], a_full=1.0
    )
    # scores 0.9, 0.8, 0.1; correct (>= 0.5) 2 of 3; eta = 2/3 -> maintenance 2/3 - 0.6
    m = 2 / 3 - 0.6
    assert out.scores == pytest.approx([0.9, 0.8, 0.1])
    assert out.correct == [True, True, False]
    assert out.maintenance == pytest.approx(m)
    assert out.rewards == pytest.approx([0.9 + 2 * m, 0.8 + 2 * m, 0.1])
    strict = CGRPOReward(threshold=0.85, scoring="lenient")(
        "regression", "10", ["9", "8"], a_full=None
    )
    assert strict.correct == [True, False]
    # Video-R1's rule: the answer must be tagged, and an exact one scores just under 1
    vr1 = CGRPOReward(format_weight=0.0)(
        "regression", "<answer>10</answer>", ["<answer>9</answer>", "8"], a_full=None
    )
    assert vr1.scores == pytest.approx([0.9, 0.0]) and vr1.correct == [True, False]


def test_c_grpo_reward_is_picklable_and_validated():
    reward = CGRPOReward(tau=0.5, alpha=0.5)
    clone = pickle.loads(pickle.dumps(reward))
    assert clone == reward
    # eta = 1: bonus alpha * (1 - tau) = 0.25
    assert clone("multiple choice", SOL, [GOOD, GOOD], 1.0).rewards == [2.25, 2.25]
    with pytest.raises(ValueError, match="tau"):
        CGRPOReward(tau=-1)
    with pytest.raises(ValueError, match="threshold"):
        CGRPOReward(threshold=0)
    with pytest.raises(ValueError, match="a_full"):
        reward("multiple choice", SOL, [GOOD], a_full=2.0)
    with pytest.raises(ValueError, match="a_full"):
        reward("multiple choice", SOL, [GOOD], a_full=2.0, data_type="image")
    with pytest.raises(ValueError, match="data_type"):
        reward("multiple choice", SOL, [GOOD], a_full=1.0, data_type="audio")
    with pytest.raises(ValueError, match="no completions"):
        reward("multiple choice", SOL, [], a_full=1.0)


def test_the_maintenance_bonus_cancels_in_binary_groups_but_not_with_the_format_reward():
    """The C-GRPO bonus is one constant for a group's correct completions: with a binary reward
    it only scales the group's two values, which (R - mean) / std undoes; with the format reward
    (a third component) the advantages change."""
    solution = "<answer>B</answer>"
    answers = ["B", "C", "B", "D", "B", "A", "C", "C"]
    plain = [f"<answer>{a}</answer>" for a in answers]
    a_full = 0.5  # eta = (3/8) / 0.5 = 0.75 > tau: the bonus is 0.15
    c_grpo = CGRPOReward(format_weight=0.0)("multiple choice", solution, plain, a_full)
    grpo = CGRPOReward(format_weight=0.0, compression_reward=False)(
        "multiple choice", solution, plain, a_full
    )
    assert c_grpo.maintenance == pytest.approx(0.15) and c_grpo.rewards != grpo.rewards
    a, b = group_advantages(c_grpo.rewards, 8), group_advantages(grpo.rewards, 8)
    assert torch.allclose(a, b, atol=1e-3)
    # half of the completions in the reasoning format: now the bonus re-weights the update
    mixed = [f"<think>x</think>{p}" if i % 2 else p for i, p in enumerate(plain)]
    c_grpo = CGRPOReward()("multiple choice", solution, mixed, a_full)
    grpo = CGRPOReward(compression_reward=False)("multiple choice", solution, mixed, a_full)
    a, b = group_advantages(c_grpo.rewards, 8), group_advantages(grpo.rewards, 8)
    assert not torch.allclose(a, b, atol=1e-2)
