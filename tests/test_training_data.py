"""Video-R1 data loading: validation, path resolution, benchmarks, the 5K mixed subset, prompts."""

from __future__ import annotations

import doctest
import json
from collections import Counter
from pathlib import Path

import pytest

from marc.memory.core.errors import MarcError
from marc.training import data
from marc.training.data import (
    PROBLEM_TYPES,
    DataError,
    Sample,
    benchmark_name,
    load_dataset,
    load_dataset_report,
    missing_media,
    mixed_subset,
    question_text,
    write_dataset,
)


def record(i: int = 1, **changes) -> dict:
    r = {
        "problem_id": i,
        "problem": f"What colour is car {i}?",
        "data_type": "video",
        "problem_type": "multiple choice",
        "options": ["A. red", "B. blue"],
        "process": "<think>It looks blue.</think>",
        "solution": "<answer>B</answer>",
        "path": f"./Evaluation/MVBench/{i}.mp4",
        "data_source": "MVBench",
    }
    r.update(changes)
    return {k: v for k, v in r.items() if v is not ...}


def test_docstring_examples():
    assert doctest.testmod(data).failed == 0


def test_load_json_list(tmp_path):
    path = write_dataset(tmp_path / "eval_mvbench.json", [record(1), record(2, data_type="image")])
    samples = load_dataset(path)
    assert [s.problem_id for s in samples] == ["1", "2"]
    s = samples[0]
    assert s.problem == "What colour is car 1?"
    assert s.options == ("A. red", "B. blue")
    assert s.answer == "B"
    assert s.process == "<think>It looks blue.</think>"
    assert s.data_source == "MVBench"
    assert s.benchmark == "MVBench"
    # relative to the JSON file's folder, resolved
    assert s.path == (tmp_path / "Evaluation" / "MVBench" / "1.mp4").resolve()
    assert s.path.is_absolute()
    assert samples[1].data_type == "image"


