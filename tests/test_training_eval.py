"""Evaluation over Video-R1-format files, end to end with the tiny answer model on synthetic clips.

The tiny model is random, so accuracies mean nothing; the table's structure, the counts, the
visual tokens per setting, missing-media reporting, retrieval and the CLI are what is checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import make_task
from typer.testing import CliRunner

from marc.agent._cli import app
from marc.memory.archive import Archive
from marc.memory.core.settings import Settings
from marc.training.data import write_dataset
from marc.training.evaluate import EvalReport, SampleResult, evaluate, label

# every frame of the synthetic 2 s clips (not qwen-vl-utils' 2 fps), at their own 56 px
FAST = dict(frames=8, uniform_frames=4, progress=False, sample_fps=0, max_new_tokens=4)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict[str, Path]:
    """Two benchmark files of two synthetic clips each (plus a missing clip in MVBench)."""
    root = tmp_path_factory.mktemp("eval")
    _, test = make_task(root / "task", n_train=0, n_test=4)
    records = json.loads(test.read_text())
    for r in records:
        r["path"] = "task/" + r["path"]
    gone = {**records[0], "problem_id": 99, "path": "task/videos/gone.mp4"}
    return {
        "tempcompass": write_dataset(root / "eval_tempcompass.json", records[2:]),
        "mvbench": write_dataset(root / "eval_mvbench.json", [*records[:2], gone]),
        "one": write_dataset(root / "eval_mmvu.json", records[:1]),
    }


@pytest.fixture
def settings(marc_home) -> Settings:
    return Settings(vlm_max_new_tokens=4, vlm_min_frame_pixels=3136)


@pytest.mark.slow
def test_modes_table_and_missing_media(bench, settings):
    report = evaluate("tiny", [bench["tempcompass"], bench["mvbench"]], settings=settings, **FAST)
    assert report.benchmarks == ["MVBench", "TempCompass"]  # the paper's order, not the given one
    assert report.settings == ["full (8 frames)", "uniform (4 frames)", "compressed (1 frame)"]
    for s in report.settings:
        assert (report.count(s, "MVBench"), report.count(s, "TempCompass")) == (3, 2)
        assert (report.failed(s, "MVBench"), report.failed(s, "TempCompass")) == (1, 0)
        accs = [report.accuracy(s, b) for b in report.benchmarks]
        assert all(0 <= a <= 100 for a in accs) and report.mean(s) == pytest.approx(sum(accs) / 2)
    full, uniform, compressed = (report.visual_tokens(s) for s in report.settings)
    assert 0 < compressed < uniform < full
    assert full == 4 * compressed  # 8 frames = 4 groups of one frame's worth each

    (line,) = report.failures
    assert line.startswith("MVBench 99: ") and "gone.mp4: no such file" in line
    gone = [r for r in report.results if r.id == "99"]
    assert len(gone) == 3 and all(r.score == 0 and r.error for r in gone)

    data = report.to_json()
    assert set(data["accuracy"]["compressed (1 frame)"]) == {"MVBench", "TempCompass", "Mean"}
    assert data["counts"]["full (8 frames)"] == {"MVBench": 3, "TempCompass": 2}
    assert len(data["samples"]) == 15 and {"id", "prediction", "score", "visual_tokens"} <= set(
        data["samples"][0]
    )
    md = report.to_markdown().splitlines()
    assert md[0] == "| Setting | Tokens | MVBench | TempCompass | Mean |" and len(md) == 5
    assert [c.header for c in report.table().columns][2:] == ["MVBench", "TempCompass", "Mean"]


def test_report_arithmetic():
    r = EvalReport("m", ["s"], ["MVBench", "MMVU"])
    for bench, score in [("MVBench", 1.0), ("MVBench", 0.0), ("MMVU", 1.0)]:
        r.results.append(SampleResult("s", bench, "1", "<answer>A</answer>", "A", score, 4))
    assert r.accuracy("s", "MVBench") == 50.0 and r.accuracy("s", "MMVU") == 100.0
    assert r.mean("s") == 75.0  # mean over benchmarks, not over samples
    assert r.accuracy("s", "VideoMME") is None
    # Video-R1 reports regression (MRA) apart from the rest (eval_bench.py's final_acc)
    r.results.append(SampleResult("s", "MMVU", "2", "", "10", 0.6, 4, problem_type="regression"))
    assert r.mean_acc("s", "MMVU") == 100.0 and r.mean_mra("s", "MMVU") == pytest.approx(60.0)
    assert r.accuracy("s", "MMVU") == pytest.approx(80.0)
    assert label("uniform", frames=64, uniform_frames=16, budget=2, retrieval=False) == (
        "uniform (16 frames)"
    )
    assert label("compressed", frames=64, uniform_frames=16, budget=2, retrieval=True) == (
        "compressed (2 frames) + retrieval"
    )


@pytest.mark.slow
def test_retrieval_ingests_once_and_uses_events_of_the_sample_video(bench, settings, capsys):
    kw = dict(FAST, progress=True, modes=("compressed",), retrieval=True)
    report = evaluate("tiny", [bench["tempcompass"]], settings=settings, **kw)
    assert report.settings == ["compressed (1 frame) + retrieval"]
    assert "ingesting 2 videos" in capsys.readouterr().err
    with Archive(settings) as archive:
        assert archive.status()["videos"] == 2
        for r in report.results:
            (sample,) = [s for s in json.loads(bench["tempcompass"].read_text())
                         if str(s["problem_id"]) == r.id]  # fmt: skip
            video = bench["tempcompass"].parent / sample["path"]
            own = {e["id"] for e in archive.events(video)}
            assert r.error is None and r.events and set(r.events) <= own
    again = evaluate("tiny", [bench["tempcompass"]], settings=settings, **kw)
    assert "ingesting" not in capsys.readouterr().err  # already stored: nothing ingested
    assert [r.events for r in again.results] == [r.events for r in report.results]


# ------------------------------------------------------------------------------------ CLI
@pytest.fixture
def cli(marc_home, monkeypatch):
    monkeypatch.setenv("MARC_VLM_MIN_FRAME_PIXELS", "3136")  # the 56 px clips as they are
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["eval", "--max-new-tokens", "4", *map(str, args)])


def test_cli_json_and_output(cli, bench, tmp_path):
    out = tmp_path / "report.json"
    result = cli(
        "--model", "tiny", "--data", bench["one"], "--mode", "compressed", "--mode", "uniform",
        "--frames", 8, "--uniform-frames", 4, "--json", "--output", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"] == ["compressed (1 frame)", "uniform (2 fps, <= 4 frames)"]
    assert data["benchmarks"] == ["MMVU"] and data["counts"]["uniform (2 fps, <= 4 frames)"] == {
        "MMVU": 1
    }
    assert json.loads(out.read_text()) == data
    assert data["config"]["scoring"] == "video_r1"  # Video-R1's eval_bench.py scorer by default
    # ... and its protocol: its templates, reasoning, temperature 0.1, top-p 0.001, 2 fps
    c = data["config"]
    assert (c["prompt"], c["reasoning"], c["temperature"], c["top_p"]) == (
        "video_r1",
        True,
        0.1,
        0.001,
    )
    assert c["sample_fps"] == 2.0 and c["max_new_tokens"] == 4
    assert set(data["mean_acc"]["uniform (2 fps, <= 4 frames)"]) == {"MMVU"}
    assert data["mean_mra"]["uniform (2 fps, <= 4 frames)"] == {
        "MMVU": None
    }  # no regression sample


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "nowhere.json"], "error: nowhere.json: no such data file"),
        (["--data", "{one}", "--mode", "sideways"], "error: unknown mode 'sideways'"),
        (["--data", "{bad}"], "record 0: missing 'problem_type'"),
        (["--data", "{one}", "--scoring", "strict"], "must be video_r1 or lenient"),
        (["--data", "{one}", "--prompt", "archive"], "must be video_r1 or marc"),
    ],
)
def test_cli_errors_are_one_line(cli, bench, tmp_path, args, message):
    bad = write_dataset(tmp_path / "bad.json", [{"problem_id": 1, "problem": "q"}])
    args = [a.format(one=bench["one"], bad=bad) for a in args]
    result = cli("--model", "tiny", *args)
    assert result.exit_code == 2  # bad data or arguments: a usage error
    (line,) = result.stderr.strip().splitlines()
    assert message in line and "Traceback" not in result.output


def test_cli_skips_bad_records_unless_strict(cli, bench, tmp_path):
    """One bad record does not stop an evaluation; --strict makes it a usage error."""
    good = json.loads(bench["one"].read_text())[0]
    good["path"] = str(bench["one"].parent / good["path"])
    mixed = write_dataset(tmp_path / "eval_mmvu.json", [good, {"problem_id": 7, "problem": "q"}])
    args = ["--model", "tiny", "--data", mixed, "--mode", "compressed", "--fps", 0, "--frames", 8]
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"]["compressed (1 frame)"] == {"MMVU": 1}
    (line,) = data["data_errors"]
    assert line.endswith("record 1: missing 'problem_type'")
    shown = cli(*args)
    assert "skipped 1 record: 1 missing 'problem_type' (first: record 1)" in shown.stderr
    strict = cli(*args, "--strict")
    assert strict.exit_code == 2
    (err,) = strict.stderr.strip().splitlines()
    assert "record 1: missing 'problem_type'" in err
