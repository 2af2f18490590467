"""Training and evaluation data in the Video-R1 format (Video-R1-260K, Video-R1-COT, eval sets).

One record is a JSON object::

    {"problem_id": 7, "problem": "What colour is the car?", "data_type": "video",
     "problem_type": "multiple choice", "options": ["A. red", "B. blue"],
     "process": "<think>...</think>", "solution": "<answer>B</answer>",
     "path": "./Evaluation/MVBench/x.mp4", "data_source": "MVBench"}

``process`` (the chain of thought of Video-R1-COT) and ``data_source`` are optional, ``options`` may
be empty except for multiple choice. A file holds a JSON list of records or one record per line
(JSONL). Media paths are relative to the file's folder unless a ``root`` is given.

:func:`load_dataset` validates every record and gives :class:`Sample` values;
:func:`mixed_subset` draws the paper's 5K mixed training subset; :func:`question_text` renders a
question the way Video-R1 prompts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marc.memory.core.errors import MarcError
from marc.training.answers import extract_answer, find_answer

__all__ = [
    "BENCHMARKS",
    "DATA_TYPES",
    "PROBLEM_TYPES",
    "TYPE_INSTRUCTIONS",
    "DataError",
    "Sample",
    "benchmark_name",
    "load_dataset",
    "load_dataset_report",
    "load_samples",
    "missing_media",
    "mixed_subset",
    "random_subset",
    "summarize_problems",
    "question_text",
    "write_dataset",
]

PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "regression")
DATA_TYPES = ("video", "image")

# Video-R1's per-type answer instruction (its TYPE_TEMPLATE), appended to every question
TYPE_INSTRUCTIONS = {
    "multiple choice": "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
    "within the <answer> </answer> tags.",
    "numerical": "Please provide the numerical value (e.g., 42 or 3.14) within the <answer> "
    "</answer> tags.",
    "OCR": "Please transcribe text from the image/video clearly and provide your text answer "
    "within the <answer> </answer> tags.",
    "free-form": "Please provide your text answer within the <answer> </answer> tags.",
    "regression": "Please provide the numerical value (e.g., 42 or 3.14) within the <answer> "
    "</answer> tags.",
}

# file stem of Video-R1's evaluation sets -> the benchmark's name in the paper
BENCHMARKS = {
    "eval_mvbench": "MVBench",
    "eval_tempcompass": "TempCompass",
    "eval_videomme": "VideoMME",
    "eval_videommmu": "VideoMMMU",
    "eval_vsibench": "VSI-Bench",
    "eval_mmvu": "MMVU",
}

_REQUIRED = ("problem_id", "problem", "problem_type", "data_type", "solution", "path")


class DataError(MarcError, ValueError):
    """A dataset file or one of its records is not valid Video-R1 data.

    The message is one line: ``"{path}: record {index}: {problem}"`` (or ``"{path}: {problem}"``
    for the file as a whole).
    """

    def __init__(self, path: object, index: int | None, problem: str) -> None:
        self.path = str(path)
        self.index = index
        self.problem = problem
        where = self.path if index is None else f"{self.path}: record {index}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Sample:
    """One validated question of a Video-R1 dataset.

    Args:
        problem_id: the record's ``problem_id`` as a string (Video-R1 stores integers).
        problem: the question text.
        problem_type: one of :data:`PROBLEM_TYPES`; picks the answer rule and instruction.
        options: the options as written, e.g. ``("A. red", "B. blue")``; empty for non-choice.
        solution: the reference answer, ``"<answer>B</answer>"``.
        path: the video or image, resolved to an absolute path (it need not exist).
        data_type: ``"video"`` or ``"image"``.
        process: the chain of thought of Video-R1-COT records, ``"<think>…</think>"``, or ``""``.
        data_source: where the record comes from (``data_source`` field), or ``""``.
        benchmark: the dataset's name (:func:`benchmark_name` of its file), or ``""``.
    """

    problem_id: str
    problem: str
    problem_type: str
    options: tuple[str, ...]
    solution: str
    path: Path
    data_type: str
    process: str = ""
    data_source: str = ""
    benchmark: str = ""

    @property
    def answer(self) -> str:
        """The reference answer: the text inside ``<answer></answer>`` of :attr:`solution`."""
        return extract_answer(self.solution)

    def key(self) -> str:
        """A stable sha256 hex digest of what defines the question, for caches.

        Covers the media path, problem, options, solution and problem type (not the id, source or
        chain of thought). The path is the absolute one, so moving the data changes the key.
        """
        payload = [str(self.path), self.problem, list(self.options), self.solution]
        payload.append(self.problem_type)
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_record(self, *, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The Video-R1 record of this sample (``benchmark`` is not a Video-R1 field).

        ``path`` is absolute, or ``"./…"`` relative to ``root`` when given.
        """
        path = str(self.path)
        if root is not None:
            path = "./" + self.path.relative_to(Path(root).resolve()).as_posix()
        record: dict[str, Any] = {
            "problem_id": self.problem_id,
            "problem": self.problem,
            "data_type": self.data_type,
            "problem_type": self.problem_type,
            "options": list(self.options),
        }
        if self.process:
            record["process"] = self.process
        record |= {"solution": self.solution, "path": path}
        if self.data_source:
            record["data_source"] = self.data_source
        return record


