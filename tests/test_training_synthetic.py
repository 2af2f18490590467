"""The synthetic video-QA task: deterministic, balanced, and answerable from the pixels alone.

An oracle here reads the decoded clips (as the answer model's sampler does: ``event_frames``)
and answers every question of every kind; it must be right every time, and the file names and
question texts must say nothing about the answers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from synthetic import BACKGROUND, COLOURS, KINDS, LETTERS, QUESTIONS, make_task

from marc.memory.frames import event_frames
from marc.memory.probe import probe
from marc.training.data import load_dataset

N_TRAIN, N_TEST = 32, 16


# the tests that use it are marked slow: generating the task is the cost (seconds)
@pytest.fixture(scope="module")
def task(tmp_path_factory) -> tuple[Path, Path]:
    return make_task(tmp_path_factory.mktemp("synthetic"), n_train=N_TRAIN, n_test=N_TEST)


# ------------------------------------------------------------------------------ the oracle
def _masks(frame: np.ndarray) -> dict[str, np.ndarray]:
    """Pixels of each palette colour (nearest colour, far from the background)."""
    px = frame.astype(np.float32)
    bg = np.linalg.norm(px - np.array(BACKGROUND), axis=-1) > 120
    names = list(COLOURS)
    dist = np.stack([np.linalg.norm(px - np.array(COLOURS[c]), axis=-1) for c in names])
    nearest = dist.argmin(0)
    return {c: bg & (nearest == i) for i, c in enumerate(names)}


def _present(frame: np.ndarray, min_px: int = 20) -> set[str]:
    return {c for c, m in _masks(frame).items() if m.sum() >= min_px}


def _dominant(frames: np.ndarray) -> str:
    counts = Counter()
    for f in frames:
        counts.update({c: int(m.sum()) for c, m in _masks(f).items()})
    return counts.most_common(1)[0][0]


def _first(frames: np.ndarray) -> str:
    for f in frames:
        seen = _present(f)
        if len(seen) == 1:
            return seen.pop()
    raise AssertionError("no frame shows exactly one shape")


def _count(frames: np.ndarray) -> str:
    # shapes of one clip have distinct colours and each is fully visible mid-clip
    return str(max(len(_present(f)) for f in frames))


def _direction(frames: np.ndarray) -> str:
    def centroid(f):
        ys, xs = np.nonzero(np.logical_or.reduce(list(_masks(f).values())))
        return xs.mean(), ys.mean()

    (x0, y0), (x1, y1) = centroid(frames[0]), centroid(frames[-1])
    dx, dy = x1 - x0, y1 - y0
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


ORACLE = {"colour": _dominant, "first": _first, "count": _count, "direction": _direction}


def _frames(path: Path) -> np.ndarray:
    info = probe(path)
    return event_frames(path, 0.0, info.duration_s, 8, height=56, width=56)


# ------------------------------------------------------------------------------- the tests
@pytest.mark.slow
def test_records_are_video_r1_and_balanced(task):
    for path, n in zip(task, (N_TRAIN, N_TEST), strict=True):
        samples = load_dataset(path)  # the Video-R1 loader validates every record
        assert len(samples) == n
        assert all(s.problem_type == "multiple choice" and s.data_type == "video" for s in samples)
        assert all(s.path.is_file() and s.path.parent == path.parent / "videos" for s in samples)
        assert all(len(s.options) == 4 for s in samples)
        assert all([o[:3] for o in s.options] == [f"{L}. " for L in LETTERS] for s in samples)
        letters = Counter(s.answer for s in samples)
        assert letters == dict.fromkeys(LETTERS, n // 4)
        assert Counter(s.data_source for s in samples) == dict.fromkeys(KINDS, n // 4)
        # every kind gets every letter once per 16 samples
        assert Counter((s.data_source, s.answer) for s in samples) == {
            (k, L): n // 16 for k in KINDS for L in LETTERS
        }
        # the question text depends only on the kind; the file name is a content hash
        assert all(s.problem == QUESTIONS[s.data_source] for s in samples)
        values = {s.options[LETTERS.index(s.answer)][3:] for s in samples}
        assert not any(v in s.path.name for s in samples for v in values if len(v) > 1)


@pytest.mark.slow
def test_pixels_carry_the_answer(task):
    for path in task:
        for s in load_dataset(path):
            value = s.options[LETTERS.index(s.answer)][3:]
            assert ORACLE[s.data_source](_frames(s.path)) == value, (s.data_source, s.path.name)


@pytest.mark.slow
def test_first_colour_appears_before_the_other(task):
    for s in load_dataset(task[1]):
        if s.data_source != "first":
            continue
        frames = _frames(s.path)
        value = s.options[LETTERS.index(s.answer)][3:]
        seen = [_present(f) for f in frames]
        first_at = {c: next(i for i, p in enumerate(seen) if c in p) for c in set().union(*seen)}
        assert len(first_at) == 2 and min(first_at, key=first_at.get) == value
        assert set(first_at) <= {o[3:] for o in s.options}  # the late colour is a distractor


@pytest.mark.slow
def test_deterministic_disjoint_and_idempotent(task, tmp_path):
    train, test = task
    again = make_task(tmp_path / "again", n_train=N_TRAIN, n_test=N_TEST)
    assert again[0].read_text() == train.read_text() and again[1].read_text() == test.read_text()
    names = [{r["path"] for r in json.loads(p.read_text())} for p in task]
    assert not names[0] & names[1]  # the test split is a different stream
    other = make_task(tmp_path / "seed1", n_train=N_TRAIN, n_test=N_TEST, seed=1)
    assert other[0].read_text() != train.read_text()

    # complete: nothing is rewritten; a changed size regenerates the task
    stamp = train.stat().st_mtime_ns
    assert make_task(train.parent, n_train=N_TRAIN, n_test=N_TEST) == task
    assert train.stat().st_mtime_ns == stamp
    small = make_task(tmp_path / "again", n_train=16, n_test=16)
    assert len(json.loads(small[0].read_text())) == 16


@pytest.mark.slow
def test_clip_format(task):
    s = load_dataset(task[0])[0]
    info = probe(s.path)
    assert (info.width, info.height) == (56, 56)
    assert info.duration_s == pytest.approx(2.0, abs=0.3)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even size"):
        make_task(tmp_path, size=55)
    with pytest.raises(ValueError, match="n_train"):
        make_task(tmp_path, n_train=-1)


@pytest.mark.slow
def test_fixed_options_list_the_same_options_and_the_pixels_still_decide(tmp_path):
    from synthetic import FIXED_OPTIONS

    train, _ = make_task(tmp_path / "fixed", n_train=16, n_test=0, fixed_options=True)
    samples = load_dataset(train)
    assert Counter(s.answer for s in samples) == dict.fromkeys(LETTERS, 4)
    for s in samples:
        values = FIXED_OPTIONS[s.data_source]
        assert s.options == tuple(f"{L}. {v}" for L, v in zip(LETTERS, values, strict=True))
        assert ORACLE[s.data_source](_frames(s.path)) == values[LETTERS.index(s.answer)]
    # a different option rule is a different task: the marker makes it regenerate
    make_task(tmp_path / "fixed", n_train=16, n_test=0)
    fixed = {k: tuple(f"{L}. {v}" for L, v in zip(LETTERS, vs, strict=True))
             for k, vs in FIXED_OPTIONS.items()}  # fmt: skip
    assert any(s.options != fixed[s.data_source] for s in load_dataset(train))


def test_bad_speed(tmp_path):
    with pytest.raises(ValueError, match="speed"):
        make_task(tmp_path, speed=0)


@pytest.mark.slow
def test_graded_count_and_half_speed_ask_the_same_questions_slower(tmp_path):
    from synthetic import GRADED_KINDS

    train, _ = make_task(tmp_path / "graded", n_train=16, n_test=0, fixed_options=True,
                         graded=True)  # fmt: skip
    slow, _ = make_task(tmp_path / "slow", n_train=16, n_test=0, fixed_options=True,
                        graded=True, speed=0.5)  # fmt: skip
    fast_samples, slow_samples = load_dataset(train), load_dataset(slow)
    for s, z in zip(fast_samples, slow_samples, strict=True):
        # the same question and answer at either speed (the random draws do not depend on it)
        assert (s.problem, s.solution, s.options) == (z.problem, z.solution, z.options)
        if s.data_source in GRADED_KINDS:  # the number itself, graded by relative error
            assert s.problem_type == "regression" and s.options == ()
            assert s.solution == f"<answer>{ORACLE['count'](_frames(s.path))}</answer>"
        else:
            assert s.problem_type == "multiple choice"
        if s.data_source == "direction":  # half speed: half the displacement, same direction
            a, b = _frames(s.path), _frames(z.path)
            assert ORACLE["direction"](a) == ORACLE["direction"](b)

            def travel(frames):
                pts = [np.argwhere(np.logical_or.reduce(list(_masks(f).values()))).mean(0)
                       for f in (frames[0], frames[-1])]  # fmt: skip
                return float(np.linalg.norm(pts[1] - pts[0]))

            assert travel(b) == pytest.approx(travel(a) / 2, rel=0.15)
