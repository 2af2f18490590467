"""Video-R1's scoring, verdict by verdict (``scoring="video_r1"``, :mod:`marc.training.video_r1`).

Every expected value below was derived by reading Video-R1's code (tulerfeng/Video-R1):
``TRAIN`` is ``src/r1-v/src/open_r1/grpo.py``'s ``accuracy_reward`` (with the problem type of
the sample), ``EVAL`` is ``src/eval_bench.py``'s ``reward_fn``, ``FORMAT`` is ``grpo.py``'s
``format_reward``. The comment on a row says which rule of that code decides it.
"""

from __future__ import annotations

import doctest

import pytest

from marc.training import answers, video_r1
from marc.training.answers import eval_score, format_score, training_score

MC, NUM, OCR, FREE, REG = "multiple choice", "numerical", "OCR", "free-form", "regression"
SB = "<answer>B</answer>"


# Video-R1's exact regression reward 1 - (|o - g| + 1e-9) / (|g| + 1e-9), float64
def exact(gt: float) -> float:
    return 1 - 1e-9 / (abs(gt) + 1e-9)


# (id, problem type, completion / model output, solution, TRAIN, EVAL)
CASES = [
    # --- multiple choice: stripped strings must be equal
    ("mc-tagged", MC, "<think>x</think><answer>B</answer>", SB, 1.0, 1.0),
    ("mc-dot", MC, "<answer>B.</answer>", SB, 0.0, 0.0),
    ("mc-paren", MC, "<answer>(B)</answer>", SB, 0.0, 0.0),
    ("mc-lower", MC, "<answer>b</answer>", SB, 0.0, 0.0),
    ("mc-dot-text", MC, "<answer>B. red</answer>", SB, 0.0, 0.0),
    ("mc-paren-text", MC, "<answer>B) red</answer>", SB, 0.0, 0.0),
    ("mc-hedge-space", MC, "<answer>B C</answer>", SB, 0.0, 0.0),
    ("mc-hedge-comma", MC, "<answer>B, C</answer>", SB, 0.0, 0.0),
    ("mc-inner-space", MC, "<answer>  B \n</answer>", SB, 1.0, 1.0),  # \s* in the pattern
    ("mc-newlines", MC, "<answer>\nB\n</answer>", SB, 1.0, 1.0),
    ("mc-think-space", MC, "<think></think>\n\n<answer> B</answer>", SB, 1.0, 1.0),
    ("mc-trailing-nl", MC, "<answer>B\n</answer>\n", SB, 1.0, 1.0),
    # no tags: training extracts "", evaluation falls back to the whole output
    ("mc-bare", MC, "B", SB, 0.0, 1.0),
    ("mc-bare-spaced", MC, " B\n", SB, 0.0, 1.0),  # reward_fn strips before comparing
    ("mc-bare-sentence", MC, "The answer is B", SB, 0.0, 0.0),
    # the FIRST block counts
    ("mc-first-wrong", MC, "<answer>A</answer> wait <answer>B</answer>", SB, 0.0, 0.0),
    ("mc-first-right", MC, "<answer>B</answer><answer>A</answer>", SB, 1.0, 1.0),
    ("mc-in-think", MC, "<think>is it <answer>C</answer>?</think><answer>B</answer>", SB, 0.0, 0.0),
    # malformed outputs
    ("mc-empty-tags", MC, "<answer></answer>", SB, 0.0, 0.0),  # eval: the whole text
    ("mc-think-only", MC, "<think>B</think>", SB, 0.0, 0.0),
    ("mc-unclosed", MC, "<think>x</think><answer>B", SB, 0.0, 0.0),
    ("mc-truncated", MC, "<think>let me think, it is B or", SB, 0.0, 0.0),
    ("mc-upper-tags", MC, "<ANSWER>B</ANSWER>", SB, 0.0, 0.0),
    ("mc-empty-output", MC, "", SB, 0.0, 0.0),
    ("mc-error-sentinel", MC, "<answer>error</answer>", SB, 0.0, 0.0),
    # the reference is extracted too: untagged solutions give ""
    ("mc-gt-with-text", MC, "<answer>B</answer>", "<answer>B. red</answer>", 0.0, 0.0),
    ("mc-gt-untagged", MC, "<answer>B</answer>", "B", 0.0, 0.0),
    ("mc-gt-untagged-no-tags", MC, "no tags here", "B", 1.0, 0.0),  # "" == "" in training
    ("mc-gt-untagged-empty", MC, "", "B", 1.0, 1.0),  # "" == "" in both
    # --- numerical: the decimal-mark check, then float() and round(x, 2)
    ("num-equal", NUM, "<answer>3</answer>", "<answer>3</answer>", 1.0, 1.0),
    ("num-3.0-vs-3", NUM, "<answer>3.0</answer>", "<answer>3</answer>", 0.0, 0.0),
    ("num-3-vs-3.0", NUM, "<answer>3</answer>", "<answer>3.0</answer>", 0.0, 0.0),
    ("num-3.-vs-3.0", NUM, "<answer>3.</answer>", "<answer>3.0</answer>", 1.0, 1.0),
    ("num-2-decimals", NUM, "<answer>3.14159</answer>", "<answer>3.14</answer>", 1.0, 1.0),
    ("num-3rd-decimal", NUM, "<answer>3.146</answer>", "<answer>3.14</answer>", 0.0, 0.0),
    ("num-thousands-vs-plain", NUM, "<answer>1,000</answer>", "<answer>1000</answer>", 0.0, 0.0),
    ("num-thousands-both", NUM, "<answer>1,000</answer>", "<answer>1,000</answer>", 1.0, 1.0),
    ("num-comma-vs-dot", NUM, "<answer>1,000</answer>", "<answer>1.000</answer>", 0.0, 0.0),
    ("num-exponent", NUM, "<answer>1e3</answer>", "<answer>1000</answer>", 1.0, 1.0),
    ("num-plus", NUM, "<answer>+3</answer>", "<answer>3</answer>", 1.0, 1.0),
    ("num-underscore", NUM, "<answer>1_000</answer>", "<answer>1000</answer>", 1.0, 1.0),
    ("num-negative", NUM, "<answer>-2</answer>", "<answer>-2</answer>", 1.0, 1.0),
    ("num-wrong", NUM, "<answer>4</answer>", "<answer>3</answer>", 0.0, 0.0),
    ("num-word", NUM, "<answer>three</answer>", "<answer>3</answer>", 0.0, 0.0),
    ("num-with-unit", NUM, "<answer>3 apples</answer>", "<answer>3</answer>", 0.0, 0.0),
    ("num-inf", NUM, "<answer>inf</answer>", "<answer>inf</answer>", 1.0, 1.0),
    ("num-nan", NUM, "<answer>nan</answer>", "<answer>nan</answer>", 0.0, 0.0),
    ("num-bare", NUM, "3", "<answer>3</answer>", 0.0, 1.0),
    ("num-gt-spaced", NUM, "<answer>3</answer>", "<answer> 3 </answer>", 1.0, 1.0),
    # --- OCR: 1 - word-level WER (case- and punctuation-sensitive); no rule at evaluation
    ("ocr-exact", OCR, "<answer>stop here</answer>", "<answer>stop here</answer>", 1.0, 0.0),
    ("ocr-case", OCR, "<answer>STOP here</answer>", "<answer>stop here</answer>", 0.5, 0.0),
    (
        "ocr-insertion",
        OCR,
        "<answer>stop here now</answer>",
        "<answer>stop here</answer>",
        0.5,
        0.0,
    ),
    ("ocr-punct", OCR, "<answer>Stop, here</answer>", "<answer>Stop here</answer>", 0.5, 0.0),
    ("ocr-empty-pred", OCR, "<answer></answer>", "<answer>stop here</answer>", 0.0, 0.0),
    ("ocr-clipped", OCR, "<answer>a b c d</answer>", "<answer>x</answer>", 0.0, 0.0),
    ("ocr-both-empty", OCR, "<answer></answer>", "<answer></answer>", 1.0, 0.0),
    ("ocr-bare", OCR, "stop here", "<answer>stop here</answer>", 0.0, 0.0),
    # --- free-form: mean ROUGE-1/2/L F (stemmed); no rule at evaluation
    (
        "free-exact",
        FREE,
        "<answer>a man opens the door</answer>",
        "<answer>a man opens the door</answer>",
        1.0,
        0.0,
    ),
    # stems: ref a man open the door / hyp the man is open door: R1 4/5, R2 0, RL 3/5
    (
        "free-partial",
        FREE,
        "<answer>the man is opening doors</answer>",
        "<answer>a man opens the door</answer>",
        1.4 / 3,
        0.0,
    ),
    ("free-empty", FREE, "<answer></answer>", "<answer>a man opens the door</answer>", 0.0, 0.0),
    # --- regression: training 1 - relative error (+1e-9 quirks); evaluation MRA in float32
    ("reg-exact", REG, "<answer>10</answer>", "<answer>10</answer>", exact(10), 1.0),
    ("reg-negative", REG, "<answer>-5</answer>", "<answer>-5</answer>", exact(5), 1.0),
    (
        "reg-10pct",
        REG,
        "<answer>9</answer>",
        "<answer>10</answer>",
        1 - (1 + 1e-9) / (10 + 1e-9),
        0.9,
    ),  # float32: 0.1f < 1 - 0.9f too (t = 0.50 ... 0.90)
    (
        "reg-40pct",
        REG,
        "<answer>14</answer>",
        "<answer>10</answer>",
        1 - (4 + 1e-9) / (10 + 1e-9),
        0.2,
    ),  # rel 0.4 < 0.5, 0.45
    ("reg-far", REG, "<answer>25</answer>", "<answer>10</answer>", 0.0, 0.0),
    ("reg-zero-zero", REG, "<answer>0</answer>", "<answer>0</answer>", 0.0, 1.0),  # 1e-9 / 1e-9
    ("reg-nan", REG, "<answer>nan</answer>", "<answer>10</answer>", 1.0, 0.0),  # max(0.0, nan)
    ("reg-inf", REG, "<answer>inf</answer>", "<answer>10</answer>", 0.0, 0.0),
    ("reg-word", REG, "<answer>ten</answer>", "<answer>10</answer>", 0.0, 0.0),
    ("reg-thousands", REG, "<answer>1,000</answer>", "<answer>1000</answer>", exact(1000), 1.0),
    ("reg-bare", REG, "12", "<answer>10</answer>", 0.0, 0.6),  # rel 0.2 < 1 - t for t <= 0.75
    # --- problem types Video-R1 does not know score 0
    ("unknown-type", "counting", "<answer>3</answer>", "<answer>3</answer>", 0.0, 0.0),
]

