"""Evaluate an answer model on Video-R1-format benchmarks, in the paper's settings and layout.

Each setting is one input mode of :class:`marc.training.inputs.InputBuilder` ("full" 64 frames,
"uniform" 16 frames, "compressed" 64 frames to one frame's worth of tokens), optionally after
retrieval: the sample's video is ingested into MARC's memory and the question's top-k events of
that video (the Visual Memory Retriever, ``k = 3``) replace the whole video. Answers are scored
with :func:`marc.training.answers.eval_score`: by default (``scoring="video_r1"``) exactly as
Video-R1's ``eval_bench.py`` ``reward_fn`` scores them (exact option strings, MRA for regression,
0 for OCR/free-form; see :mod:`marc.training.video_r1`), ``"lenient"`` on request. A sample is
correct when it scores 1.0 (``eval_bench.py``). A cell of the table is the mean score in %, as in
the paper's Table 1, and the JSON also reports Video-R1's ``mean_acc`` (every type but
regression) and ``mean_mra`` (regression) separately::

    Setting               Tokens  MVBench  TempCompass  VideoMME  VideoMMMU  VSI-Bench  MMVU  Mean

A sample whose media file is missing or unreadable is reported (one line) and scores 0: it counts
in the denominator, as a benchmark run with missing videos should not look better than it is.

>>> report = evaluate("tiny", [Path("eval_mvbench.json")], frames=8)  # doctest: +SKIP
>>> print(report.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from marc.memory.core.config import AnswerModelConfig, CompressionConfig, MemoryConfig, as_config
from marc.memory.core.errors import MediaError, one_line
from marc.training.answers import Scoring, check_scoring, eval_score
from marc.training.data import (
    BENCHMARKS,
    Sample,
    benchmark_name,
    load_samples,
    summarize_problems,
)
from marc.training.inputs import MODES

__all__ = ["PAPER_BENCHMARKS", "EvalReport", "SampleResult", "evaluate", "label"]

#: The paper's column order (Video-R1's evaluation sets); other benchmarks follow in given order.
PAPER_BENCHMARKS: tuple[str, ...] = tuple(BENCHMARKS.values())


def label(
    mode: str,
    *,
    frames: int,
    uniform_frames: int,
    budget: int,
    retrieval: bool,
    fps: float = 0.0,
) -> str:
    """The table's row name of a setting (with ``fps``, the frame counts are upper bounds).

    >>> label("compressed", frames=64, uniform_frames=16, budget=1, retrieval=True)
    'compressed (1 frame) + retrieval'
    >>> label("full", frames=64, uniform_frames=16, budget=1, retrieval=False, fps=2.0)
    'full (2 fps, <= 64 frames)'
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    n = {"full": frames, "uniform": uniform_frames, "compressed": budget}[mode]
    if fps > 0 and mode != "compressed":
        text = f"{mode} ({fps:g} fps, <= {n} frames)"
    else:
        text = f"{mode} ({n} frame{'' if n == 1 else 's'})"
    return text + (" + retrieval" if retrieval else "")


@dataclass
class SampleResult:
    """One sample answered in one setting.

    Attributes:
        setting: the row label (:func:`label`).
        benchmark: the column (:func:`marc.training.data.benchmark_name` of its file).
        id: the record's ``problem_id``.
        prediction: the whole generated text.
        reference: the reference answer (inside ``<answer>`` of the solution).
        score: :func:`marc.training.answers.eval_score`, in [0, 1]; 0 when it failed.
        visual_tokens: visual tokens the language model read.
        events: retrieved events used (retrieval only), their ids.
        error: why the sample could not be answered (missing media, ...), else ``None``.
        problem_type: the record's problem type (regression goes to ``mean_mra``).
        correct: ``score == 1.0`` (``eval_bench.py``'s ``correct``).
    """

    setting: str
    benchmark: str
    id: str
    prediction: str
    reference: str
    score: float
    visual_tokens: int
    events: list[str] = field(default_factory=list)
    error: str | None = None
    problem_type: str = ""
    correct: bool = False


