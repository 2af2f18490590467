"""The Memory-Aware Temporal Compression layer of MARC (arXiv 2510.07915): retrieved events in,
``budget`` token groups out.

A *frame* here is one temporal token group of the vision encoder: ``P`` tokens of width ``D``
(for Qwen2.5-VL, the merged patch tokens of one temporal patch of 2 video frames). Each retrieved
event is a tensor ``[T_e, P, D]`` in time order, and the events come in the order the caller wants
them kept (usually time order). Two groups are compared patch by patch::

    sim(a, b) = mean_p  <a_p, b_p> / max(|a_p| |b_p|, 1e-8)        a, b: [P, D]

and merged with the paper's formula ``H = (H_a + H_b) / 2`` (``mode="weighted"`` averages by the
number of frames each side holds instead; not the paper's, offered for callers who want every frame
to count equally).

- **Stage 1, inside each event** (short-range temporal coherence): repeatedly merge the most similar
  adjacent pair of groups of one event whose merged span covers at most ``window`` frames, until the
  event is down to ``ceil(ratio * T_e)`` groups or no pair of it qualifies. The candidates of all
  events compete in one ranking; since no pair spans two events, the order only matters when the
  budget is reached during stage 1, which ends the stage (so the budget is never undershot).
- **Stage 2, across events**: over all groups of all events in the given order, repeatedly merge the
  most similar adjacent pair (no window limit, event boundaries may be crossed) until ``budget``
  groups remain.

Ties go to the lowest index. Events with no frames are refused (``ValueError``): an empty event
has nothing to contribute and would make the provenance ambiguous, so callers drop it first. When
the budget is at least the total number of frames nothing is merged and the tokens are the input,
concatenated.

Cost: the adjacent similarities are computed once (one batched pass per event), then each merge
changes only the similarities of the merged group with its two neighbours, so a merge step is a
constant number of tensor ops on ``[P, D]`` tensors and one device-to-host read (the argmax).
Merges are out of place, so gradients flow from the output tokens to the input tokens (the choice
of pairs is discrete and made without autograd).

>>> import torch
>>> a, b = torch.ones(1, 2, 4), -torch.ones(1, 2, 4)
>>> out = compress([torch.cat([a, a, b])], budget=2)  # frames 0 and 1 are identical
>>> out.groups
[[(0, 0), (0, 1)], [(0, 2)]]
>>> out.tokens.shape, out.sizes
(torch.Size([2, 2, 4]), [2, 1])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_RATIO",
    "DEFAULT_WINDOW",
    "EPS",
    "Compressed",
    "MergeMode",
    "compress",
    "stage1_target",
]

#: Groups kept by default: one frame's worth of tokens, the paper's student setting (64 frames of
#: the teacher compressed to the tokens of 1).
DEFAULT_BUDGET = 1
#: Our default, not the paper's (which gives no number we can cite). Stage 1 may merge at most 4
#: consecutive groups of one event. Qwen2.5-VL samples video at 2 fps and packs 2 frames into one
#: temporal group, so a group is ~1 s of footage and a window spans ~4 s. Within one event (a cut
#: or a change of activity starts a new one) a fixed surveillance camera or a dashcam at moderate
#: speed shows near-duplicate content over a few seconds; a longer window would let stage 1
#: average a person crossing the frame into a blur before stage 2 has seen the other events.
DEFAULT_WINDOW = 4
#: Our default, not the paper's. Stage 1 takes each event down to ceil(0.5 * T_e) groups: it
#: removes the redundant half, and since a window of 4 could reach ceil(T_e / 4), which pairs
#: merge is decided by similarity, not forced by the window. Reducing further is left to stage 2,
#: which ranks all events together and so spends the budget where the events differ.
DEFAULT_RATIO = 0.5
#: The cosine similarity's ``eps``: a zero token has similarity 0 with everything.
EPS = 1e-8

#: ``"mean"``: ``H = (H_a + H_b) / 2`` (the paper); ``"weighted"``: ``(n_a H_a + n_b H_b) /
#: (n_a + n_b)`` with ``n`` the frames each side holds.
MergeMode = Literal["mean", "weighted"]

#: A frame's provenance: (index of its event in ``events``, index of the frame in that event).
Frame = tuple[int, int]


@dataclass(frozen=True)
class Compressed:
    """What :func:`compress` returns.

    Attributes:
        tokens: ``[N, P, D]`` merged token groups, in time order, in the input's dtype and device.
        groups: for each of the ``N`` groups, the ``(event_index, frame_index)`` pairs it was merged
            from, in time order. Every input frame appears exactly once, groups are contiguous.
        stage1: the groups as they were after stage 1 (for debugging): none spans two events or
            more than ``window`` frames; every group of ``groups`` is a run of these.
    """

    tokens: torch.Tensor
    groups: list[list[Frame]]
    stage1: list[list[Frame]]

    @property
    def sizes(self) -> list[int]:
        """Frames merged into each group: ``[len(g) for g in groups]``."""
        return [len(g) for g in self.groups]


def stage1_target(frames: int, ratio: float) -> int:
    """Groups stage 1 takes an event of ``frames`` frames down to: ``ceil(ratio * frames)``.

    The product is rounded to 9 decimals first, so float noise does not add a group
    (``0.28 * 25`` is ``7.000000000000001``); at least 1.

    >>> stage1_target(25, 0.28), stage1_target(3, 0.5), stage1_target(5, 1e-12)
    (7, 2, 1)
    """
    return max(1, math.ceil(round(ratio * frames, 9)))


def _similarity(
    a: torch.Tensor, norm_a: torch.Tensor, b: torch.Tensor, norm_b: torch.Tensor
) -> torch.Tensor:
    """Mean patch-aligned cosine similarity of groups ``a`` and ``b``.

    Args:
        a: ``[..., P, D]`` tokens.
        norm_a: ``[..., P]`` their L2 norms.
        b: ``[..., P, D]`` tokens.
        norm_b: ``[..., P]`` their L2 norms.

    Returns:
        ``[...]`` similarities.
    """
    dots = (a * b).sum(-1)  # [..., P]
    return (dots / (norm_a * norm_b).clamp_min(EPS)).mean(-1)  # [...]


def _validate(
    events: Sequence[torch.Tensor], budget: int, window: int, ratio: float, mode: str
) -> None:
    """Raise ``ValueError`` naming the first argument of :func:`compress` that is unusable."""
    for name, value in (("budget", budget), ("window", window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ValueError(
            f"ratio must be a number in (0, 1] (the share of each event's frames stage 1 keeps),"
            f" got {ratio!r}"
        )
    if mode not in ("mean", "weighted"):
        raise ValueError(f"mode must be 'mean' or 'weighted', got {mode!r}")
    if len(events) == 0:
        raise ValueError("compress() needs at least one event, got none")
    first = events[0]
    for e, x in enumerate(events):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"event {e} is a {type(x).__name__}, not a torch.Tensor")
        if x.dim() != 3:
            raise ValueError(
                f"event {e} has shape {tuple(x.shape)}; each event must be 3-D [T, P, D]"
                " (frames, tokens per frame, width): pass a sequence with one tensor per event"
            )
        if not x.dtype.is_floating_point:
            raise ValueError(f"event {e} has dtype {x.dtype}; tokens must be floating point")
        if x.shape[0] == 0:
            raise ValueError(
                f"event {e} has no frames (shape {tuple(x.shape)}); drop empty events first"
            )
        if x.shape[1:] != first.shape[1:]:
            raise ValueError(
                f"event {e} has P={x.shape[1]} tokens of width D={x.shape[2]} per frame but event"
                f" 0 has P={first.shape[1]}, D={first.shape[2]}; all events must come from one"
                " vision encoder at one resolution"
            )
        if x.dtype != first.dtype or x.device != first.device:
            raise ValueError(
                f"event {e} is {x.dtype} on {x.device} but event 0 is {first.dtype} on"
                f" {first.device}; put all events on one device in one dtype"
            )


class _Chain:
    """The groups of all events as a doubly linked list over frame slots, with their similarities.

    Slot ``s`` is frame ``s`` of the concatenated events ``[F, P, D]``. A merged group lives in
    the slot of its first frame, so live slots stay in time order and the index of a slot among
    the live ones is the group's index. ``sim[s]`` is the similarity of the group in slot ``s``
    with the next live group (``-inf`` for dead slots and the last group); ``score`` is ``sim``
    restricted to the pairs stage 1 may merge, ``-inf`` elsewhere.
    """

    def __init__(
        self, xs: list[torch.Tensor], window: int, targets: list[int], mode: MergeMode
    ) -> None:
        self.window, self.targets, self.mode = window, targets, mode
        self.tok: list[torch.Tensor | None] = []  # slot -> [P, D] tokens
        self.norm: list[torch.Tensor | None] = []  # slot -> [P] token norms
        self.members: list[list[Frame]] = []  # slot -> frames merged into it
        self.event: list[int] = []  # slot -> its event
        self.span: list[tuple[int, int]] = []  # event -> its slots [start, stop)
        self.count = [x.shape[0] for x in xs]  # event -> live groups
        with torch.no_grad():
            norms = [torch.linalg.vector_norm(x, dim=-1) for x in xs]  # E x [T_e, P]
            sims = []
            for e, (x, n) in enumerate(zip(xs, norms, strict=True)):
                sims.append(_similarity(x[:-1], n[:-1], x[1:], n[1:]))  # [T_e - 1]
                if e + 1 < len(xs):  # the pair across the boundary with the next event
                    sims.append(_similarity(x[-1], n[-1], xs[e + 1][0], norms[e + 1][0])[None])
            sims.append(xs[-1].new_full((1,), -math.inf))  # the last group has no next
            self.sim = torch.cat(sims)  # [F]
        for e, (x, n) in enumerate(zip(xs, norms, strict=True)):
            self.span.append((len(self.tok), len(self.tok) + x.shape[0]))
            for f in range(x.shape[0]):
                self.tok.append(x[f])
                self.norm.append(n[f])
                self.members.append([(e, f)])
                self.event.append(e)
        frames = len(self.tok)
        self.alive = frames
        self.prev = list(range(-1, frames - 1))  # -1: none
        self.next = list(range(1, frames + 1))  # frames: none
        # Stage 1 candidates: pairs inside one event, span 2 <= window, event above its target.
        self.open = {
            s
            for e, (start, stop) in enumerate(self.span)
            if window >= 2 and self.count[e] > targets[e]
            for s in range(start, stop - 1)
        }
        allowed = torch.zeros(frames, dtype=torch.bool)
        allowed[sorted(self.open)] = True
        self.score = self.sim.masked_fill(~allowed.to(self.sim.device), -math.inf)  # [F]

    def groups(self) -> list[list[Frame]]:
        """The frames of each live group, in time order."""
        out, s = [], 0  # slot 0 is always live: a merge keeps the left slot
        while s < len(self.tok):
            out.append(list(self.members[s]))
            s = self.next[s]
        return out

    def tokens(self) -> torch.Tensor:
        """``[N, P, D]`` tokens of the live groups, in time order."""
        out, s = [], 0
        while s < len(self.tok):
            out.append(self.tok[s])
            s = self.next[s]
        return torch.stack(out)

    def merge(self, i: int, stage1: bool) -> None:
        """Merge the group in slot ``i`` with the next one; update the two affected similarities."""
        j = self.next[i]
        p, k = self.prev[i], self.next[j]
        n_i, n_j = len(self.members[i]), len(self.members[j])
        # One new [P, D] tensor per merge (in-place division, no temporary).
        if self.mode == "mean":
            h = torch.add(self.tok[i], self.tok[j]).div_(2)  # the paper's H = (H_a + H_b) / 2
        else:
            h = torch.mul(self.tok[i], n_i).add_(self.tok[j], alpha=n_j).div_(n_i + n_j)
        self.tok[i], self.tok[j], self.norm[j] = h, None, None
        self.members[i] += self.members[j]
        self.next[i] = k
        if k < len(self.tok):
            self.prev[k] = i
        self.alive -= 1
        e = self.event[i]
        self.count[e] -= 1

        with torch.no_grad():
            self.norm[i] = torch.linalg.vector_norm(h, dim=-1)  # [P]
            self.sim[j] = -math.inf
            self.score[j] = -math.inf
            self.open.discard(j)
            # Only the pairs (p, i) and (i, k) changed: every other similarity still holds.
            for left, right in ((p, i), (i, k)):
                if left < 0:
                    continue
                if right >= len(self.tok):
                    self.sim[left] = -math.inf
                    self.score[left] = -math.inf
                    self.open.discard(left)
                    continue
                sim = _similarity(
                    self.tok[left], self.norm[left], self.tok[right], self.norm[right]
                )
                self.sim[left] = sim
                if not stage1:
                    continue
                span = len(self.members[left]) + len(self.members[right])
                if self.event[left] == self.event[right] == e and span <= self.window:
                    self.score[left] = sim
                    self.open.add(left)
                else:
                    self.score[left] = -math.inf
                    self.open.discard(left)
            if stage1 and self.count[e] <= self.targets[e]:  # event e is done with stage 1
                start, stop = self.span[e]
                self.score[start:stop] = -math.inf
                self.open.difference_update(range(start, stop))


def compress(
    events: Sequence[torch.Tensor],
    *,
    budget: int = DEFAULT_BUDGET,
    window: int = DEFAULT_WINDOW,
    ratio: float = DEFAULT_RATIO,
    mode: MergeMode = "mean",
) -> Compressed:
    """Compress the token groups of retrieved events to ``budget`` groups (see the module doc).

    Args:
        events: one ``[T_e, P, D]`` tensor per event (``T_e >= 1``), each in time order; all of one
            floating dtype, one device and the same ``P`` and ``D``.
        budget: groups to keep (``N = min(budget, sum T_e)``).
        window: most frames a stage-1 merge may span; 1 turns stage 1 off.
        ratio: stage 1 stops at ``ceil(ratio * T_e)`` groups per event; 1 turns stage 1 off.
        mode: ``"mean"`` (the paper's ``(H_a + H_b) / 2``) or ``"weighted"`` (by frames held).

    Returns:
        The merged tokens ``[N, P, D]`` in the input's dtype and device, with their provenance.
        Similarities and merges are computed in float32 for float16/bfloat16 input (float64 input
        stays float64), then cast back.

    Raises:
        ValueError: no events, an event that is not a 3-D floating tensor or has no frames, events
            that differ in ``P``, ``D``, dtype or device, ``budget`` or ``window`` < 1, ``ratio``
            outside (0, 1], or an unknown ``mode``.
    """
    _validate(events, budget, window, ratio, mode)
    frames = sum(x.shape[0] for x in events)
    if budget >= frames:  # nothing to merge
        singles = [[(e, f)] for e, x in enumerate(events) for f in range(x.shape[0])]
        return Compressed(torch.cat(list(events)), singles, [list(g) for g in singles])

    dtype = events[0].dtype
    work = torch.promote_types(dtype, torch.float32)  # float32, or float64 for float64 input
    xs = [x.to(work) for x in events]  # E x [T_e, P, D]
    targets = [stage1_target(x.shape[0], ratio) for x in xs]
    chain = _Chain(xs, window, targets, mode)

    # Stage 1: merges inside events, within the window, down to each event's target.
    while chain.alive > budget and chain.open:
        i = int(chain.score.argmax())  # first maximum: ties go to the lowest index
        assert i in chain.open, f"stage 1 picked slot {i}, which is no candidate (NaN tokens?)"
        chain.merge(i, stage1=True)
    stage1 = chain.groups()

    # Stage 2: merges across all groups of all events, down to the budget.
    while chain.alive > budget:
        i = int(chain.sim.argmax())
        chain.merge(i, stage1=False)
    return Compressed(chain.tokens().to(dtype), chain.groups(), stage1)