# (id, completion, FORMAT)
FORMAT_CASES = [
    ("plain", "<think>x</think><answer>B</answer>", 1.0),
    ("newlines-between", "<think>x</think>\n\n<answer>B</answer>", 1.0),
    ("multiline", "<think>let me\nthink</think><answer>\nB\n</answer>", 1.0),
    ("empty-blocks", "<think></think><answer></answer>", 1.0),
    ("two-answers", "<think>a</think><answer>A</answer><answer>B</answer>", 1.0),
    ("leading-space", " <think>x</think><answer>B</answer>", 0.0),
    ("leading-newline", "\n<think>x</think><answer>B</answer>", 0.0),
    ("trailing-newline", "<think>x</think><answer>B</answer>\n", 0.0),
    ("answer-only", "<answer>B</answer>", 0.0),
    ("think-only", "<think>x</think>", 0.0),
    ("text-between", "<think>x</think>so<answer>B</answer>", 0.0),
    ("reversed", "<answer>B</answer><think>x</think>", 0.0),
    ("trailing-text", "<think>x</think><answer>B</answer> done", 0.0),
    ("unclosed", "<think>x</think><answer>B", 0.0),
    ("empty", "", 0.0),
]


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)
    assert len({c[0] for c in FORMAT_CASES}) == len(FORMAT_CASES)