@dataclass
class EvalReport:
    """The results of :func:`evaluate`: per-sample records and the table made from them."""

    model: str
    settings: list[str]
    benchmarks: list[str]
    results: list[SampleResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line per failed sample (and setting)
    config: dict[str, Any] = field(default_factory=dict)
    data_errors: list[str] = field(default_factory=list)  # one line per skipped record

    def cell(self, setting: str, benchmark: str) -> list[SampleResult]:
        return [r for r in self.results if r.setting == setting and r.benchmark == benchmark]

    def count(self, setting: str, benchmark: str) -> int:
        """Samples evaluated in a cell, failed ones included."""
        return len(self.cell(setting, benchmark))

    def failed(self, setting: str, benchmark: str) -> int:
        return sum(r.error is not None for r in self.cell(setting, benchmark))

    def accuracy(self, setting: str, benchmark: str) -> float | None:
        """Mean score in % (failed samples score 0); ``None`` for an empty cell."""
        cell = self.cell(setting, benchmark)
        return 100.0 * sum(r.score for r in cell) / len(cell) if cell else None

    def mean_acc(self, setting: str, benchmark: str) -> float | None:
        """Video-R1's ``mean_acc`` in %: the mean score of a cell's non-regression samples."""
        cell = [r.score for r in self.cell(setting, benchmark) if r.problem_type != "regression"]
        return 100.0 * sum(cell) / len(cell) if cell else None

    def mean_mra(self, setting: str, benchmark: str) -> float | None:
        """Video-R1's ``mean_mra`` in %: the mean score (MRA) of a cell's regression samples."""
        cell = [r.score for r in self.cell(setting, benchmark) if r.problem_type == "regression"]
        return 100.0 * sum(cell) / len(cell) if cell else None

    def mean(self, setting: str) -> float | None:
        """The paper's Mean: the mean of the benchmarks' accuracies (not of all samples)."""
        accs = [a for b in self.benchmarks if (a := self.accuracy(setting, b)) is not None]
        return sum(accs) / len(accs) if accs else None

    def visual_tokens(self, setting: str) -> float | None:
        """Mean visual tokens per answered sample of a setting."""
        done = [r.visual_tokens for r in self.results if r.setting == setting and r.error is None]
        return sum(done) / len(done) if done else None

    def to_json(self) -> dict[str, Any]:
        """The ``marc eval --json`` object: configuration, the table's numbers, every sample."""
        return {
            "model": self.model,
            "config": self.config,
            "settings": self.settings,
            "benchmarks": self.benchmarks,
            "accuracy": {
                s: {**{b: self.accuracy(s, b) for b in self.benchmarks}, "Mean": self.mean(s)}
                for s in self.settings
            },
            "mean_acc": {
                s: {b: self.mean_acc(s, b) for b in self.benchmarks} for s in self.settings
            },
            "mean_mra": {
                s: {b: self.mean_mra(s, b) for b in self.benchmarks} for s in self.settings
            },
            "counts": {s: {b: self.count(s, b) for b in self.benchmarks} for s in self.settings},
            "failed": {s: {b: self.failed(s, b) for b in self.benchmarks} for s in self.settings},
            "visual_tokens": {s: self.visual_tokens(s) for s in self.settings},
            "failures": self.failures,
            "data_errors": self.data_errors,
            "samples": [asdict(r) for r in self.results],
        }

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["Setting", "Tokens", *self.benchmarks, "Mean"]
        rows = []
        for s in self.settings:
            tokens = self.visual_tokens(s)
            cells = [self.accuracy(s, b) for b in self.benchmarks] + [self.mean(s)]
            rows.append(
                [s, "-" if tokens is None else f"{tokens:.0f}"]
                + ["-" if c is None else f"{c:.1f}" for c in cells]
            )
        return header, rows

    def table(self) -> Table:
        """The paper's layout as a rich table: settings as rows, benchmarks then Mean as columns
        (accuracy in %), with the mean visual tokens per sample."""
        header, rows = self._rows()
        n = sum(self.count(self.settings[0], b) for b in self.benchmarks) if self.settings else 0
        table = Table(title=f"{self.model}: accuracy (%) on {n} samples per setting")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        return table

    def to_markdown(self) -> str:
        """The table as GitHub markdown."""
        header, rows = self._rows()
        lines = [header, ["---"] + ["---:"] * (len(header) - 1), *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


# ----------------------------------------------------------------------------- evaluation
def _load_data(
    data: Sequence[Path], limit: int | None, strict: bool = False, problems: list | None = None
) -> dict[str, list[Sample]]:
    """Samples per benchmark (files of one benchmark are joined), the paper's ones first; bad
    records are skipped and appended to ``problems`` (``strict``: the first one raises)."""
    found: dict[str, list[Sample]] = {}
    for path in data:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such data file")
        samples, bad = load_samples(path, strict=strict)
        found.setdefault(benchmark_name(path), []).extend(samples)
        if problems is not None:
            problems.extend(bad)
    order = [b for b in PAPER_BENCHMARKS if b in found] + [
        b for b in found if b not in PAPER_BENCHMARKS
    ]
    return {b: found[b][:limit] if limit is not None else found[b] for b in order}


def _load_builder(config: AnswerModelConfig, compression: CompressionConfig):
    """The answer model (transformers, in this process) wrapped in an :class:`InputBuilder`."""
    from marc.compression.vlm.loading import load_model, load_processor, model_dir
    from marc.training.inputs import InputBuilder

    folder = model_dir(config)
    model, processor = load_model(folder, config), load_processor(folder)
    return InputBuilder.for_model(model, processor, config, compression)


class _Memory:
    """Retrieval for evaluation: each sample's video ingested once, its top-k events searched."""

    def __init__(self, config: MemoryConfig, k: int) -> None:
        from marc.memory.archive import Archive

        self.archive, self.k = Archive(config), k

    def ingest(self, samples: Sequence[Sample], err: Console | None) -> dict[str, str]:
        """Ingest the videos not stored yet; returns ``{path: problem}`` of those that failed."""
        paths = sorted({s.path for s in samples if s.data_type == "video" and s.path.is_file()})
        stored = self.archive.catalog.done_paths()
        todo = [p for p in paths if str(p.absolute()) not in stored]
        if not todo:
            return {}
        if err is not None:
            err.print(f"ingesting {len(todo)} videos into {self.archive.config.home}")
        report = self.archive.ingest(todo)
        return {f.path: f.error for f in report.failed}

    def search(self, sample: Sample) -> list[Any]:
        return self.archive.search(sample.problem, self.k, videos=[sample.path])

    def close(self) -> None:
        self.archive.close()


def evaluate(
    model: str,
    data: Sequence[Path],
    *,
    settings: Any = None,
    modes: Sequence[str] = MODES,
    frames: int = 64,
    uniform_frames: int = 16,
    budget: int = 1,
    retrieval: bool = False,
    reasoning: bool = True,
    max_new_tokens: int | None = 1024,
    limit: int | None = None,
    k: int = 3,
    progress: bool = True,
    scoring: Scoring = "video_r1",
    sample_fps: float | None = 2.0,
    prompt: str = "video_r1",
    temperature: float = 0.1,
    top_p: float = 0.001,
    seed: int = 0,
    strict: bool = False,
) -> EvalReport:
    """Answer every sample of ``data`` in every mode and score it.

    Args:
        model: the answer model: a checkpoint folder, a hub id, or ``"tiny"``.
        data: Video-R1 JSON/JSONL files; a file's name picks its column (``eval_mvbench.json`` is
            MVBench, others are named by their stem).
        settings: where the answer model runs and reads (an :class:`AnswerModelConfig`: device,
            dtype, pixels, cache; its ``model`` is replaced by ``model``), the compression's
            window and ratio and, for ``retrieval``, the archive (a :class:`MemoryConfig`):
            taken from a ``Settings`` (the CLI's) or an ``AgentConfig``; ``None``: the configs'
            defaults (never the environment).
        modes: input modes, rows of the table in this order.
        frames: frames sampled for "full" and before compression (the paper's 64).
        uniform_frames: frames of the "uniform" baseline (16).
        budget: groups kept by the compression (1: one frame's worth of tokens).
        retrieval: answer from the top-``k`` events of the sample's video instead of all of it.
        reasoning: ask for ``<think>``/``<answer>`` output (``prompt="marc"``; Video-R1's
            template always asks for it).
        max_new_tokens: longest answer in tokens (Video-R1's ``eval_bench.py``: 1,024);
            ``None``: the answer config's ``max_new_tokens``.
        limit: evaluate the first ``limit`` samples of each benchmark.
        progress: show a progress bar (and failures as they happen) on stderr.
        scoring: ``"video_r1"`` (Video-R1's ``eval_bench.py`` scorer, exactly) or
            ``"lenient"`` (:func:`marc.training.answers.score`).
        sample_fps: frames per second of video read, qwen-vl-utils' rule as Video-R1 evaluates
            (2: at least 4 frames, at most ``frames`` / ``uniform_frames``, so short clips get
            fewer); 0: always ``frames``; ``None``: the answer config's ``sample_fps``.
        prompt: ``"video_r1"`` (``eval_bench.py``'s question and type templates, the visual
            input and nothing else) or ``"marc"`` (the archive prompt: an intro and each
            event's file, camera and times; the camera is the video's folder name, which can
            leak labels of datasets stored in class-named folders).
        temperature, top_p: sampling of the answers (Video-R1's ``eval_bench.py``: 0.1 and
            0.001, near-greedy); temperature 0 is greedy.
        seed: sampled answers are seeded from it and the sample (reproducible runs).
        strict: the first invalid record raises; default: invalid records are skipped, counted
            on stderr and listed in the report's ``data_errors``.

    Raises:
        FileNotFoundError: a data file does not exist.
        DataError: a data file or record is not valid Video-R1 data.
        ValueError: an unknown mode, or a bad number.
        ModelError, StoreError: the model or (retrieval) MARC's memory cannot be used.
    """
    check_scoring(scoring)
    from marc.training.inputs import PROMPTS

    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and top_p in (0, 1]; got {temperature}, {top_p}")
    modes = list(dict.fromkeys(modes))
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; one of {', '.join(MODES)}")
    if not modes:
        raise ValueError("no mode to evaluate")
    if min(frames, uniform_frames) < 2 or budget < 1 or (limit is not None and limit < 0):
        raise ValueError(
            "need frames >= 2, uniform_frames >= 2, budget >= 1 and limit >= 0; got "
            f"{frames}, {uniform_frames}, {budget}, {limit}"
        )
    data_errors: list[str] = []
    benches = _load_data(data, limit, strict, data_errors)  # data errors before the model loads
    if data_errors and progress:
        Console(stderr=True).print(summarize_problems(data_errors), highlight=False)
    update: dict[str, Any] = {"model": model}
    if sample_fps is not None:
        if not sample_fps >= 0:
            raise ValueError(
                f"sample_fps must be >= 0 (0: always {frames} frames), got {sample_fps}"
            )
        update["sample_fps"] = sample_fps
    if max_new_tokens is not None:
        update["max_new_tokens"] = max_new_tokens
    answer_model = dataclasses.replace(as_config(settings, AnswerModelConfig), **update)
    compression = as_config(settings, CompressionConfig)
    labels = {
        m: label(m, frames=frames, uniform_frames=uniform_frames, budget=budget,
                 retrieval=retrieval, fps=answer_model.sample_fps)
        for m in modes
    }  # fmt: skip
    report = EvalReport(
        data_errors=data_errors,
        model=model,
        settings=list(labels.values()),
        benchmarks=list(benches),
        config={
            "data": [str(p) for p in data], "modes": modes, "frames": frames,
            "uniform_frames": uniform_frames, "budget": budget, "retrieval": retrieval,
            "k": k if retrieval else None, "reasoning": reasoning or prompt == "video_r1",
            "limit": limit, "prompt": prompt, "temperature": temperature, "top_p": top_p,
            "seed": seed,
            "max_new_tokens": answer_model.max_new_tokens, "scoring": scoring,
            "sample_fps": answer_model.sample_fps, "min_frames": answer_model.min_frames,
            "frame_pixels": answer_model.frame_pixels,
            "min_frame_pixels": answer_model.min_frame_pixels,
        },
    )  # fmt: skip
    err = Console(stderr=True) if progress else None
    options = dict(
        frames=frames, uniform_frames=uniform_frames, budget=budget, reasoning=reasoning,
        prompt=prompt, stage="eval",
    )  # fmt: skip
    sampling = dict(temperature=temperature, top_p=top_p, seed=seed)
    builder, memory = _load_builder(answer_model, compression), None
    try:
        if retrieval:
            memory = _Memory(as_config(settings, MemoryConfig), k)
        _Evaluator(report, builder, memory, labels, options, err, scoring, sampling).run(benches)
    finally:
        builder.backend.close()
        if memory is not None:
            memory.close()
    return report


@dataclass
class _Evaluator:
    """Answers and scores samples into ``report``: one row per mode in ``labels``."""

    report: EvalReport
    builder: Any  # InputBuilder
    memory: _Memory | None
    labels: dict[str, str]  # mode -> setting label
    options: dict[str, Any]  # InputBuilder.prepare's frames, uniform_frames, budget, reasoning
    err: Console | None  # where progress and failures go; None: quiet
    scoring: Scoring = "video_r1"
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, seed
    failed_ingest: dict[str, str] = field(default_factory=dict)  # path -> why (retrieval)

    def run(self, benches: dict[str, list[Sample]]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        everything = [s for samples in benches.values() for s in samples]
        self.failed_ingest = self.memory.ingest(everything, self.err) if self.memory else {}
        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=self.err or Console(stderr=True), disable=self.err is None, transient=True,
        )  # fmt: skip
        with bar:
            task = bar.add_task("evaluating", total=len(everything) * len(self.labels))
            for bench, samples in benches.items():
                bar.update(task, description=bench)
                for sample in samples:
                    self.sample(bench, sample, lambda: bar.advance(task))

    def sample(self, bench: str, sample: Sample, advance) -> None:
        """Every setting of one sample (its events are retrieved once, shared by the modes)."""
        problem, hits = self.inputs(sample)
        if problem is not None:
            self.fail(bench, sample, list(self.labels.values()), problem)
        for mode, setting in self.labels.items():
            if problem is None:
                try:
                    prepared = self.builder.prepare(sample, mode, hits=hits, **self.options)
                    answer = self._answer(bench, sample, setting, prepared)
                except MediaError as e:  # present but unreadable
                    self.fail(bench, sample, [setting], one_line(e))
                else:
                    value = eval_score(
                        sample.problem_type, answer.raw, sample.solution, self.scoring
                    )
                    self.report.results.append(SampleResult(
                        setting, bench, sample.problem_id, answer.raw, sample.answer, value,
                        prepared.visual_tokens, [h.id for h in hits or []],
                        problem_type=sample.problem_type, correct=value == 1.0,
                    ))  # fmt: skip
            advance()

    def _answer(self, bench: str, sample: Sample, setting: str, prepared: Any) -> Any:
        """One answer, seeded by the run's seed and the sample (sampling is reproducible)."""
        import zlib

        import torch

        temperature = self.sampling.get("temperature", 0.0)
        top_p = self.sampling.get("top_p", 1.0)
        key = f"{self.sampling.get('seed', 0)}|{bench}|{sample.problem_id}|{setting}"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(key.encode()))
            return self.builder.answer(prepared, temperature=temperature, top_p=top_p)

    def inputs(self, sample: Sample) -> tuple[str | None, list[Any] | None]:
        """``(problem, hits)``: why the sample cannot be answered (or ``None``), and its
        retrieved events (``None``: the whole video)."""
        if not sample.path.is_file():
            return f"{sample.path}: no such file", None
        if self.memory is None or sample.data_type != "video":
            return None, None
        key = str(sample.path.absolute())
        if key in self.failed_ingest:
            return f"{sample.path}: could not be ingested ({self.failed_ingest[key]})", None
        hits = self.memory.search(sample)
        if not hits:
            return f"{sample.path}: no stored events to retrieve", None
        return None, hits

    def fail(self, bench: str, sample: Sample, settings: list[str], problem: str) -> None:
        """One line for the failure; the sample scores 0 in ``settings``."""
        line = f"{bench} {sample.problem_id}: {problem}"
        self.report.failures.append(line)
        if self.err is not None:
            self.err.print(f"[red]failed:[/] {line}", highlight=False, soft_wrap=True)
        for setting in settings:
            self.report.results.append(
                SampleResult(setting, bench, sample.problem_id, "", sample.answer, 0.0, 0,
                             error=problem, problem_type=sample.problem_type)
            )  # fmt: skip
