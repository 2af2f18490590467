"""The Memory-Aware Temporal Compression layer against a brute-force reference.

The reference below is written separately from ``marc.compression``: plain Python floats (float64),
every adjacent similarity recomputed at every step, ties to the first maximum. ``compress`` must
produce the same groups (after each stage) and the same tokens on many random shapes, on inputs
full of exact ties, and on small cases checked by hand.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from marc.compression import DEFAULT_RATIO, DEFAULT_WINDOW, Compressed, compress
from marc.compression import temporal_compression as tc

# --------------------------------------------------------------------------------- reference


def ref_similarity(a: list[list[float]], b: list[list[float]]) -> float:
    """Mean over patches of the cosine of patch-aligned tokens (``a``, ``b``: P lists of D)."""
    total = 0.0
    for ap, bp in zip(a, b, strict=True):
        dot = sum(x * y for x, y in zip(ap, bp, strict=True))
        na = math.sqrt(sum(x * x for x in ap))
        nb = math.sqrt(sum(y * y for y in bp))
        total += dot / max(na * nb, 1e-8)
    return total / len(a)


def ref_compress(events, budget, window, ratio, mode="mean"):
    """Brute force: returns (groups, stage1 groups, tokens as nested float lists)."""
    groups = [
        {"frames": [(e, f)], "tok": x[f].tolist(), "event": e}
        for e, x in enumerate(events)
        for f in range(x.shape[0])
    ]
    left = {e: x.shape[0] for e, x in enumerate(events)}
    target = {e: max(1, math.ceil(round(ratio * x.shape[0], 9))) for e, x in enumerate(events)}

    def merge(i):
        a, b = groups[i], groups[i + 1]
        na, nb = len(a["frames"]), len(b["frames"])
        tok = []
        for pa, pb in zip(a["tok"], b["tok"], strict=True):  # patch by patch
            if mode == "mean":
                tok.append([(x + y) / 2 for x, y in zip(pa, pb, strict=True)])
            else:
                tok.append([(x * na + y * nb) / (na + nb) for x, y in zip(pa, pb, strict=True)])
        groups[i : i + 2] = [{"frames": a["frames"] + b["frames"], "tok": tok, "event": a["event"]}]

    def best(allowed):
        best_i, best_s = None, -math.inf
        for i in range(len(groups) - 1):
            if not allowed(i):
                continue
            s = ref_similarity(groups[i]["tok"], groups[i + 1]["tok"])
            if best_i is None or s > best_s:
                best_i, best_s = i, s
        return best_i

    def stage1_allowed(i):
        a, b = groups[i], groups[i + 1]
        e = a["event"]
        return (
            b["event"] == e
            and left[e] > target[e]
            and len(a["frames"]) + len(b["frames"]) <= window
        )

    while len(groups) > budget:
        i = best(stage1_allowed)
        if i is None:
            break
        left[groups[i]["event"]] -= 1
        merge(i)
    stage1 = [g["frames"] for g in groups]
    while len(groups) > budget:
        merge(best(lambda i: True))
    return [g["frames"] for g in groups], stage1, [g["tok"] for g in groups]


def assert_matches_reference(events, budget, window, ratio, mode="mean"):
    out = compress(events, budget=budget, window=window, ratio=ratio, mode=mode)
    groups, stage1, tokens = ref_compress(events, budget, window, ratio, mode)
    assert out.stage1 == stage1
    assert out.groups == groups
    expected = torch.tensor(tokens, dtype=torch.float64)
    assert torch.allclose(out.tokens, expected, rtol=1e-10, atol=1e-12)
    return out


# ------------------------------------------------------------------------------- random cases


def random_case(seed: int):
    """Events around a per-event base (so similarities vary), shapes and settings from ``seed``."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    n_events, p, d = rng.randint(1, 4), rng.randint(1, 8), rng.randint(1, 16)
    events = []
    for _ in range(n_events):
        t = rng.randint(1, 12)
        base = torch.randn(1, p, d, generator=gen, dtype=torch.float64)
        noise = rng.choice([0.05, 0.3, 1.0, 3.0])
        events.append(base + noise * torch.randn(t, p, d, generator=gen, dtype=torch.float64))
    frames = sum(x.shape[0] for x in events)
    budget = rng.randint(1, frames + 1)
    window = rng.randint(1, 6)
    ratio = rng.choice([0.1, 0.25, 1 / 3, 0.5, 0.7, 1.0, rng.uniform(0.01, 1.0)])
    mode = rng.choice(["mean", "mean", "weighted"])
    return events, budget, window, ratio, mode