def benchmark_name(path: str | os.PathLike[str]) -> str:
    """The paper's name of a Video-R1 evaluation file, else the file's stem.

    >>> benchmark_name("Evaluation/eval_vsibench.json"), benchmark_name("train_5k.jsonl")
    ('VSI-Bench', 'train_5k')
    """
    stem = Path(path).stem
    return BENCHMARKS.get(stem.lower(), stem)


def _parse(record: Any, base: Path, benchmark: str) -> Sample:
    """One record as a :class:`Sample`; raises ``ValueError`` with the problem otherwise."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    for name in _REQUIRED:
        if name not in record:
            raise ValueError(f"missing {name!r}")
    pid = record["problem_id"]
    if isinstance(pid, bool) or not isinstance(pid, str | int):
        raise ValueError(f"problem_id must be a string or an integer, got {pid!r}")
    for name in ("problem", "solution", "path"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise ValueError(f"{name!r} must be a non-empty string")
    for name in ("process", "data_source"):
        if record.get(name) is not None and not isinstance(record[name], str):
            raise ValueError(f"{name!r} must be a string")
    problem_type, data_type = record["problem_type"], record["data_type"]
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(
            f"problem_type {problem_type!r} is not one of {', '.join(map(repr, PROBLEM_TYPES))}"
        )
    if data_type not in DATA_TYPES:
        raise ValueError(f"data_type {data_type!r} is not one of 'video', 'image'")
    options = record.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError("'options' must be a list of strings")
    if problem_type == "multiple choice" and not options:
        raise ValueError("multiple choice record has no options")
    answer = find_answer(record["solution"])
    if answer is None:
        raise ValueError("solution has no <answer>…</answer>")
    if not answer:
        raise ValueError("solution's <answer></answer> is empty")
    return Sample(
        problem_id=str(pid),
        problem=record["problem"],
        problem_type=problem_type,
        options=tuple(options),
        solution=record["solution"],
        path=(base / record["path"]).resolve(),
        data_type=data_type,
        process=record.get("process") or "",
        data_source=record.get("data_source") or "",
        benchmark=benchmark,
    )


def _records(path: Path) -> list[Any]:
    """The file's records: a JSON list, or one JSON value per non-blank line (JSONL)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(path, None, f"invalid JSON: {err}") from None
        return records
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(path, None, f"line {number}: invalid JSON: {err.msg}") from None
    return records


def _load(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None, strict: bool
) -> tuple[list[Sample], list[str]]:
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    benchmark = benchmark_name(path)
    samples: list[Sample] = []
    problems: list[str] = []
    for index, record in enumerate(_records(path)):
        try:
            samples.append(_parse(record, base, benchmark))
        except ValueError as err:
            error = DataError(path, index, str(err))
            if strict:
                raise error from None
            problems.append(str(error))
    return samples, problems


def load_dataset(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    strict: bool = True,
) -> list[Sample]:
    """The validated samples of a Video-R1 JSON or JSONL file.

    Media paths resolve against ``root``, or the file's folder when ``root`` is ``None``; the
    media need not exist (see :func:`missing_media`).

    Args:
        path: the ``.json`` (a list of records) or ``.jsonl`` file.
        root: the folder media paths are relative to.
        strict: raise on the first bad record; ``False`` skips bad records (use
            :func:`load_dataset_report` to see them).

    Raises:
        DataError: the file is not JSON/JSONL, or (``strict``) a record is invalid; the message
            names the file and the record's index.
        OSError: the file cannot be read.
    """
    return _load(path, root, strict)[0]


