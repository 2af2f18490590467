"""Answer matching: how well one completion answers one question, in two scoring modes.

``scoring="video_r1"`` (the default of ``marc train`` and ``marc eval``) is Video-R1's own code,
quirks included: its training reward (:func:`marc.training.video_r1.accuracy_reward`) in training,
its evaluation scorer (:func:`marc.training.video_r1.eval_reward`) in evaluation, its format
reward (:func:`marc.training.video_r1.format_reward`). See :func:`training_score`,
:func:`eval_score` and :func:`format_score`, which dispatch on the mode.

``scoring="lenient"`` is the scorer below (:func:`score`, :func:`format_reward`), kept as an
explicit option for archive questions, where a user's model answering ``"B. red"`` or ``3.0``
should count. It is *not* what the paper measured: on multiple choice it accepts ``B.``, ``(B)``,
``b``, ``B. red`` and even hedged ``B C``, which inflates a base model's accuracy.

The lenient semantics loosely follow Video-R1's ``accuracy_reward`` (the reward MARC's C-GRPO
builds on), one rule per ``problem_type``:

- ``multiple choice``: the option letters match (1 or 0). Video-R1 compares the stripped strings;
  here ``"B"``, ``"B."``, ``"(B)"``, ``"b"`` and ``"B. red"`` all count as ``B``.
- ``numerical``: both parse as numbers and agree to 2 decimals (1 or 0). Commas and spaces are
  thousands separators (``"1,000" == "1000"``). Video-R1 also gives 0 when only one side has a
  ``.`` or ``,``; that check is dropped here because it marks ``"1,000"`` vs ``"1000"`` wrong.
- ``OCR``: ``max(0, 1 - WER)``, the word error rate from :mod:`jiwer` on lower-cased,
  whitespace-normalised text.
- ``free-form``: the mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures (:mod:`rouge_score`,
  Porter stemming), as Video-R1.
- ``regression``: ``1 - min(1, |pred - gt| / (|gt| + 1e-9))``, one minus the relative error.

The answer is the text inside the *last* ``<answer>…</answer>`` of the completion (and of the
solution); text without the tags is taken whole, so a bare ``"B"`` still scores.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Literal

from marc.training import video_r1

Scoring = Literal["video_r1", "lenient"]
#: The scoring modes: Video-R1's exact rules (the reproduction default), or the lenient scorer.
SCORINGS: tuple[str, ...] = ("video_r1", "lenient")

__all__ = [
    "SCORINGS",
    "Scoring",
    "check_scoring",
    "correct_from_score",
    "eval_score",
    "format_score",
    "training_score",
    "extract_answer",
    "find_answer",
    "format_reward",
    "is_correct",
    "parse_number",
    "score",
]

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# the whole completion: reasoning, then the answer, nothing else (Video-R1's format reward)
_FORMAT = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)
# an option letter at the start: "B", "B.", "B)", "(B)", "B: red", "B. red" (not "Because")
_LETTER = re.compile(r"\s*\(?\s*([A-Za-z])\s*(?:[).:,]|\s|$)")
_EXACT_TYPES = ("multiple choice", "numerical")
_GRADED_TYPES = ("OCR", "free-form", "regression")


def find_answer(text: str) -> str | None:
    """The stripped content of the last ``<answer>…</answer>`` in ``text``, ``None`` without one.

    >>> find_answer("<think>hmm</think><answer> B </answer>")
    'B'
    >>> find_answer("B") is None
    True
    """
    matches = _ANSWER.findall(text)
    return matches[-1].strip() if matches else None


def extract_answer(text: str) -> str:
    """The content of the last ``<answer>…</answer>`` (stripped); the stripped text without one.

    >>> extract_answer("<answer>A</answer> wait, no <answer>C</answer>")
    'C'
    >>> extract_answer("  42 ")
    '42'
    """
    found = find_answer(text)
    return text.strip() if found is None else found


def parse_number(text: str) -> float | None:
    """``text`` as a finite float, ignoring commas and spaces; ``None`` when it is not a number.

    >>> parse_number("1,000.5"), parse_number("- 3"), parse_number("three")
    (1000.5, -3.0, None)
    """
    cleaned = re.sub(r"[,\s]", "", text)
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _option_letter(text: str) -> str | None:
    match = _LETTER.match(text)
    return match.group(1).upper() if match else None


@functools.cache
def _rouge():  # built once per process: the scorer loads its tokenizer and stemmer
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def _wer_score(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = " ".join(reference.lower().split()), " ".join(hypothesis.lower().split())
    if not ref:
        return 1.0 if not hyp else 0.0
    if not hyp:
        return 0.0
    return max(0.0, 1.0 - jiwer.wer(ref, hyp))


def score(problem_type: str, completion: str, solution: str) -> float:
    """How well ``completion`` answers a question whose reference is ``solution``, in [0, 1].

    Both may or may not wrap the answer in ``<answer>`` tags. See the module docstring for the
    rule of each problem type.

    >>> score("multiple choice", "<think>...</think><answer>(b)</answer>", "<answer>B</answer>")
    1.0
    >>> score("numerical", "<answer>3.14159</answer>", "<answer>3.14</answer>")
    1.0
    >>> score("OCR", "<answer>STOP here now</answer>", "<answer>stop here</answer>")
    0.5
    >>> round(score("regression", "<answer>9</answer>", "<answer>10</answer>"), 6)
    0.9

    Raises:
        ValueError: ``problem_type`` is not one of Video-R1's five.
    """
    pred, gt = extract_answer(completion), extract_answer(solution)
    if problem_type == "multiple choice":
        letter = _option_letter(pred)
        return 1.0 if letter is not None and letter == _option_letter(gt) else 0.0
    if problem_type in ("numerical", "regression"):
        p, g = parse_number(pred), parse_number(gt)
        if p is None or g is None:
            return 0.0
        if problem_type == "numerical":
            return 1.0 if round(p, 2) == round(g, 2) else 0.0
        return 1.0 - min(1.0, abs(p - g) / (abs(g) + 1e-9))
    if problem_type == "OCR":
        return _wer_score(gt, pred)
    if problem_type == "free-form":
        scores = _rouge().score(gt, pred)
        mean = (
            scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure
        ) / 3
        return min(1.0, max(0.0, mean))
    raise ValueError(
        f"unknown problem_type {problem_type!r}: expected one of "
        f"{', '.join(map(repr, _EXACT_TYPES + _GRADED_TYPES))}"
    )


def correct_from_score(problem_type: str, value: float, *, threshold: float = 0.5) -> bool:
    """Whether a :func:`score` of ``value`` counts as a correct answer (see :func:`is_correct`).

    >>> correct_from_score("numerical", 0.99), correct_from_score("OCR", 0.5)
    (False, True)
    """
    if problem_type in _EXACT_TYPES:
        return value == 1.0
    if problem_type in _GRADED_TYPES:
        return value >= threshold
    raise ValueError(f"unknown problem_type {problem_type!r}")


def is_correct(
    problem_type: str,
    completion: str,
    solution: str,
    *,
    threshold: float = 0.5,
    scoring: Scoring = "lenient",
) -> bool:
    """Whether ``completion`` answers correctly: the indicator ``1[correct]`` of C-GRPO.

    Multiple choice and numerical answers are right or wrong (score 1). OCR, free-form and
    regression answers are graded, so they count as correct when their score reaches
    ``threshold`` (0.5 by default: at most half the words wrong, half the ROUGE overlap, or within
    50 % relative error; ours: neither paper states one). This one choice defines
    ``1[correct_i]`` in the reward and the accuracies ``a_comp`` and ``a_full`` of the
    maintenance term alike. The score is the *training* score of ``scoring``
    (:func:`training_score`); the trainer passes its config's ``scoring`` (``video_r1``).

    >>> is_correct("multiple choice", "<answer>C</answer>", "<answer>B</answer>")
    False
    >>> is_correct("regression", "<answer>12</answer>", "<answer>10</answer>")
    True
    >>> is_correct("multiple choice", "(b)", "<answer>B</answer>", scoring="video_r1")
    False
    """
    value = training_score(problem_type, completion, solution, scoring)
    return correct_from_score(problem_type, value, threshold=threshold)


def format_reward(completion: str) -> float:
    """1.0 when the completion is exactly ``<think>…</think>`` then ``<answer>…</answer>``, else 0.

    Whitespace is allowed around and between the two blocks; nothing else is.

    >>> format_reward("<think>red, so B</think>\\n<answer>B</answer>")
    1.0
    >>> format_reward("<answer>B</answer>"), format_reward("<think>x</think><answer>B</answer>!")
    (0.0, 0.0)
    """
    return 1.0 if _FORMAT.fullmatch(completion) else 0.0


# ----------------------------------------------------------------------------- scoring modes
def check_scoring(scoring: str) -> str:
    """``scoring`` when it is one of :data:`SCORINGS`, else a ``ValueError`` naming them."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    return scoring


