"""MARC's training: the C-GRPO distillation of the paper (arXiv 2510.07915), its SFT baseline and
evaluation.

One file per concept:

- :mod:`.data`: the Video-R1 format (loader, validation, the 5 K mixed subset, question text).
- :mod:`.answers`: Video-R1 answer matching per problem type and the format reward.
- :mod:`.rewards`: the C-GRPO reward and GRPO's group advantages.
- :mod:`.teacher_cache`: the teacher's 64-frame rollouts and accuracy, computed once per prompt.
- :mod:`.inputs`: a sample's full / uniform / compressed visual input, through the answer path.
- :mod:`.policy`: rollouts and completion log-probs on precomputed visual rows.
- :mod:`.grpo`, :mod:`.sft`, :mod:`.trainer`: the trainers and what they share.
- :mod:`.config`: the YAML-backed training configuration; :mod:`.cli`: ``marc train``.
- :mod:`.evaluate`: ``marc eval``, the paper's table (the miniature's synthetic task is
  ``bench/synthetic.py``).
"""
