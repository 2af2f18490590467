"""The SFT baseline: the same data and the same compressed one-frame input as C-GRPO, trained with
cross-entropy on the target completion only.

The target is the record's chain of thought and answer (``process + solution``) when the record
has a ``process`` and ``reasoning`` is on, else the answer alone (``<answer>X</answer>``), closed
with ``<|im_end|>``; the loss of a sample is the mean negative log-likelihood of its target tokens,
averaged over the step's samples. Prompt and visual tokens carry no loss. With
``student_input: full`` the same loop trains on the uncompressed frames (the miniature's teacher).
"""

from __future__ import annotations

import torch

from marc.training.data import Sample
from marc.training.policy import completion_logprobs, encode_targets
from marc.training.trainer import Trainer

__all__ = ["SFTTrainer", "sft_target"]


def sft_target(sample: Sample, *, reasoning: bool) -> str:
    """What the model is trained to write for ``sample``.

    >>> from pathlib import Path
    >>> s = Sample("1", "q", "multiple choice", ("A. x", "B. y"), "<answer>B</answer>",
    ...            Path("/v.mp4"), "video", process="<think>it is y</think>")
    >>> sft_target(s, reasoning=True), sft_target(s, reasoning=False)
    ('<think>it is y</think>\\n<answer>B</answer>', '<answer>B</answer>')
    """
    if reasoning and sample.process:
        return f"{sample.process.strip()}\n{sample.solution.strip()}"
    return sample.solution.strip()


class SFTTrainer(Trainer):
    """Cross-entropy on target completions, given the same inputs the student reads."""

    method = "sft"

    def batch_loss(self, samples: list[Sample], *, backward: bool = False) -> float:
        """Mean over ``samples`` of each target's mean token NLL (backpropagated if asked)."""
        c = self.config
        n = len(samples)
        total = 0.0
        for sample in samples:
            prompt = self.prompt(sample)
            ids, mask = encode_targets(self.tokenizer, [sft_target(sample, reasoning=c.reasoning)])
            ids, mask = ids.to(self.model.device), mask.to(self.model.device)
            with torch.set_grad_enabled(backward):
                logp = completion_logprobs(self.model, prompt, ids, mask)  # [1, T]
                loss = -logp.sum() / mask.sum()
                if backward:
                    (loss / n).backward()
            total += loss.item()
        return total / n

    def train_step(self, step: int, samples: list[Sample]) -> dict[str, float]:
        loss = self.batch_loss(samples, backward=True)
        norm = self.optimizer_update()
        return {"loss": loss, "grad_norm": norm}