def training_score(
    problem_type: str, completion: str, solution: str, scoring: Scoring = "video_r1"
) -> float:
    """The accuracy reward of a training rollout: Video-R1's ``accuracy_reward`` or :func:`score`.

    >>> training_score("multiple choice", "<answer>B.</answer>", "<answer>B</answer>")
    0.0
    >>> training_score("multiple choice", "<answer>B.</answer>", "<answer>B</answer>", "lenient")
    1.0
    """
    if check_scoring(scoring) == "video_r1":
        return video_r1.accuracy_reward(problem_type, completion, solution)
    return score(problem_type, completion, solution)


def eval_score(
    problem_type: str, output: str, solution: str, scoring: Scoring = "video_r1"
) -> float:
    """The score of an evaluation answer: Video-R1's ``eval_bench.py`` ``reward_fn`` (MRA for
    regression, 0 for OCR and free-form) or :func:`score`.

    >>> eval_score("multiple choice", "B", "<answer>B</answer>")
    1.0
    """
    if check_scoring(scoring) == "video_r1":
        return video_r1.eval_reward(problem_type, output, solution)
    return score(problem_type, output, solution)


def format_score(completion: str, scoring: Scoring = "video_r1") -> float:
    """The format reward: Video-R1's (no whitespace around the blocks) or :func:`format_reward`.

    >>> format_score("<think>x</think><answer>B</answer>\\n"), format_score(
    ...     "<think>x</think><answer>B</answer>\\n", "lenient")
    (0.0, 1.0)
    """
    if check_scoring(scoring) == "video_r1":
        return video_r1.format_reward(completion)
    return format_reward(completion)
