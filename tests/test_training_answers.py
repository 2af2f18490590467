"""Video-R1 answer matching: one rule per problem type, checked against hand-computed values."""

from __future__ import annotations

import doctest

import pytest

from marc.training import answers
from marc.training.answers import (
    extract_answer,
    find_answer,
    format_reward,
    is_correct,
    parse_number,
    score,
)


def test_docstring_examples():
    assert doctest.testmod(answers).failed == 0


def test_extract_answer_takes_the_last_tag_else_the_text():
    assert extract_answer("<think>maybe <answer>A</answer></think><answer> C\n</answer>") == "C"
    assert extract_answer("<answer>\nline one\nline two\n</answer>") == "line one\nline two"
    assert extract_answer("   just text  ") == "just text"
    assert find_answer("no tags") is None
    assert find_answer("<answer></answer>") == ""


@pytest.mark.parametrize(
    "pred", ["B", "B.", "(B)", "b", "B. red", " ( B ) ", "B)", "B: red", "<answer>B</answer>"]
)
def test_multiple_choice_letter_normalisation(pred):
    assert score("multiple choice", pred, "<answer>B</answer>") == 1.0
    assert score("multiple choice", pred, "B. red") == 1.0  # the solution is normalised as well


@pytest.mark.parametrize("pred", ["C", "Because", "", "BB", "<answer>A</answer>"])
def test_multiple_choice_wrong_or_unreadable(pred):
    assert score("multiple choice", pred, "<answer>B</answer>") == 0.0


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ("3.14159", "3.14", 1.0),  # agree to 2 decimals
        ("3.15", "3.14", 0.0),
        ("1,000", "1000", 1.0),  # thousands separators
        ("1 000", "1,000", 1.0),
        ("-2", "-2.0", 1.0),
        ("42", "43", 0.0),
        ("forty-two", "42", 0.0),  # unparseable
        ("42", "n/a", 0.0),
        ("inf", "inf", 0.0),  # not a finite number
    ],
)
def test_numerical(pred, gt, expected):
    completion = f"<think>…</think><answer>{pred}</answer>"
    assert score("numerical", completion, f"<answer>{gt}</answer>") == expected


def test_parse_number():
    assert parse_number(" 1,234.5 ") == 1234.5
    assert parse_number("1e3") == 1000.0
    assert parse_number("") is None
    assert parse_number("12 apples") is None


def test_ocr_is_one_minus_word_error_rate():
    # reference 4 words; "word" substitutes "world", "bar" is deleted: WER = 2 / 4
    got = score("OCR", "<answer>hello word foo</answer>", "<answer>hello world foo bar</answer>")
    assert got == pytest.approx(0.5)
    # case and whitespace do not count
    assert score("OCR", "HELLO   World\n", "hello world") == 1.0
    # more errors than reference words: clipped at 0
    assert score("OCR", "a b c d e f", "x") == 0.0
    assert score("OCR", "", "stop") == 0.0
    assert score("OCR", "", "<answer> </answer>") == 1.0


def test_free_form_is_mean_rouge_f():
    from rouge_score import rouge_scorer  # seconds to import: not at collection

    gt, pred = "the cat sat on the mat", "the cat lay on the mat"
    # by hand: ROUGE-1 F = 5/6 (the, the, cat, on, mat), ROUGE-2 F = 3/5 (the cat, on the, the
    # mat of 5 bigrams each), ROUGE-L F = 5/6 (LCS "the cat on the mat"); mean = 34/45
    expected = (5 / 6 + 3 / 5 + 5 / 6) / 3
    got = score("free-form", f"<answer>{pred}</answer>", f"<answer>{gt}</answer>")
    assert got == pytest.approx(34 / 45)
    assert got == pytest.approx(expected)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    direct = scorer.score(gt, pred)
    assert got == pytest.approx(
        (direct["rouge1"].fmeasure + direct["rouge2"].fmeasure + direct["rougeL"].fmeasure) / 3
    )
    assert score("free-form", gt, gt) == pytest.approx(1.0)
    assert score("free-form", "dogs bark", gt) == 0.0
    assert score("free-form", "", gt) == 0.0


def test_regression_is_one_minus_relative_error():
    assert score("regression", "<answer>8</answer>", "<answer>10</answer>") == pytest.approx(0.8)
    assert score("regression", "12.5", "10") == pytest.approx(0.75)
    assert score("regression", "25", "10") == 0.0  # relative error capped at 1
    assert score("regression", "0", "0") == 1.0
    assert score("regression", "1", "0") == 0.0
    assert score("regression", "about ten", "10") == 0.0


def test_unknown_problem_type_is_named():
    with pytest.raises(ValueError, match="'essay'"):
        score("essay", "a", "b")
    with pytest.raises(ValueError, match="'essay'"):
        is_correct("essay", "a", "b")


def test_is_correct_exact_and_graded():
    assert is_correct("numerical", "<answer>3.14159</answer>", "<answer>3.14</answer>")
    assert not is_correct("numerical", "<answer>3.2</answer>", "<answer>3.14</answer>")
    assert is_correct("multiple choice", "(a)", "<answer>A</answer>")
    # graded: score >= threshold
    assert is_correct("regression", "5", "10")  # score 0.5
    assert not is_correct("regression", "4", "10")  # score 0.4
    assert not is_correct("regression", "5", "10", threshold=0.6)
    assert is_correct("OCR", "hello word foo", "hello world foo bar")  # 0.5
    assert not is_correct("OCR", "hello", "hello world foo bar")  # 0.25
    assert is_correct("free-form", "the cat lay on the mat", "the cat sat on the mat")  # 0.756
    assert not is_correct(
        "free-form", "the cat lay on the mat", "the cat sat on the mat", threshold=0.8
    )


@pytest.mark.parametrize(
    "text",
    [
        "<think>x</think><answer>B</answer>",
        "\n<think>\nlet me think\n</think>\n\n<answer>B</answer>\n",
        "<think></think> <answer></answer>",
    ],
)
def test_format_reward_accepts_think_then_answer(text):
    assert format_reward(text) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "<answer>B</answer>",
        "<think>x</think>",
        "<think>x</think>B",
        "<answer>B</answer><think>x</think>",
        "so <think>x</think><answer>B</answer>",
        "<think>x</think><answer>B</answer> done",
        "<think>x</think><answer>B",
        "",
    ],
)
def test_format_reward_rejects_anything_else(text):
    assert format_reward(text) == 0.0