def test_load_jsonl_with_root_and_optional_fields(tmp_path):
    lines = [
        record(1, process=..., data_source=..., options=..., problem_type="numerical"),
        record(2, problem_type="free-form", options=[], solution="<answer> a blue car </answer>"),
        record(3, path="/abs/video.mp4", problem_type="OCR", options=None),
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    samples = load_dataset(path, root=tmp_path / "media")
    assert [s.problem_type for s in samples] == ["numerical", "free-form", "OCR"]
    assert samples[0].path == (tmp_path / "media" / "Evaluation/MVBench/1.mp4").resolve()
    assert samples[0].options == () and samples[0].process == "" and samples[0].data_source == ""
    assert samples[1].answer == "a blue car"
    assert samples[2].path == Path("/abs/video.mp4")
    assert samples[0].benchmark == "train"


@pytest.mark.parametrize(
    ("index", "bad", "message"),
    [
        (1, record(solution=...), "missing 'solution'"),
        (2, record(problem_type="essay"), "problem_type 'essay' is not one of"),
        (1, record(solution="B"), "solution has no <answer>…</answer>"),
        (2, record(options=[]), "multiple choice record has no options"),
        (1, record(data_type="audio"), "data_type 'audio'"),
        (1, record(options="A. red"), "'options' must be a list of strings"),
        (1, record(problem=""), "'problem' must be a non-empty string"),
        (1, record(problem_id=True), "problem_id"),
        (2, ["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_bad_record_names_file_and_index(tmp_path, index, bad, message):
    records = [record(0), record(1), record(2)]
    records[index] = bad
    path = write_dataset(tmp_path / "train.json", records)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert str(info.value).startswith(f"{path}: record {index}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.index == index
    assert isinstance(info.value, ValueError) and isinstance(info.value, MarcError)


def test_lenient_load_skips_and_reports(tmp_path):
    records = [record(0), record(1, solution="B"), record(2), record(3, problem_type="essay")]
    path = write_dataset(tmp_path / "train.json", records)
    assert [s.problem_id for s in load_dataset(path, strict=False)] == ["0", "2"]
    samples, problems = load_dataset_report(path)
    assert [s.problem_id for s in samples] == ["0", "2"]
    assert problems == [
        f"{path}: record 1: solution has no <answer>…</answer>",
        f"{path}: record 3: problem_type 'essay' is not one of "
        + ", ".join(repr(t) for t in PROBLEM_TYPES),
    ]


def test_unreadable_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(DataError, match="broken.json: invalid JSON"):
        load_dataset(broken)
    jsonl = tmp_path / "broken.jsonl"
    jsonl.write_text(json.dumps(record()) + "\n{oops\n")
    with pytest.raises(DataError, match="line 2: invalid JSON"):
        load_dataset_report(jsonl)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "absent.json")


def test_missing_media(tmp_path):
    (tmp_path / "Evaluation" / "MVBench").mkdir(parents=True)
    (tmp_path / "Evaluation" / "MVBench" / "1.mp4").write_bytes(b"\0")
    samples = load_dataset(write_dataset(tmp_path / "x.json", [record(1), record(2)]))
    assert [s.problem_id for s in missing_media(samples)] == ["2"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("eval_mvbench.json", "MVBench"),
        ("eval_tempcompass.json", "TempCompass"),
        ("eval_videomme.json", "VideoMME"),
        ("/data/Evaluation/eval_videommmu.json", "VideoMMMU"),
        ("eval_vsibench.json", "VSI-Bench"),
        ("eval_mmvu.jsonl", "MMVU"),
        ("Video-R1-260k.json", "Video-R1-260k"),
    ],
)
def test_benchmark_name(name, expected):
    assert benchmark_name(name) == expected


def test_sample_key_and_record_round_trip(tmp_path):
    path = write_dataset(tmp_path / "d.json", [record(1), record(2)])
    a, b = load_dataset(path)
    assert len(a.key()) == 64 and a.key() == load_dataset(path)[0].key()
    assert a.key() != b.key()
    # the id, source and chain of thought are not part of the question
    assert Sample(**{**a.__dict__, "problem_id": "x", "process": ""}).key() == a.key()
    assert Sample(**{**a.__dict__, "solution": "<answer>A</answer>"}).key() != a.key()
    assert a.to_record(root=tmp_path) == record(1) | {"problem_id": "1"}
    again = write_dataset(tmp_path / "copy" / "d.json", [s.to_record() for s in (a, b)])
    assert load_dataset(again)[0].path == a.path  # absolute paths survive


def sample(i: int, problem_type: str, data_type: str = "video") -> Sample:
    return Sample(str(i), "q", problem_type, (), "<answer>1</answer>", Path(f"/{i}.mp4"), data_type)


def test_mixed_subset_proportions_and_determinism():
    pool = (
        [sample(i, "multiple choice") for i in range(500)]
        + [sample(i, "numerical") for i in range(500, 800)]
        + [sample(i, "OCR") for i in range(800, 900)]
        + [sample(i, "free-form") for i in range(900, 970)]
        + [sample(i, "regression") for i in range(970, 1000)]
    )
    subset = mixed_subset(pool, 100, seed=3)
    assert len(subset) == 100
    assert Counter(s.problem_type for s in subset) == {
        "multiple choice": 50,
        "numerical": 30,
        "OCR": 10,
        "free-form": 7,
        "regression": 3,
    }
    assert subset == mixed_subset(pool, 100, seed=3)
    assert subset != mixed_subset(pool, 100, seed=4)
    ids = [int(s.problem_id) for s in subset]
    assert ids == sorted(ids) and len(set(ids)) == 100  # input order, no repeats


def test_mixed_subset_largest_remainder():
    # 7 numerical, 2 OCR, 1 free-form, n = 4: exact shares 2.8, 0.8, 0.4
    # floors 2, 0, 0; the two left go to the largest remainders 0.8 (OCR) and 0.8 (numerical)
    pool = [sample(i, "numerical") for i in range(7)] + [sample(7, "OCR"), sample(8, "OCR")]
    pool.append(sample(9, "free-form"))
    counts = Counter(s.problem_type for s in mixed_subset(pool, 4))
    assert counts == {"numerical": 3, "OCR": 1}
    by_data = mixed_subset(pool[:6] + [sample(10, "OCR", "image")] * 4, 5, by="data_type")
    assert Counter(s.data_type for s in by_data) == {"video": 3, "image": 2}


def test_mixed_subset_edges():
    pool = [sample(i, "numerical") for i in range(5)]
    assert mixed_subset(pool, 10) == pool
    assert mixed_subset(pool, 5) == pool
    assert mixed_subset(pool, 0) == []
    with pytest.raises(ValueError, match="n must be"):
        mixed_subset(pool, -1)
    with pytest.raises(ValueError, match="not a Sample field"):
        mixed_subset(pool, 2, by="colour")


def test_question_text_per_type():
    mc = Sample("1", "Which car?", "multiple choice", ("A. red", "B. blue"), "<answer>B</answer>",
                Path("/v.mp4"), "video")  # fmt: skip
    assert question_text(mc) == (
        "Which car?\nOptions:\nA. red\nB. blue\n"
        "Please provide only the single option letter (e.g., A, B, C, D, etc.) within the "
        "<answer> </answer> tags."
    )
    num = Sample("2", "How many cars?", "numerical", (), "<answer>3</answer>", Path("/v"), "video")
    assert question_text(num) == (
        "How many cars?\nPlease provide the numerical value (e.g., 42 or 3.14) within the "
        "<answer> </answer> tags."
    )
    reg = Sample(**{**num.__dict__, "problem_type": "regression"})
    assert question_text(reg) == question_text(num)
    ocr = Sample(**{**num.__dict__, "problem_type": "OCR"})
    assert question_text(ocr).endswith(
        "Please transcribe text from the image/video clearly and provide your text answer within "
        "the <answer> </answer> tags."
    )
    free = Sample(**{**num.__dict__, "problem_type": "free-form"})
    assert question_text(free) == (
        "How many cars?\nPlease provide your text answer within the <answer> </answer> tags."
    )
    for text in map(question_text, (mc, num, ocr, free)):
        assert "<think>" not in text


def test_write_dataset_creates_folders_and_writes_a_list(tmp_path):
    path = write_dataset(tmp_path / "a" / "b" / "out.json", [record(1)])
    assert json.loads(path.read_text()) == [record(1)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]  # no temp file left


def test_load_samples_skips_and_counts_unless_strict(tmp_path):
    """One bad record does not abort loading (marc train / marc eval default)."""
    from marc.training.data import load_samples, summarize_problems

    records = [record(i) for i in range(6)]
    records[2] = record(2, solution="B")
    records[4] = record(4, solution="C")
    records[5] = record(5, problem_type="essay")
    path = write_dataset(tmp_path / "train.json", records)
    samples, problems = load_samples(path)
    assert [s.problem_id for s in samples] == ["0", "1", "3"] and len(problems) == 3
    line = summarize_problems(problems)
    assert line.startswith("skipped 3 records: 2 solution has no <answer>…</answer> (first: "
                           "record 2), 1 problem_type 'essay'")  # fmt: skip
    with pytest.raises(DataError, match=r"record 2: solution has no"):
        load_samples(path, strict=True)
    none = write_dataset(tmp_path / "none.json", [record(0, solution="B")])
    with pytest.raises(DataError, match=r"no valid record \(1 bad; first: .*record 0"):
        load_samples(none)


def test_random_subset_is_uniform_seeded_and_ordered():
    from marc.training.data import random_subset

    pool = [sample(i, "multiple choice") for i in range(900)] + [
        sample(i, "OCR") for i in range(900, 1000)
    ]
    subset = random_subset(pool, 100, seed=3)
    assert len(subset) == 100 and subset == random_subset(pool, 100, seed=3)
    assert subset != random_subset(pool, 100, seed=4)
    ids = [int(s.problem_id) for s in subset]
    assert ids == sorted(ids) and len(set(ids)) == 100
    # not stratified: the share of a type varies with the draw (stratified: exactly 10 each time)
    shares = {sum(s.problem_type == "OCR" for s in random_subset(pool, 100, seed=k))
              for k in range(20)}  # fmt: skip
    assert len(shares) > 1
    assert {Counter(s.problem_type for s in mixed_subset(pool, 100, seed=k))["OCR"]
            for k in range(5)} == {10}  # fmt: skip
    assert random_subset(pool, 5000) == pool
