"""Video-R1's answer scoring, exactly: its training reward and its evaluation scorer.

MARC's C-GRPO builds on Video-R1 (tulerfeng/Video-R1), and the paper's numbers are measured with
Video-R1's code. That code scores answers in two places, with different rules, and this module
reproduces both, quirks included (the ``scoring="video_r1"`` mode of
:mod:`marc.training.answers`; the lenient scorer there stays an explicit option):

* :func:`accuracy_reward` — the training reward, ``src/r1-v/src/open_r1/grpo.py``,
  ``accuracy_reward`` (one completion at a time; Video-R1 reads the problem type of the *first*
  sample of the batch, ``kwargs['problem_type'][0]``, which is the sample's own with its
  per-device batch of one prompt, as in ``run_grpo_video.sh``).
* :func:`format_reward` — ``grpo.py``, ``format_reward``.
* :func:`eval_reward` — the evaluation scorer, ``src/eval_bench.py``, ``reward_fn``; a sample is
  correct when it scores exactly 1.0, and ``mean_acc`` (every type but regression) and
  ``mean_mra`` (regression) are reported separately (``eval_bench.py``'s ``final_acc``).

The rules, and the quirks a reproduction must keep (each pinned by ``tests/test_video_r1.py``):

* **The answer** is the *first* ``<answer>…</answer>`` (``re.search`` of
  ``<answer>\\s*(.*?)\\s*</answer>``), stripped; ``""`` without one. The reference is extracted
  the same way from the solution (a solution without tags gives ``""``).
  - Training: a completion without tags answers ``""`` (so it scores 0, except against an
    empty reference, where ``"" == ""`` scores 1 for multiple choice).
  - Evaluation: when the extracted answer is ``""`` (no tags, or empty tags) the *whole*
    output, unstripped, is the answer; so a bare ``B`` scores 1 at evaluation but 0 in
    training.
* **multiple choice**: the two stripped strings are equal (case-sensitive): ``B.``, ``(B)``,
  ``b``, ``B. red``, ``B C`` all score 0 against ``B``.
* **numerical**: 0 unless both or neither contain a ``.`` or ``,`` (so ``3.0`` vs ``3`` and
  ``1,000`` vs ``1000`` score 0); then both go through Python's ``float`` after removing commas
  (which also accepts ``1e3``, ``+3``, ``1_000``, ``inf``, surrounding spaces) and must agree
  after ``round(x, 2)`` (``nan`` never equals itself: 0; ``inf`` equals ``inf``: 1).
* **OCR** (training only): ``1 - WER`` clipped to [0, 1], WER the word-level Levenshtein
  distance over whitespace-split words (case- and punctuation-sensitive) divided by
  ``max(1, reference words)``.
* **free-form** (training only): the mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures
  (:mod:`rouge_score`, Porter stemmer), clipped to [0, 1].
* **regression**, training: ``1 - clip((|pred - gt| + 1e-9) / (|gt| + 1e-9), 0, 1)`` in float64,
  so an exact answer scores ``1 - 1e-9 / (|gt| + 1e-9)`` (just under 1; exactly 0 when
  ``gt == 0``), and ``nan`` scores 1 (``max(0.0, nan)`` is 0.0 in Python). An unparseable side
  scores 0 (Video-R1 reaches its ``except`` branch).
* **regression**, evaluation: the mean relative accuracy (MRA, VSI-Bench's) in float32 torch:
  the fraction of the thresholds 0.50, 0.55, …, 0.95 with ``|pred - gt| / (|gt| + 1e-8) <
  1 - threshold``.
* **OCR and free-form at evaluation score 0** (``reward_fn`` has no rule for them), and any
  other problem type scores 0 in both. Any exception scores 0.

>>> accuracy_reward("multiple choice", "<think>x</think><answer>B</answer>", "<answer>B</answer>")
1.0
>>> accuracy_reward("multiple choice", "B", "<answer>B</answer>"), eval_reward("multiple choice",
...     "B", "<answer>B</answer>")
(0.0, 1.0)
>>> eval_reward("regression", "<answer>9</answer>", "<answer>10</answer>")
0.8999999761581421
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "accuracy_reward",
    "eval_prediction",
    "eval_reward",
    "extract_answer",
    "format_reward",
    "mean_relative_accuracy",
    "normalize_number",
    "wer",
]

# grpo.py / eval_bench.py extract_answer: the first block, its inner whitespace dropped
_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
# grpo.py format_reward, used with re.fullmatch: no whitespace before <think> or after </answer>
_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def extract_answer(text: str) -> str:
    """The stripped content of the *first* ``<answer>…</answer>``; ``""`` without one.

    Video-R1: ``grpo.py`` and ``eval_bench.py``, ``extract_answer``.

    >>> extract_answer("<answer> A </answer><answer>C</answer>"), extract_answer("C")
    ('A', '')
    """
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else ""


def eval_prediction(output: str) -> str:
    """What ``eval_bench.py`` takes as the model's answer: :func:`extract_answer`, or the whole
    (unstripped) output when that is ``""`` (``reward_fn``: ``if output_ans == '': output_ans =
    model_output``).

    >>> eval_prediction("<think>x</think><answer>C</answer>"), eval_prediction(" C ")
    ('C', ' C ')
    """
    found = extract_answer(output)
    return output if found == "" else found


def normalize_number(text: str) -> float | None:
    """``float(text without commas)``, ``None`` when Python's ``float`` refuses it.

    Video-R1: ``normalize_number`` (so ``"1e3"``, ``" +3 "``, ``"1_000"``, ``"inf"`` and ``"nan"``
    all parse).

    >>> normalize_number("1,000.5"), normalize_number("1e3"), normalize_number("three")
    (1000.5, 1000.0, None)
    """
    try:
        return float(text.replace(",", ""))
    except (ValueError, TypeError, AttributeError):
        return None


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over ``max(1, len(reference words))``.

    Video-R1: ``grpo.py``'s ``accuracy_reward.wer`` (whitespace split, case-sensitive; an empty
    reference gives the hypothesis' word count).

    >>> wer("stop here", "STOP here now"), wer("", "two words")
    (1.0, 2.0)
    """
    ref, hyp = reference.split(), hypothesis.split()
    m, n = len(ref), len(hyp)
    prev = list(range(n + 1))  # row i-1 of the DP table d[i][j]
    for i in range(1, m + 1):
        row = [i] + [0] * n
        for j in range(1, n + 1):
            if ref[i - 1] == hyp[j - 1]:
                row[j] = prev[j - 1]
            else:
                row[j] = 1 + min(prev[j], row[j - 1], prev[j - 1])
        prev = row
    return prev[n] / max(1, m)