@pytest.mark.parametrize("seed", range(150))
def test_matches_reference_on_random_shapes(seed):
    assert_matches_reference(*random_case(seed))


def tie_case(seed: int):
    """Frames built from a few axis-aligned unit vectors: many exactly equal similarities."""
    rng = random.Random(10_000 + seed)
    n_events, p, d = rng.randint(1, 4), rng.randint(1, 4), rng.randint(2, 6)
    bases = [v for v in torch.eye(d, dtype=torch.float64)[: rng.randint(2, 3)]]
    bases.append(-bases[0])
    same_patches = rng.random() < 0.5
    events = []
    for _ in range(n_events):
        frames = []
        for _ in range(rng.randint(1, 10)):
            if same_patches:
                frames.append(torch.stack([rng.choice(bases)] * p))
            else:
                frames.append(torch.stack([rng.choice(bases) for _ in range(p)]))
        events.append(torch.stack(frames))  # [T, P, D]
    frames = sum(x.shape[0] for x in events)
    return events, rng.randint(1, frames), rng.randint(1, 5), rng.choice([0.25, 0.5, 1.0])


@pytest.mark.parametrize("seed", range(60))
def test_matches_reference_on_exact_ties(seed):
    assert_matches_reference(*tie_case(seed))


def test_float32_input_matches_float64_reference():
    for seed in range(20):
        events, budget, window, ratio, mode = random_case(seed)
        out = compress(
            [x.float() for x in events], budget=budget, window=window, ratio=ratio, mode=mode
        )
        groups, stage1, tokens = ref_compress(events, budget, window, ratio, mode)
        assert (out.groups, out.stage1) == (groups, stage1)
        assert torch.allclose(out.tokens, torch.tensor(tokens, dtype=torch.float32), atol=1e-5)


# ------------------------------------------------------------------------- hand-checked cases

A, B, C = torch.eye(3, dtype=torch.float64)  # orthogonal unit tokens: similarity 1 or 0


def frames(*tokens: torch.Tensor) -> torch.Tensor:
    """One event of one-token frames: ``[T, 1, D]``."""
    return torch.stack(tokens)[:, None, :]


def test_identical_frames_merge_first():
    out = compress([frames(A, B, B)], budget=2)
    assert out.groups == [[(0, 0)], [(0, 1), (0, 2)]]
    assert torch.equal(out.tokens, frames(A, B))
    assert out.sizes == [1, 2]


def test_window_blocks_a_merge_in_stage_1_but_not_in_stage_2():
    # Stage 1 wants 1 group (ratio 0.1) but a second merge would span 3 frames > window 2.
    out = compress([frames(A, A, A)], budget=1, window=2, ratio=0.1)
    assert out.stage1 == [[(0, 0), (0, 1)], [(0, 2)]]
    assert out.groups == [[(0, 0), (0, 1), (0, 2)]]


def test_stage_1_stops_at_ceil_ratio_times_frames():
    # 5 identical frames, ratio 0.5: stage 1 keeps ceil(2.5) = 3 groups, lowest pairs first.
    out = compress([frames(A, A, A, A, A)], budget=1, window=2, ratio=0.5)
    assert out.stage1 == [[(0, 0), (0, 1)], [(0, 2), (0, 3)], [(0, 4)]]


def test_stage_1_target_ignores_float_noise():
    # 0.28 * 25 is 7.000000000000001 in floats: the target is 7 groups, not 8.
    assert tc.stage1_target(25, 0.28) == 7
    assert tc.stage1_target(3, 0.5) == 2
    assert tc.stage1_target(5, 1e-12) == 1
    out = compress([frames(*[A] * 25)], budget=1, window=25, ratio=0.28)
    assert len(out.stage1) == 7


def test_stage_1_never_merges_across_events_stage_2_does():
    # The most similar pair is across the boundary (B | B); stage 1 may not take it.
    out = compress([frames(A, C, B), frames(B, C)], budget=4, window=4, ratio=1.0)
    assert out.stage1 == [[(0, 0)], [(0, 1)], [(0, 2)], [(1, 0)], [(1, 1)]]
    assert out.groups == [[(0, 0)], [(0, 1)], [(0, 2), (1, 0)], [(1, 1)]]