def load_dataset_report(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> tuple[list[Sample], list[str]]:
    """The valid samples of a file and one line for each record skipped, ``"{path}: record i: …"``.

    Raises:
        DataError: the file as a whole is not JSON/JSONL.
    """
    return _load(path, root, strict=False)


def load_samples(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> tuple[list[Sample], list[str]]:
    """What ``marc train`` and ``marc eval`` read: the valid samples and one line per skipped
    record (``strict``: the first bad record raises instead).

    One bad record in Video-R1-260k's 263 k does not abort the run; the skipped ones are
    counted (:func:`summarize_problems`). A file with no valid record at all is an error.

    Raises:
        DataError: the file is not JSON/JSONL, ``strict`` and a record is invalid, or no
            record is valid (the message names the first problem).
    """
    samples, problems = _load(path, root, strict)
    if problems and not samples:
        raise DataError(path, None, f"no valid record ({len(problems)} bad; first: {problems[0]})")
    return samples, problems


def summarize_problems(problems: Sequence[str]) -> str:
    """One line: how many records were skipped, by problem, most frequent first.

    >>> summarize_problems(["f: record 3: missing 'path'", "f: record 9: missing 'path'",
    ...                     "f: record 4: 'options' must be a list of strings"])
    "skipped 3 records: 2 missing 'path' (first: record 3), 1 'options' must be a list of \
strings (first: record 4)"
    """
    by: dict[str, list[str]] = {}
    for line in problems:
        head, _, problem = line.rpartition(": record ")
        index, _, what = problem.partition(": ")
        by.setdefault(what or line, []).append(index)
    parts = [
        f"{len(ix)} {what} (first: record {ix[0]})"
        for what, ix in sorted(by.items(), key=lambda kv: -len(kv[1]))
    ]
    return f"skipped {len(problems)} record{'s' * (len(problems) != 1)}: " + ", ".join(parts)


def random_subset(samples: Sequence[Sample], n: int = 5000, *, seed: int = 0) -> list[Sample]:
    """``n`` samples drawn uniformly at random (seeded), in the input's order: the paper's
    "5K mixed subset randomly sampled" from Video-R1-260k (all of them when ``n`` is larger).

    >>> pool = [Sample(str(i), "q", "numerical", (), "<answer>1</answer>", Path("/v.mp4"),
    ...                "video") for i in range(10)]
    >>> [s.problem_id for s in random_subset(pool, 3, seed=0)]
    ['0', '6', '9']
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n >= len(samples):
        return list(samples)
    chosen = random.Random(seed).sample(range(len(samples)), n)
    return [samples[i] for i in sorted(chosen)]


def missing_media(samples: Sequence[Sample]) -> list[Sample]:
    """The samples whose video or image file does not exist."""
    return [s for s in samples if not s.path.is_file()]


def mixed_subset(
    samples: Sequence[Sample], n: int = 5000, *, seed: int = 0, by: str = "problem_type"
) -> list[Sample]:
    """A subset of ``n`` samples stratified by the attribute ``by``: the paper's 5K mixed set.

    Each stratum (e.g. each problem type) gets ``n * count / len(samples)`` samples, rounded by
    the largest-remainder method (ties to the stratum name first in sorted order); the samples of
    a stratum are drawn at random with ``seed``. The result keeps the input's order. All samples
    are returned when ``n >= len(samples)``.

    >>> from pathlib import Path
    >>> pool = [Sample(str(i), "q", t, (), "<answer>1</answer>", Path("/v.mp4"), "video")
    ...         for i, t in enumerate(["numerical"] * 6 + ["OCR"] * 3 + ["free-form"])]
    >>> sorted(s.problem_type for s in mixed_subset(pool, 5))
    ['OCR', 'OCR', 'numerical', 'numerical', 'numerical']

    Raises:
        ValueError: ``n`` is negative, or ``by`` is not a :class:`Sample` attribute.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if by not in Sample.__dataclass_fields__:
        raise ValueError(
            f"by={by!r} is not a Sample field: {', '.join(Sample.__dataclass_fields__)}"
        )
    if n >= len(samples):
        return list(samples)
    strata: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        strata.setdefault(str(getattr(sample, by)), []).append(index)
    names = sorted(strata)
    exact = {name: n * len(strata[name]) / len(samples) for name in names}
    quota = {name: int(exact[name]) for name in names}
    by_remainder = sorted(names, key=lambda name: (-(exact[name] - quota[name]), name))
    for name in by_remainder[: n - sum(quota.values())]:
        quota[name] += 1
    rng = random.Random(seed)
    chosen: set[int] = set()
    for name in names:
        chosen.update(rng.sample(strata[name], quota[name]))
    return [samples[i] for i in sorted(chosen)]


def question_text(sample: Sample) -> str:
    """The question as Video-R1 asks it: problem, options, and the answer instruction of its type.

    The "think first" instruction is not included; the prompt builder adds it.

    >>> s = Sample("1", "What colour is the car?", "multiple choice", ("A. red", "B. blue"),
    ...            "<answer>B</answer>", Path("/v.mp4"), "video")
    >>> print(question_text(s))
    What colour is the car?
    Options:
    A. red
    B. blue
    Please provide only the single option letter (e.g., A, B, C, D, etc.) within the <answer> </answer> tags.
    """  # noqa: E501
    lines = [sample.problem.rstrip()]
    if sample.options:
        lines += ["Options:", *sample.options]
    lines.append(TYPE_INSTRUCTIONS[sample.problem_type])
    return "\n".join(lines)


def write_dataset(path: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> Path:
    """Write ``records`` as a JSON list to ``path`` (atomically; parent folders are created).

    Records are written as given, not validated: read the file back with :func:`load_dataset`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(list(records), f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
