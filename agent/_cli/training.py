"""``marc train grpo|sft`` and ``marc eval``: thin layers over :mod:`marc.training`.

:mod:`marc.training` (torch, the models) is imported only when one of these commands runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from marc.agent._cli.app import app, out, print_json, settings

train_app = typer.Typer(
    name="train",
    help="Train the answer model: C-GRPO (the paper's method) or the SFT baseline.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="YAML file of TrainConfig fields.", show_default=False),
]
OutputOpt = Annotated[
    str | None, typer.Option("--output-dir", help="Override output_dir (checkpoints, logs).")
]
ResumeOpt = Annotated[
    bool | None,
    typer.Option("--resume/--no-resume", help="Continue from the latest checkpoint in output_dir."),
]
StepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Override max_steps.")]
ScoringOpt = Annotated[
    str | None,
    typer.Option(
        "--scoring",
        help="Override scoring: video_r1 (Video-R1's training reward and format reward, exactly; "
        "the config default) or lenient (the archive scorer).",
        show_default=False,
    ),
]


StrictOpt = Annotated[
    bool | None,
    typer.Option(
        "--strict/--no-strict",
        help="Fail on the first invalid data record (default: skip and count them).",
        show_default=False,
    ),
]


def _check_scoring(scoring: str | None) -> None:
    if scoring is not None and scoring not in ("video_r1", "lenient"):
        raise typer.BadParameter(
            f"must be video_r1 or lenient, got {scoring!r}", param_hint="--scoring"
        )


def _train(method: str, config: Path, output_dir, resume, max_steps, scoring, strict) -> None:
    from marc.training.run import train

    _check_scoring(scoring)
    folder = train(
        method, config, output_dir=output_dir, resume=resume, max_steps=max_steps,
        scoring=scoring, strict=strict,
    )  # fmt: skip
    typer.echo(str(folder))


@train_app.command("grpo")
def grpo(
    config: ConfigOpt,
    output_dir: OutputOpt = None,
    resume: ResumeOpt = None,
    max_steps: StepsOpt = None,
    scoring: ScoringOpt = None,
    strict: StrictOpt = None,
) -> None:
    """Train with C-GRPO: G rollouts on compressed one-frame input, the compression reward,
    clipped ratio and k3 KL to the reference. Prints the final model's folder."""
    _train("grpo", config, output_dir, resume, max_steps, scoring, strict)


@train_app.command("sft")
def sft(
    config: ConfigOpt,
    output_dir: OutputOpt = None,
    resume: ResumeOpt = None,
    max_steps: StepsOpt = None,
    scoring: ScoringOpt = None,
    strict: StrictOpt = None,
) -> None:
    """Train the SFT baseline: cross-entropy on the target answers, same data and inputs.
    Prints the final model's folder."""
    _train("sft", config, output_dir, resume, max_steps, scoring, strict)


@app.command("eval")
def eval_(
    model: Annotated[
        str, typer.Option("--model", help="Answer model: checkpoint folder, hub id, or 'tiny'.")
    ],
    data: Annotated[
        list[Path], typer.Option("--data", help="Video-R1 JSON/JSONL file (repeatable).")
    ],
    mode: Annotated[
        list[str] | None,
        typer.Option(
            "--mode", help="full, uniform or compressed (repeatable; default: all three)."
        ),
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames for full and before compression.")] = 64,
    uniform_frames: Annotated[int, typer.Option(help="Frames of the uniform baseline.")] = 16,
    fps: Annotated[
        float,
        typer.Option(
            "--fps",
            min=0,
            help="Frames per second of video read, qwen-vl-utils' rule as Video-R1 evaluates "
            "(at least 4, at most --frames / --uniform-frames); 0: always --frames.",
        ),
    ] = 2.0,
    budget: Annotated[int, typer.Option(help="Frame groups kept by the compression.")] = 1,
    retrieval: Annotated[
        bool,
        typer.Option(
            "--retrieval/--no-retrieval",
            help="Ingest each video into MARC's memory and answer from its top-3 events.",
        ),
    ] = False,
    reasoning: Annotated[
        bool,
        typer.Option(
            help="Ask for <think>/<answer> output (with --prompt marc; Video-R1's template "
            "always asks for it)."
        ),
    ] = True,
    prompt: Annotated[
        str,
        typer.Option(
            "--prompt",
            help="video_r1: Video-R1's eval_bench.py question and type templates, nothing else; "
            "marc: the archive prompt (intro, each event's file, camera and times).",
        ),
    ] = "video_r1",
    temperature: Annotated[
        float, typer.Option(min=0, help="Answer sampling temperature (0: greedy).")
    ] = 0.1,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling top-p.")] = 0.001,
    seed: Annotated[int, typer.Option(help="Seed of the sampled answers.")] = 0,
    max_new_tokens: Annotated[
        int,
        typer.Option(
            "--max-new-tokens",
            min=1,
            help="Longest answer in tokens (Video-R1's eval_bench.py: 1024).",
        ),
    ] = 1024,
    limit: Annotated[
        int | None, typer.Option(help="Evaluate the first N samples of each benchmark.")
    ] = None,
    scoring: Annotated[
        str,
        typer.Option(
            "--scoring",
            help="video_r1: Video-R1's eval_bench.py scorer, exactly (exact option letters, MRA "
            "for regression, 0 for OCR/free-form); lenient: the archive scorer.",
        ),
    ] = "video_r1",
    strict: Annotated[
        bool,
        typer.Option(help="Fail on the first invalid record (default: skip and count them)."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print only JSON to stdout.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the JSON report to this file.")
    ] = None,
) -> None:
    """Evaluate an answer model on Video-R1-format benchmark files (the paper's Table 1 layout).

    Exit code 1 when some samples failed (missing media: listed on stderr, scored 0).
    """
    from marc.training.evaluate import evaluate
    from marc.training.inputs import MODES

    _check_scoring(scoring)
    if prompt not in ("video_r1", "marc"):
        raise typer.BadParameter(f"must be video_r1 or marc, got {prompt!r}", param_hint="--prompt")
    if not 0 < top_p <= 1:
        raise typer.BadParameter(f"must be in (0, 1], got {top_p}", param_hint="--top-p")
    report = evaluate(
        model, data, settings=settings(), modes=mode or MODES, frames=frames,
        uniform_frames=uniform_frames, budget=budget, retrieval=retrieval, reasoning=reasoning,
        max_new_tokens=max_new_tokens, limit=limit, progress=not json_out, scoring=scoring,
        sample_fps=fps, prompt=prompt, temperature=temperature, top_p=top_p, seed=seed,
        strict=strict,
    )  # fmt: skip
    data_json = report.to_json()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data_json, indent=2, ensure_ascii=False) + "\n")
    if json_out:
        print_json(data_json)
    else:
        out.print(report.table())
    raise typer.Exit(1 if report.failures else 0)
