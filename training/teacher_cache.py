"""The teacher's rollouts, computed once per question and kept in SQLite.

C-GRPO compares the student's accuracy on compressed input with the teacher's accuracy ``a_full``
on the full 64-frame input. The teacher is frozen, so its completions and accuracy for a question
never change for given generation settings: they are computed once and reused across epochs and
runs. Rows are keyed by

- ``teacher``: a fingerprint of the teacher model (the caller's, e.g. name and weights digest),
- ``sample_key``: :meth:`marc.training.data.Sample.key`,
- ``setting``: the generation settings as a string (frames, G, temperature, top_p, max tokens,
  seed), so changing any of them computes afresh.

One SQLite file in WAL mode; every write is committed at once, so an interrupted run keeps what it
computed, and a busy timeout lets two processes share the file.

>>> import tempfile, os
>>> with TeacherCache(os.path.join(tempfile.mkdtemp(), "t.sqlite")) as cache:
...     cache.put("qwen7b", "k1", "f64", TeacherResult(["<answer>B</answer>"], 1.0))
...     cache.get("qwen7b", "k1", "f64"), cache.get("qwen7b", "k1", "f32")
(TeacherResult(completions=['<answer>B</answer>'], accuracy=1.0), None)
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from marc.training.data import Sample

__all__ = ["TeacherCache", "TeacherResult"]

_BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another process's transaction
_SCHEMA = """
CREATE TABLE IF NOT EXISTS teacher_results (
    teacher TEXT NOT NULL,
    sample_key TEXT NOT NULL,
    setting TEXT NOT NULL,
    completions TEXT NOT NULL,  -- JSON list of strings
    accuracy REAL NOT NULL,
    created REAL NOT NULL,      -- unix time
    PRIMARY KEY (teacher, sample_key, setting)
)
"""


@dataclass
class TeacherResult:
    """The teacher's rollouts on one question.

    Args:
        completions: the teacher's ``G`` completions.
        accuracy: ``a_full``, the fraction of them that are correct, in [0, 1].
    """

    completions: list[str]
    accuracy: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"accuracy must be in [0, 1], got {self.accuracy}")
        if not all(isinstance(c, str) for c in self.completions):
            raise ValueError("completions must be strings")


class TeacherCache:
    """Teacher results in one SQLite file, keyed by (teacher, sample key, setting).

    Args:
        path: the SQLite file; created with its folder when missing.

    Attributes:
        hits: results found by :meth:`get` / :meth:`get_or_compute` since opening.
        misses: results not found (and, in :meth:`get_or_compute`, computed) since opening.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit (isolation_level=None): each statement outside BEGIN commits at once
        self._db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(_SCHEMA)
        self.hits = 0
        self.misses = 0

    def _lookup(self, teacher: str, sample_key: str, setting: str) -> TeacherResult | None:
        row = self._db.execute(
            "SELECT completions, accuracy FROM teacher_results "
            "WHERE teacher = ? AND sample_key = ? AND setting = ?",
            (teacher, sample_key, setting),
        ).fetchone()
        return None if row is None else TeacherResult(json.loads(row[0]), row[1])

    def get(self, teacher: str, sample_key: str, setting: str) -> TeacherResult | None:
        """The stored result, or ``None`` (counted in :attr:`hits` / :attr:`misses`)."""
        result = self._lookup(teacher, sample_key, setting)
        if result is None:
            self.misses += 1
        else:
            self.hits += 1
        return result

    def put(self, teacher: str, sample_key: str, setting: str, result: TeacherResult) -> None:
        """Store ``result`` (replacing any previous one for the key), committed at once."""
        self._put_many(teacher, setting, [(sample_key, result)])

    def _put_many(
        self, teacher: str, setting: str, items: Sequence[tuple[str, TeacherResult]]
    ) -> None:
        now = time.time()
        rows = [
            (teacher, key, setting, json.dumps(r.completions, ensure_ascii=False), r.accuracy, now)
            for key, r in items
        ]
        with self._db:  # one transaction, committed on exit
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO teacher_results "
                "(teacher, sample_key, setting, completions, accuracy, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def get_or_compute(
        self,
        teacher: str,
        samples: Sequence[Sample],
        setting: str,
        compute: Callable[[list[Sample]], list[TeacherResult]],
    ) -> list[TeacherResult]:
        """The results of ``samples`` in their order, computing the missing ones in one batch.

        ``compute`` is called once with the samples not in the cache (each distinct key once, in
        first-seen order), and not at all when every sample is cached. Its results are stored
        before they are returned.

        Raises:
            ValueError: ``compute`` returned a different number of results than samples given.
        """
        found: dict[str, TeacherResult] = {}
        todo: dict[str, Sample] = {}
        for sample in samples:
            key = sample.key()
            if key in found or key in todo:
                continue
            result = self._lookup(teacher, key, setting)
            if result is None:
                todo[key] = sample
            else:
                found[key] = result
        self.hits += len(found)
        self.misses += len(todo)
        if todo:
            computed = list(compute(list(todo.values())))
            if len(computed) != len(todo):
                raise ValueError(
                    f"compute returned {len(computed)} results for {len(todo)} samples"
                )
            for r in computed:
                if not isinstance(r, TeacherResult):
                    raise ValueError(f"compute must return TeacherResult values, got {r!r}")
            pairs = list(zip(todo, computed, strict=True))
            self._put_many(teacher, setting, pairs)
            found.update(pairs)
        return [found[sample.key()] for sample in samples]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM teacher_results").fetchone()[0]

    def close(self) -> None:
        """Close the database (stored results stay in the file)."""
        self._db.close()

    def __enter__(self) -> TeacherCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