@functools.cache
def _rouge():  # built once per process (Video-R1 builds one per call; same scores)
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def _rouge_mean(reference: str, hypothesis: str) -> float:
    """Video-R1: ``compute_rouge_score``: mean of the ROUGE-1/2/L F-measures, stemmed."""
    s = _rouge().score(reference, hypothesis)
    return (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3


def mean_relative_accuracy(
    pred: float, target: float, start: float = 0.5, end: float = 0.95, interval: float = 0.05
) -> float:
    """VSI-Bench's MRA as ``eval_bench.py`` computes it: float32 torch, ``<`` strictly.

    >>> mean_relative_accuracy(10.0, 10.0), mean_relative_accuracy(5.0, 10.0)
    (1.0, 0.0)
    """
    import torch

    p = torch.tensor(pred, dtype=torch.float32)
    t = torch.tensor(target, dtype=torch.float32)
    rel_error = torch.abs(p - t) / (torch.abs(t) + 1e-8)
    thresholds = torch.arange(start, end + interval / 2, interval, dtype=torch.float32)
    return (rel_error < (1 - thresholds)).float().mean().item()


def _numerical(out: str, gt: str) -> float:
    """grpo.py / eval_bench.py, ``numerical``: the decimal-mark check, then 2-decimal equality."""
    if (("." in gt) or ("," in gt)) != (("." in out) or ("," in out)):
        return 0.0
    g, o = normalize_number(gt), normalize_number(out)
    if g is None or o is None:
        return 0.0
    return 1.0 if round(g, 2) == round(o, 2) else 0.0


def accuracy_reward(problem_type: str, completion: str, solution: str) -> float:
    """Video-R1's training reward of one completion (``grpo.py``, ``accuracy_reward``).

    >>> accuracy_reward("numerical", "<answer>3.0</answer>", "<answer>3</answer>")
    0.0
    >>> accuracy_reward("OCR", "<answer>STOP here</answer>", "<answer>stop here</answer>")
    0.5
    """
    try:
        out, gt = extract_answer(completion), extract_answer(solution)
        if problem_type == "multiple choice":
            return 1.0 if out.strip() == gt.strip() else 0.0
        if problem_type == "numerical":
            return _numerical(out, gt)
        if problem_type == "OCR":
            return max(0.0, min(1.0, 1 - wer(gt, out)))
        if problem_type == "free-form":
            return max(0.0, min(1.0, _rouge_mean(gt, out)))
        if problem_type == "regression":
            g, o = normalize_number(gt), normalize_number(out)
            if g is None or o is None:
                return 0.0  # Video-R1 raises a TypeError here and scores 0 in its except
            rel_diff = (abs(o - g) + 1e-9) / (abs(g) + 1e-9)
            rel_diff = min(1.0, max(0.0, rel_diff))  # nan -> max(0.0, nan) == 0.0 -> reward 1
            return 1 - rel_diff
        return 0.0
    except Exception:  # noqa: BLE001 - Video-R1 scores any failure 0
        return 0.0


def eval_reward(problem_type: str, output: str, solution: str) -> float:
    """Video-R1's evaluation score of one output (``eval_bench.py``, ``reward_fn``).

    >>> eval_reward("multiple choice", "<answer>(B)</answer>", "<answer>B</answer>")
    0.0
    >>> eval_reward("free-form", "<answer>a dog</answer>", "<answer>a dog</answer>")
    0.0
    """
    try:
        out, gt = eval_prediction(output), extract_answer(solution)
        if problem_type == "multiple choice":
            return 1.0 if out.strip() == gt.strip() else 0.0
        if problem_type == "numerical":
            return _numerical(out, gt)
        if problem_type == "regression":
            g, o = normalize_number(gt), normalize_number(out)
            if g is None or o is None:
                return 0.0
            return mean_relative_accuracy(o, g)
        return 0.0  # OCR, free-form and anything else: reward_fn has no rule
    except Exception:  # noqa: BLE001 - Video-R1 scores any failure 0
        return 0.0


def format_reward(completion: str) -> float:
    """1.0 when the whole completion is ``<think>…</think>`` then ``<answer>…</answer>``.

    Video-R1: ``grpo.py``, ``format_reward`` (``re.fullmatch``, ``re.DOTALL``): whitespace only
    *between* the blocks; nothing before ``<think>`` or after the last ``</answer>``. The lazy
    ``.*?`` still stretch under ``fullmatch``, so extra blocks inside pass.

    >>> format_reward("<think>x</think>\\n<answer>B</answer>"), format_reward(
    ...     "<think>x</think><answer>B</answer>\\n")
    (1.0, 0.0)
    """
    return 1.0 if _FORMAT.fullmatch(completion) else 0.0


# ----------------------------------------------------------------------------- the prompts
#: ``grpo.py``'s ``QUESTION_TEMPLATE`` (training; also Video-R1's SFT script).
QUESTION_TEMPLATE_TRAIN = (
    "{Question}\n"
    "Please think about this question as if you were a human pondering deeply. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', "
    "'oh, I see', 'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> </think> tags, and then give your final "
    "answer between the <answer> </answer> tags."
)
#: ``eval_bench.py``'s ``QUESTION_TEMPLATE``: "between the <think> and </think> tags".
QUESTION_TEMPLATE_EVAL = (
    "{Question}\n"
    "Please think about this question as if you were a human pondering deeply. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', "
    "'oh, I see', 'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> and </think> tags, and then give your "
    "final answer between the <answer> and </answer> tags."
)
#: ``TYPE_TEMPLATE`` (the same in ``grpo.py`` and ``eval_bench.py``).
TYPE_TEMPLATE = {
    "multiple choice": " Please provide only the single option letter (e.g., A, B, C, D, etc.) "
    "within the <answer> </answer> tags.",
    "numerical": " Please provide the numerical value (e.g., 42 or 3.14) within the "
    "<answer> </answer> tags.",
    "OCR": " Please transcribe text from the image/video clearly and provide your text answer "
    "within the <answer> </answer> tags.",
    "free-form": " Please provide your text answer within the <answer> </answer> tags.",
    "regression": " Please provide the numerical value (e.g., 42 or 3.14) within the "
    "<answer> </answer> tags.",
}


def question_prompt(
    problem: str, problem_type: str, options: tuple[str, ...] | list[str] = (), *, stage: str
) -> str:
    """The text of Video-R1's user turn (after the one image or video placeholder).

    ``grpo.py`` / ``eval_bench.py``: a multiple-choice question is ``problem + "Options:\\n"``
    then each option and ``"\\n"`` (no separator before "Options:"); the question template of
    the ``stage`` (``"train"`` or ``"eval"``), then the type's instruction. There is no system
    prompt and no other text: nothing about cameras or files.

    >>> question_prompt("Which colour?\\n", "multiple choice", ["A. red", "B. blue"],
    ...                 stage="eval").splitlines()[:5]
    ['Which colour?', 'Options:', 'A. red', 'B. blue', '']
    """
    if stage not in ("train", "eval"):
        raise ValueError(f"stage must be 'train' or 'eval', got {stage!r}")
    question = problem
    if problem_type == "multiple choice":
        question = problem + "Options:\n" + "".join(op + "\n" for op in options)
    template = QUESTION_TEMPLATE_TRAIN if stage == "train" else QUESTION_TEMPLATE_EVAL
    return template.format(Question=question) + TYPE_TEMPLATE[problem_type]
