"""One training run from a YAML config: what ``marc train grpo|sft --config FILE`` calls."""

from __future__ import annotations

from pathlib import Path

__all__ = ["train"]


def train(
    method: str,
    config_file: Path,
    *,
    output_dir: str | None = None,
    resume: bool | None = None,
    max_steps: int | None = None,
    scoring: str | None = None,
    strict: bool | None = None,
) -> Path:
    """Load the config, train, and return the final (or last saved) model folder.

    Raises:
        ValueError: a bad config or data file (one line naming it).
        MarcError: a model or media file that cannot be read.
    """
    from marc.training.config import load_config

    config = load_config(
        config_file, method=method, output_dir=output_dir, resume=resume, max_steps=max_steps,
        scoring=scoring, strict=strict,
    )  # fmt: skip
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
