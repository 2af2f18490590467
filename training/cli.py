"""``marc train grpo|sft --config FILE``: a thin layer over :mod:`marc.training.grpo` / ``.sft``.

Errors (a missing config, an unknown key, a missing data file, a model that cannot load) are one
line on stderr, ``error: ...``, and exit code 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["run", "train_app"]

train_app = typer.Typer(
    name="train",
    help="Train the answer model: C-GRPO (the paper's method) or the SFT baseline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def run(
    method: str,
    config_file: Path,
    *,
    output_dir: str | None = None,
    resume: bool | None = None,
    max_steps: int | None = None,
) -> Path:
    """Load the config, train, and return the final (or last saved) model folder.

    Raises:
        ValueError: a bad config or data file (one line naming it).
        MarcError: a model or media file that cannot be read.
    """
    from marc.training.config import load_config

    config = load_config(
        config_file, method=method, output_dir=output_dir, resume=resume, max_steps=max_steps
    )
    if not Path(config.data).is_file():
        raise ValueError(f"{config_file}: data file {config.data} does not exist; set data:")
    if method == "grpo":
        from marc.training.grpo import GRPOTrainer

        trainer = GRPOTrainer(config)
        try:
            return trainer.train()
        finally:
            trainer.close()
    from marc.training.sft import SFTTrainer

    return SFTTrainer(config).train()


def _command(method: str, config: Path, output_dir, resume, max_steps, debug: bool) -> None:
    from marc.memory.errors import MarcError

    try:
        folder = run(method, config, output_dir=output_dir, resume=resume, max_steps=max_steps)
    except (ValueError, OSError, MarcError) as e:
        if debug:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(folder)


@train_app.command("grpo")
def grpo(
    config: ConfigOpt,
    output_dir: OutputOpt = None,
    resume: ResumeOpt = None,
    max_steps: StepsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train with C-GRPO: G rollouts on compressed one-frame input, the compression reward,
    clipped ratio and k3 KL to the reference. Prints the final model's folder."""
    _command("grpo", config, output_dir, resume, max_steps, debug)


@train_app.command("sft")
def sft(
    config: ConfigOpt,
    output_dir: OutputOpt = None,
    resume: ResumeOpt = None,
    max_steps: StepsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train the SFT baseline: cross-entropy on the target answers, same data and inputs.
    Prints the final model's folder."""
    _command("sft", config, output_dir, resume, max_steps, debug)