def test_ties_go_to_the_lowest_index():
    # Stage 1: pairs (0, 1) and (2, 3) both have similarity 1.
    assert compress([frames(A, A, B, B)], budget=3, window=2).groups == [
        [(0, 0), (0, 1)],
        [(0, 2)],
        [(0, 3)],
    ]
    # Stage 1 across events: the tie between event 0 and event 1 goes to event 0.
    assert compress([frames(B, B), frames(B, B)], budget=3).groups == [
        [(0, 0), (0, 1)],
        [(1, 0)],
        [(1, 1)],
    ]
    # Stage 2: all three adjacent pairs have similarity 0.
    assert compress([frames(A, B), frames(A, B)], budget=3, ratio=1.0).groups == [
        [(0, 0), (0, 1)],
        [(1, 0)],
        [(1, 1)],
    ]


def test_merge_is_the_paper_mean_or_the_weighted_option():
    # All similarities are 1: merges go left to right, ((1 + 2) / 2 + 4) / 2 = 2.75.
    event = frames(1 * A, 2 * A, 4 * A)
    mean = compress([event], budget=1, ratio=1.0)
    assert torch.allclose(mean.tokens, frames(2.75 * A))
    weighted = compress([event], budget=1, ratio=1.0, mode="weighted")
    assert torch.allclose(weighted.tokens, frames(7 / 3 * A))


def test_similarity_is_the_mean_over_patches_and_zero_tokens_count_as_0():
    # Frame 1 matches frame 0 on 2 of 3 patches (2/3), frame 2 on 1 of 3 patches and is zero
    # elsewhere (1/3): frames 0 and 1 merge.
    x = torch.stack(
        [torch.stack([A, B, C]), torch.stack([A, B, -C]), torch.stack([A, 0 * B, 0 * C])]
    )
    out = compress([x], budget=2, ratio=1.0)
    assert out.groups == [[(0, 0), (0, 1)], [(0, 2)]]
    assert not out.tokens.isnan().any()


def test_budget_at_least_the_frames_is_the_identity():
    events = [torch.randn(3, 2, 5), torch.randn(4, 2, 5)]
    for budget in (7, 8, 100):
        out = compress(events, budget=budget)
        assert torch.equal(out.tokens, torch.cat(events))
        singles = [[(0, f)] for f in range(3)] + [[(1, f)] for f in range(4)]
        assert out.groups == out.stage1 == singles
        assert out.sizes == [1] * 7


def test_window_1_or_ratio_1_turns_stage_1_off():
    events = [torch.randn(6, 2, 4), torch.randn(5, 2, 4)]
    singles = [[(0, f)] for f in range(6)] + [[(1, f)] for f in range(5)]
    assert compress(events, budget=2, window=1).stage1 == singles
    assert compress(events, budget=2, ratio=1.0).stage1 == singles


def test_defaults():
    assert (DEFAULT_WINDOW, DEFAULT_RATIO) == (4, 0.5)
    out = compress([torch.randn(8, 3, 4), torch.randn(5, 3, 4)])
    assert out.tokens.shape == (1, 3, 4)  # budget 1: one frame's worth of tokens
    assert max(len(g) for g in out.stage1) <= 4


# ------------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("seed", range(40))
def test_invariants(seed):
    events, budget, window, ratio, mode = random_case(1000 + seed)
    out = compress(events, budget=budget, window=window, ratio=ratio, mode=mode)
    frames = [(e, f) for e, x in enumerate(events) for f in range(x.shape[0])]
    assert isinstance(out, Compressed)
    # The budget is met exactly (or every frame kept when there are fewer).
    assert len(out.groups) == min(budget, len(frames))
    assert out.tokens.shape == (len(out.groups), *events[0].shape[1:])
    assert out.sizes == [len(g) for g in out.groups]
    for grouping in (out.groups, out.stage1):
        # Provenance is complete: every frame exactly once, groups contiguous, in time order.
        assert [f for g in grouping for f in g] == frames
    position = {f: n for n, f in enumerate(frames)}
    for g in out.groups + out.stage1:
        assert [position[f] for f in g] == list(range(position[g[0]], position[g[0]] + len(g)))
    # Stage-1 groups stay in one event, within the window, and never below the event's target.
    for g in out.stage1:
        assert len({e for e, _ in g}) == 1
        assert len(g) <= window
    for e, x in enumerate(events):
        kept = sum(1 for g in out.stage1 if g[0][0] == e)
        assert kept >= min(x.shape[0], tc.stage1_target(x.shape[0], ratio))
    # Final groups are runs of stage-1 groups.
    starts = {g[0] for g in out.stage1}
    assert all(g[0] in starts for g in out.groups)
    # Groups of one frame are that frame's tokens, untouched.
    for g, tok in zip(out.groups, out.tokens, strict=True):
        if len(g) == 1:
            e, f = g[0]
            assert torch.equal(tok, events[e][f])