@pytest.mark.parametrize(("pt", "completion", "solution", "train", "eval_"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_training_reward(pt, completion, solution, train, eval_):
    assert video_r1.accuracy_reward(pt, completion, solution) == pytest.approx(train, abs=1e-12)
    assert training_score(pt, completion, solution, "video_r1") == pytest.approx(train, abs=1e-12)


@pytest.mark.parametrize(("pt", "completion", "solution", "train", "eval_"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_eval_scorer(pt, completion, solution, train, eval_):
    assert video_r1.eval_reward(pt, completion, solution) == pytest.approx(eval_, abs=1e-6)
    assert eval_score(pt, completion, solution, "video_r1") == pytest.approx(eval_, abs=1e-6)


@pytest.mark.parametrize(("completion", "expected"), [c[1:] for c in FORMAT_CASES],
                         ids=[c[0] for c in FORMAT_CASES])  # fmt: skip
def test_format_reward(completion, expected):
    assert video_r1.format_reward(completion) == expected
    assert format_score(completion, "video_r1") == expected


def test_the_lenient_scorer_stays_an_option_and_differs():
    """The disagreements the audit found: lenient scores 1 where Video-R1 scores 0."""
    for pred in ["<answer>B.</answer>", "<answer>(B)</answer>", "<answer>b</answer>",
                 "<answer>B. red</answer>", "<answer>A</answer><answer>B</answer>"]:  # fmt: skip
        assert training_score(MC, pred, SB, "lenient") == 1.0
        assert training_score(MC, pred, SB, "video_r1") == 0.0
        assert eval_score(MC, pred, SB, "lenient") == 1.0
        assert eval_score(MC, pred, SB, "video_r1") == 0.0
    assert training_score(NUM, "<answer>3.0</answer>", "<answer>3</answer>", "lenient") == 1.0
    assert format_score("\n<think>x</think><answer>B</answer>\n", "lenient") == 1.0
    assert format_score("\n<think>x</think><answer>B</answer>\n", "video_r1") == 0.0
    with pytest.raises(ValueError, match="scoring"):
        training_score(MC, SB, SB, "strict")


def test_mean_relative_accuracy_matches_vsi_bench_thresholds():
    mra = video_r1.mean_relative_accuracy
    assert mra(10.0, 10.0) == 1.0
    assert mra(0.0, 0.0) == 1.0  # 0 / 1e-8
    assert mra(1.0, 0.0) == 0.0
    assert mra(10.0, 5.0) == 0.0  # relative error 1
    assert mra(7.6, 10.0) == pytest.approx(0.6)  # rel 0.24 < 1 - t for t = 0.50 ... 0.75 (6)


def test_wer_is_word_level_levenshtein():
    assert video_r1.wer("a b c", "a b c") == 0.0
    assert video_r1.wer("a b c", "a c") == pytest.approx(1 / 3)  # one deletion
    assert video_r1.wer("a b c", "a x c d") == pytest.approx(2 / 3)  # substitution + insertion
    assert video_r1.wer("", "") == 0.0


def test_docstring_examples():
    assert doctest.testmod(video_r1).failed == 0
    assert doctest.testmod(answers).failed == 0


def test_train_config_scores_like_video_r1_by_default(tmp_path):
    from typer.testing import CliRunner

    from marc.agent._cli import app
    from marc.training.config import TrainConfig, load_config

    assert TrainConfig(data="t.json", output_dir="o").scoring == "video_r1"
    old = tmp_path / "old.yaml"  # a config written before the field existed still loads
    old.write_text("method: grpo\ndata: t.json\noutput_dir: o\nthreshold: 0.5\n")
    assert load_config(old).scoring == "video_r1"
    assert load_config(old, scoring="lenient").scoring == "lenient"
    with pytest.raises(ValueError, match="scoring must be video_r1 or lenient"):
        load_config(old, scoring="exact")
    result = CliRunner().invoke(app, ["train", "grpo", "-c", str(old), "--scoring", "exact"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "must be video_r1 or lenient" in line
