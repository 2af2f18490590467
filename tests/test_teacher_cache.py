"""The teacher cache: computed once, found again after reopening, keyed by teacher and setting."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

from marc.training import teacher_cache
from marc.training.data import Sample
from marc.training.teacher_cache import TeacherCache, TeacherResult

SETTING = "frames=64 G=8 temperature=1.0 top_p=1.0 max_tokens=1024 seed=0"


def sample(i: int) -> Sample:
    return Sample(
        str(i), f"q{i}", "numerical", (), f"<answer>{i}</answer>", Path(f"/{i}.mp4"), "video"
    )


class Compute:
    """A fake teacher: records its calls; sample i gets accuracy (i % 8) / 8."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, samples: list[Sample]) -> list[TeacherResult]:
        self.calls.append([s.problem_id for s in samples])
        return [
            TeacherResult([f"<answer>{s.problem_id}</answer>"] * 8, (int(s.problem_id) % 8) / 8)
            for s in samples
        ]


def test_docstring_examples():
    assert doctest.testmod(teacher_cache).failed == 0


def test_miss_compute_then_hit_after_reopen(tmp_path):
    db = tmp_path / "cache" / "teacher.sqlite"
    samples = [sample(i) for i in (3, 1, 2)]
    compute = Compute()
    with TeacherCache(db) as cache:
        results = cache.get_or_compute("qwen-7b@abc", samples, SETTING, compute)
        assert compute.calls == [["3", "1", "2"]]  # one batch
        assert [r.accuracy for r in results] == [3 / 8, 1 / 8, 2 / 8]
        assert (cache.hits, cache.misses, len(cache)) == (0, 3, 3)
    compute2 = Compute()
    with TeacherCache(db) as cache:
        again = cache.get_or_compute("qwen-7b@abc", samples, SETTING, compute2)
        assert compute2.calls == []  # not called: everything was stored
        assert again == results
        assert (cache.hits, cache.misses) == (3, 0)
        assert cache.get("qwen-7b@abc", samples[0].key(), SETTING) == results[0]


def test_only_misses_are_computed_and_order_is_kept(tmp_path):
    compute = Compute()
    with TeacherCache(tmp_path / "t.sqlite") as cache:
        cache.get_or_compute("t", [sample(1), sample(4)], SETTING, compute)
        order = [sample(i) for i in (5, 4, 6, 1, 5)]
        results = cache.get_or_compute("t", order, SETTING, compute)
        assert compute.calls[1] == ["5", "6"]  # the misses, each once, in first-seen order
        assert [r.completions[0] for r in results] == [
            f"<answer>{i}</answer>" for i in (5, 4, 6, 1, 5)
        ]
        assert [r.accuracy for r in results] == [5 / 8, 4 / 8, 6 / 8, 1 / 8, 5 / 8]
        assert (cache.hits, cache.misses, len(cache)) == (2, 4, 4)


def test_setting_and_teacher_are_part_of_the_key(tmp_path):
    compute = Compute()
    with TeacherCache(tmp_path / "t.sqlite") as cache:
        cache.get_or_compute("t", [sample(1)], SETTING, compute)
        cache.get_or_compute("t", [sample(1)], SETTING.replace("seed=0", "seed=1"), compute)
        cache.get_or_compute("other", [sample(1)], SETTING, compute)
        assert compute.calls == [["1"], ["1"], ["1"]]
        assert len(cache) == 3
        assert cache.get("t", sample(1).key(), "frames=32") is None
        assert cache.get("t", sample(2).key(), SETTING) is None
        assert cache.misses == 5


def test_put_is_committed_at_once_and_replaces(tmp_path):
    db = tmp_path / "t.sqlite"
    cache = TeacherCache(db)
    cache.put("t", "k", SETTING, TeacherResult(["a"], 0.0))
    # a second connection sees the row while the first is still open (no pending transaction)
    with TeacherCache(db) as other:
        assert other.get("t", "k", SETTING) == TeacherResult(["a"], 0.0)
    cache.put("t", "k", SETTING, TeacherResult(["b", "ünïcode"], 0.5))
    cache.close()
    with TeacherCache(db) as cache:
        assert cache.get("t", "k", SETTING) == TeacherResult(["b", "ünïcode"], 0.5)
        assert len(cache) == 1


def test_bad_results_are_refused(tmp_path):
    with pytest.raises(ValueError, match="accuracy"):
        TeacherResult(["a"], 1.5)
    with TeacherCache(tmp_path / "t.sqlite") as cache:
        with pytest.raises(ValueError, match="2 samples"):
            cache.get_or_compute("t", [sample(1), sample(2)], SETTING, lambda s: [])
        assert len(cache) == 0


_WORKER = """
import sys
from marc.training.teacher_cache import TeacherCache, TeacherResult
db, start = sys.argv[1], int(sys.argv[2])
with TeacherCache(db) as cache:
    for i in range(start, start + 20):
        cache.put("t", f"k{i}", "s", TeacherResult(["x"], 1.0))
"""


def test_two_processes_share_the_file(tmp_path):
    db = tmp_path / "t.sqlite"
    TeacherCache(db).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(db), str(start)]) for start in (0, 20)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with TeacherCache(db) as cache:
        assert len(cache) == 40
        assert cache.get("t", "k39", "s") == TeacherResult(["x"], 1.0)