def test_each_merge_recomputes_only_the_two_neighbouring_similarities(monkeypatch):
    calls = []
    original = tc._similarity

    def counting(a, na, b, nb):
        calls.append(a.shape)
        return original(a, na, b, nb)

    monkeypatch.setattr(tc, "_similarity", counting)
    events = [torch.randn(12, 4, 8) for _ in range(3)]
    compress(events, budget=1)
    merges = 36 - 1
    # One batched call per event and one per event boundary, then at most 2 per merge.
    assert len(calls) <= 3 + 2 + 2 * merges
    assert all(len(shape) == 2 for shape in calls[5:])  # single [P, D] groups after the start


# ------------------------------------------------------------------------ dtype, device, grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_dtype_and_device_are_preserved(dtype):
    gen = torch.Generator().manual_seed(0)
    events = [torch.randn(t, 4, 16, generator=gen).to(dtype) for t in (5, 7, 3)]
    out = compress(events, budget=4)
    assert out.tokens.dtype == dtype
    assert out.tokens.device == events[0].device
    assert out.tokens.shape == (4, 4, 16)
    assert not out.tokens.isnan().any()
    # Same groups as the float64 computation on the same values.
    exact = compress([x.double() for x in events], budget=4)
    assert out.groups == exact.groups
    assert torch.allclose(
        out.tokens.double(), exact.tokens, atol=1e-2 if dtype.itemsize < 4 else 1e-6
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    for seed in range(20):
        events, budget, window, ratio, mode = random_case(seed)
        cpu = compress(events, budget=budget, window=window, ratio=ratio, mode=mode)
        gpu = compress(
            [x.cuda() for x in events], budget=budget, window=window, ratio=ratio, mode=mode
        )
        assert gpu.tokens.device.type == "cuda"
        assert (gpu.groups, gpu.stage1) == (cpu.groups, cpu.stage1)
        assert torch.allclose(gpu.tokens.cpu(), cpu.tokens)


def test_gradients_flow_to_the_input_tokens():
    events = [torch.randn(2, 3, 4, requires_grad=True), torch.randn(1, 3, 4, requires_grad=True)]
    # Either ((x0 + x1) / 2 + y0) / 2 or (x0 + (x1 + y0) / 2) / 2: weights 1/4, 1/4 and 1/2.
    out = compress(events, budget=1, ratio=1.0)
    out.tokens.sum().backward()
    grads = [events[0].grad[0], events[0].grad[1], events[1].grad[0]]  # 3 x [P, D]
    assert sorted(g[0, 0].item() for g in grads) == [0.25, 0.25, 0.5]
    assert all(torch.all(g == g[0, 0]) for g in grads)


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("events", "kwargs", "message"),
    [
        ([], {}, "at least one event"),
        ([torch.zeros(2, 3)], {}, "must be 3-D"),
        (torch.zeros(2, 3, 4), {}, "must be 3-D"),  # one event passed bare, not in a sequence
        ([[[[0.0]]]], {}, "not a torch.Tensor"),
        ([torch.zeros(2, 3, 4), torch.zeros(2, 5, 4)], {}, "P=5"),
        ([torch.zeros(2, 3, 4), torch.zeros(2, 3, 8)], {}, "D=8"),
        ([torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, dtype=torch.float64)], {}, "one dtype"),
        ([torch.zeros(2, 3, 4, dtype=torch.int64)], {}, "floating point"),
        ([torch.zeros(2, 3, 4), torch.zeros(0, 3, 4)], {}, "event 1 has no frames"),
        ([torch.zeros(2, 3, 4)], {"budget": 0}, "budget must be an int >= 1"),
        ([torch.zeros(2, 3, 4)], {"budget": 1.5}, "budget must be an int >= 1"),
        ([torch.zeros(2, 3, 4)], {"window": 0}, "window must be an int >= 1"),
        ([torch.zeros(2, 3, 4)], {"ratio": 0}, r"ratio must be a number in \(0, 1\]"),
        ([torch.zeros(2, 3, 4)], {"ratio": 1.5}, r"ratio must be a number in \(0, 1\]"),
        ([torch.zeros(2, 3, 4)], {"ratio": float("nan")}, r"ratio must be a number in \(0, 1\]"),
        ([torch.zeros(2, 3, 4)], {"mode": "max"}, "mode must be 'mean' or 'weighted'"),
    ],
)
def test_invalid_arguments_are_value_errors(events, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compress(events, **kwargs)
