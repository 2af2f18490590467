"""MARC's training: the C-GRPO distillation of the paper (arXiv 2510.07915), its SFT baseline and
evaluation.

One file per concept:

- :mod:`.data`: the Video-R1 format (loader, validation, the 5 K random subset, question text).
- :mod:`.answers`: answer matching per problem type and the format reward, in two modes:
  ``video_r1`` (:mod:`.video_r1`: Video-R1's training reward, evaluation scorer, format reward
  and prompt templates, exactly) and ``lenient`` (for archive questions).
- :mod:`.rewards`: the C-GRPO reward and GRPO's group advantages.
- :mod:`.teacher_cache`: the teacher's 64-frame rollouts and accuracy, computed once per prompt.
- :mod:`.inputs`: a sample's full / uniform / compressed visual input, through the answer path.
- :mod:`.policy`: rollouts and completion log-probs on precomputed visual rows.
- :mod:`.grpo`, :mod:`.sft`, :mod:`.trainer`: the trainers and what they share.
- :mod:`.config`: the YAML-backed training configuration; :mod:`.run`: one run from a config
  file (``marc train``).
- :mod:`.evaluate`: the paper's table (``marc eval``); the miniature's synthetic task is
  ``bench/synthetic.py``, a benchmark generator outside the package.

Names load on first use (see :mod:`marc.memory.core.lazy`).
"""

from marc.memory.core.lazy import exports

_EXPORTS = {
    "TrainConfig": "marc.training.config",
    "load_config": "marc.training.config",
    "GRPOTrainer": "marc.training.grpo",
    "SFTTrainer": "marc.training.sft",
    "train": "marc.training.run",
    "evaluate": "marc.training.evaluate",
    "EvalReport": "marc.training.evaluate",
    "InputBuilder": "marc.training.inputs",
    "load_dataset": "marc.training.data",
    "score": "marc.training.answers",
    "eval_score": "marc.training.answers",
    "training_score": "marc.training.answers",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
