"""A miniature video-QA task whose answers are in the pixels: the reproduction benchmark's data.

Used by ``bench/training.py`` (the miniature reproduction of the training result) and by the
training tests; not part of the ``marc`` package. Scripts under ``bench/`` import it as
``synthetic`` (``bench/`` is ``sys.path[0]`` when one runs), tests through pytest's
``pythonpath`` (pyproject.toml).

Clips are rendered here with numpy (coloured shapes moving on a dark background) and encoded to
H.264 with the ffmpeg MARC uses; questions are four-option multiple choice in the Video-R1 JSON
format (:mod:`marc.training.data` reads them), so the same training and evaluation code runs on
this task and on the paper's benchmarks. Four question kinds, mixed in equal shares:

========== ============================================================== ===================
kind       what the clip shows                                           options
========== ============================================================== ===================
colour     one shape moving along a straight line                         four colours
first      two shapes of different colours entering at different frames   four colours (both)
count      1-4 shapes crossing the frame in lanes, in the same direction   1, 2, 3, 4
direction  one shape moving left, right, up or down                       the four directions
========== ============================================================== ===================

Honesty of the task:

- the answer depends only on the pixels: the question text of a kind is always the same, clips are
  named by a hash of their frames (the answer model's prompt names the file), and the distractors
  of "first" include the colour that entered second;
- answer letters are balanced (every 4 consecutive samples use each letter once, every 16 give
  each kind each letter once) and the answer value is balanced independently of the letter;
- deterministic per ``seed``; the test split comes from a disjoint random stream
  (``default_rng([seed, split, index])``), so no clip is shared by accident.

>>> train, test = make_task("/tmp/marc-synthetic", n_train=64, n_test=32)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marc.memory.core.errors import MediaError
from marc.memory.probe import ffmpeg_command

__all__ = [
    "BACKGROUND",
    "COLOURS",
    "DIRECTIONS",
    "GRADED_KINDS",
    "KINDS",
    "LETTERS",
    "QUESTIONS",
    "Clip",
    "make_task",
    "render",
]

#: Saturated colours far apart in hue (they survive yuv420p chroma subsampling at 56 px).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 80, 255),
    "yellow": (235, 220, 30),
    "cyan": (30, 210, 220),
    "magenta": (220, 40, 220),
}
#: Background: near black (every shape is far brighter in at least one channel).
BACKGROUND = (16, 16, 24)
DIRECTIONS = ("left", "right", "up", "down")
KINDS = ("colour", "first", "count", "direction")
LETTERS = "ABCD"
#: The question of each kind: the same text for every clip of the kind.
QUESTIONS = {
    "colour": "What colour is the moving shape?",
    "first": "Two shapes enter the scene one after the other. "
    "What colour is the shape that entered first?",
    "count": "How many shapes cross the frame?",
    "direction": "In which direction does the shape move?",
}
_VALUES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "first": tuple(COLOURS),
    "count": ("1", "2", "3", "4"),
    "direction": DIRECTIONS,
}
#: ``fixed_options``: every question of a kind lists these four values, in this order.
FIXED_OPTIONS: dict[str, tuple[str, ...]] = {
    "colour": ("red", "green", "blue", "yellow"),
    "first": ("red", "green", "blue", "yellow"),
    "count": ("1", "2", "3", "4"),
    "direction": DIRECTIONS,
}
#: ``graded``: these kinds are asked as Video-R1 ``regression`` questions (the number, no options),
#: whose reward is graded (one minus the relative error) rather than right or wrong.
GRADED_KINDS = ("count",)
_SPLITS = {"train": 0, "test": 1}
_FORMAT = 1  # bump when rendering or question rules change: existing tasks are regenerated
_MARKER = "synthetic.json"


@dataclass(frozen=True)
class Clip:
    """One rendered question: the frames and the Video-R1 fields that go with them."""

    kind: str
    frames: np.ndarray  # uint8 [T, S, S, 3]
    options: tuple[str, ...]  # ("A. red", ...)
    answer: str  # the letter
    value: str  # what the letter says: "red", "3", "left"

    @property
    def name(self) -> str:
        """File name from the frames' content: says nothing about the answer."""
        return hashlib.sha256(self.frames.tobytes()).hexdigest()[:20] + ".mp4"


# ------------------------------------------------------------------------------- rendering
def _draw(frame: np.ndarray, cx: float, cy: float, r: float, colour: str, disc: bool) -> None:
    """Paint a square (half side ``r``) or a disc (radius ``r``) centred at ``(cx, cy)`` px."""
    S = frame.shape[0]
    y, x = np.ogrid[:S, :S]
    dx, dy = x + 0.5 - cx, y + 0.5 - cy
    mask = (dx * dx + dy * dy <= r * r) if disc else (np.abs(dx) <= r) & (np.abs(dy) <= r)
    frame[mask] = COLOURS[colour]


def _blank(T: int, S: int) -> np.ndarray:
    out = np.empty((T, S, S, 3), np.uint8)
    out[:] = BACKGROUND
    return out


def _colour(rng: np.random.Generator, value: str, T: int, S: int, speed: float = 1.0) -> np.ndarray:
    """One shape of colour ``value`` on a straight path through the frame's inner part."""
    frames, r, disc = _blank(T, S), S / 8, bool(rng.integers(2))
    a, b = rng.uniform(0.25 * S, 0.75 * S, size=(2, 2))
    while np.hypot(*(b - a)) < 0.25 * S:  # visibly moving
        b = rng.uniform(0.25 * S, 0.75 * S, size=2)
    if speed != 1.0:  # the same path's start, ``speed`` times as far in the clip
        b = a + (b - a) * speed
    for t in range(T):
        x, y = a + (b - a) * t / max(T - 1, 1)
        _draw(frames[t], x, y, r, value, disc)
    return frames


def _first(
    rng: np.random.Generator,
    value: str,
    T: int,
    S: int,
    palette: Sequence[str] | None = None,
    speed: float = 1.0,
) -> tuple[np.ndarray, str]:
    """Shape ``value`` enters at frame ``e1``, another colour (of ``palette``, default all) at
    ``e2 >= e1 + 2``, each from a side edge into its own half (top/bottom); both stay in view to
    the end."""
    other = str(rng.choice([c for c in (palette or COLOURS) if c != value]))
    frames, r = _blank(T, S), S / 8
    e1 = int(rng.integers(0, max(T // 4, 1)))
    e2 = min(e1 + 2 + int(rng.integers(0, max(T // 4, 1))), T - 2)
    lanes = rng.permutation([0.27 * S, 0.73 * S])
    per_frame = (S - 2 * r) / T  # never leaves the frame
    if speed != 1.0:
        per_frame *= speed
    for colour, enter, cy in ((value, e1, lanes[0]), (other, e2, lanes[1])):
        from_left, disc = bool(rng.integers(2)), bool(rng.integers(2))
        for t in range(enter, T):
            step = r + (t - enter) * per_frame
            _draw(frames[t], step if from_left else S - step, cy, r, colour, disc)
    return frames, other


def _count(rng: np.random.Generator, value: str, T: int, S: int, speed: float = 1.0) -> np.ndarray:
    """``value`` shapes of distinct colours crossing side to side, one per horizontal lane."""
    n = int(value)
    frames, r = _blank(T, S), S / 9
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    leftwards = bool(rng.integers(2))
    for j, colour in enumerate(colours):
        cy = (j + 0.5) * S / n
        phase = rng.uniform(-0.08, 0.08) * S
        disc = bool(rng.integers(2))
        for t in range(T):
            x = -r + (S + 2 * r) * (t + 0.5) / T + phase  # off-frame to off-frame
            if speed != 1.0:  # the same crossing about the centre, ``speed`` times as far
                x = S / 2 + (x - S / 2) * speed
            _draw(frames[t], S - x if leftwards else x, cy, r, str(colour), disc)
    return frames


def _direction(
    rng: np.random.Generator, value: str, T: int, S: int, speed: float = 1.0
) -> np.ndarray:
    """One shape moving from 20 % to 80 % of the frame (or back) along one axis."""
    frames, r, disc = _blank(T, S), S / 8, bool(rng.integers(2))
    colour = str(rng.choice(list(COLOURS)))
    across = rng.uniform(0.3 * S, 0.7 * S)
    lo, hi = 0.2 * S, 0.8 * S
    if speed != 1.0:  # about the centre, ``speed`` times as far
        lo, hi = (0.5 - 0.3 * speed) * S, (0.5 + 0.3 * speed) * S
    for t in range(T):
        f = t / max(T - 1, 1)
        pos = lo + (hi - lo) * (1 - f if value in ("left", "up") else f)
        x, y = (pos, across) if value in ("left", "right") else (across, pos)
        _draw(frames[t], x, y, r, colour, disc)
    return frames


def render(kind: str, letter: int, value: str, rng: np.random.Generator, *, frames: int = 8,
           size: int = 56, fixed_options: bool = False, speed: float = 1.0) -> Clip:  # fmt: skip
    """Render one question of ``kind`` whose answer is ``value`` at option ``LETTERS[letter]``.

    Distractors are other values of the kind (for "first", the second colour is always one).
    With ``fixed_options`` the options are :data:`FIXED_OPTIONS` of the kind, in order, and
    ``letter`` must be ``value``'s place among them. ``speed`` scales every motion (0.5: the
    shapes cover half the distance in the clip; 1.0 draws exactly the default clips).
    """
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; one of {', '.join(KINDS)}")
    T, S = frames, size
    if fixed_options:
        values = FIXED_OPTIONS[kind]
        if value not in values or values.index(value) != letter:
            raise ValueError(f"{value!r} is not option {LETTERS[letter]} of {kind!r}: {values}")
        palette = values if kind == "first" else None
        pixels = (
            _first(rng, value, T, S, palette, speed)[0]
            if kind == "first"
            else {"colour": _colour, "count": _count, "direction": _direction}[kind](
                rng, value, T, S, speed
            )
        )
        options = tuple(f"{L}. {v}" for L, v in zip(LETTERS, values, strict=True))
        return Clip(kind, pixels, options, LETTERS[letter], value)
    if kind == "first":
        pixels, other = _first(rng, value, T, S, speed=speed)
        pool = [c for c in _VALUES[kind] if c not in (value, other)]
        distractors = [other, *rng.choice(pool, size=2, replace=False)]
    else:
        pixels = {"colour": _colour, "count": _count, "direction": _direction}[kind](
            rng, value, T, S, speed
        )
        pool = [v for v in _VALUES[kind] if v != value]
        distractors = list(rng.choice(pool, size=3, replace=False))
    distractors = [str(d) for d in rng.permutation(distractors)]
    values = distractors[:letter] + [value] + distractors[letter:]
    options = tuple(f"{L}. {v}" for L, v in zip(LETTERS, values, strict=True))
    return Clip(kind, pixels, options, LETTERS[letter], value)


def _plan(i: int) -> tuple[str, int, int]:
    """``(kind, letter, value index)`` of sample ``i``: each block of 4 covers every kind and
    every letter; each block of 16 gives each kind each letter; values cycle independently of
    the letter (every ``(letter, value)`` pair of a 4-valued kind once in 64)."""
    k, m = i % 4, i // 4
    return KINDS[k], (k + m) % 4, m + m // 4


def _sample(seed: int, split: str, i: int, frames: int, size: int, fixed: bool = False,
            speed: float = 1.0) -> Clip:  # fmt: skip
    kind, letter, v = _plan(i)
    rng = np.random.default_rng([seed, _SPLITS[split], i])
    opts = {"frames": frames, "size": size, "speed": speed}
    if fixed:  # the value is the letter's: balanced letters are balanced values
        value = FIXED_OPTIONS[kind][letter]
        return render(kind, letter, value, rng, fixed_options=True, **opts)
    values = _VALUES[kind]
    return render(kind, letter, values[v % len(values)], rng, **opts)


# -------------------------------------------------------------------------------- encoding
def _encode(clip: Clip, out: Path, fps: float) -> None:
    """H.264 (yuv420p, near lossless, no B-frames) of the clip's frames, written atomically."""
    if out.is_file():
        return
    T, H, W, _ = clip.frames.shape
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    cmd = ffmpeg_command(
        "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(fps),
        "-i", "pipe:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "10",
        "-pix_fmt", "yuv420p", "-bf", "0", "-g", str(T), "-threads", "1",
        "-f", "mp4", str(tmp),
    )  # fmt: skip
    r = subprocess.run(cmd, input=clip.frames.tobytes(), capture_output=True)
    if r.returncode:
        tmp.unlink(missing_ok=True)
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(out, f"ffmpeg could not encode the clip ({err[-1] if err else r})")
    os.replace(tmp, out)


def _record(problem_id: int, clip: Clip, path: str, graded: bool = False) -> dict[str, Any]:
    if graded and clip.kind in GRADED_KINDS:  # the number itself, scored by relative error
        kind, options, answer = "regression", [], clip.value
    else:
        kind, options, answer = "multiple choice", list(clip.options), clip.answer
    return {
        "problem_id": problem_id,
        "problem": QUESTIONS[clip.kind],
        "data_type": "video",
        "problem_type": kind,
        "options": options,
        "process": "",
        "solution": f"<answer>{answer}</answer>",
        "path": path,
        "data_source": clip.kind,
    }


def make_task(
    out_dir: Path | str,
    *,
    n_train: int = 256,
    n_test: int = 64,
    seed: int = 0,
    frames: int = 8,
    size: int = 56,
    fps: float = 4,
    fixed_options: bool = False,
    graded: bool = False,
    speed: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, Path]:
    """Write the task under ``out_dir``: clips in ``videos/``, ``train.json`` and ``test.json``.

    Idempotent: a task already complete with the same parameters (the ``synthetic.json`` marker)
    is returned as it is; an interrupted one is finished (clips already written are kept).

    Args:
        out_dir: Folder of the task.
        n_train, n_test: Questions per split (multiples of 16 balance kinds x letters exactly).
        seed: Seed of both splits (the test split uses a disjoint stream).
        frames, size, fps: Frames per clip, side in pixels, frame rate (8 frames at 4 fps: 2 s).
        fixed_options: List the same four options in the same order for every question of a
            kind (:data:`FIXED_OPTIONS`), so the letter follows from the pixels alone; by default
            options are shuffled and the answer must be matched against the options' text (a
            harder, compositional task that tiny models trained for minutes do not learn).
        graded: Ask the kinds of :data:`GRADED_KINDS` ("count") as ``regression`` questions
            (answer the number; Video-R1 rewards one minus the relative error and scores MRA at
            evaluation), so their reward is graded, not right or wrong.
        speed: Scale of every motion (0.5: half as far in the same clip length): a shift in clip
            speed for an out-of-distribution test split. The random draws do not depend on it,
            so ``speed=0.5`` renders the same questions as ``speed=1`` (same seed), slowed down.
        progress: Called with ``(clips done, clips total)`` while encoding.

    Returns:
        ``(train.json, test.json)`` paths; each record's ``path`` is relative to its folder.
    """
    if frames < 4 or size < 28 or size % 2 or fps <= 0:
        raise ValueError(
            f"need frames >= 4, an even size >= 28 and fps > 0; got {frames}, {size}, {fps}"
        )
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
    out = Path(out_dir)
    params = {
        "format": _FORMAT, "n_train": n_train, "n_test": n_test, "seed": seed,
        "frames": frames, "size": size, "fps": fps,
    }  # fmt: skip
    if fixed_options:  # (absent otherwise: tasks made before the option keep their marker)
        params["fixed_options"] = True
    if graded:
        params["graded"] = True
    if speed != 1.0:
        params["speed"] = speed
    marker, paths = out / _MARKER, (out / "train.json", out / "test.json")
    if marker.is_file() and all(p.is_file() for p in paths):
        try:
            if json.loads(marker.read_text()) == params:
                return paths
        except (OSError, ValueError):
            pass  # unreadable marker: write the task again
    marker.unlink(missing_ok=True)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    jobs = [("train", i) for i in range(n_train)] + [("test", i) for i in range(n_test)]
    done = 0

    def make(job: tuple[str, int]) -> tuple[str, int, Clip]:
        split, i = job
        clip = _sample(seed, split, i, frames, size, fixed_options, speed)
        _encode(clip, videos / clip.name, fps)
        return split, i, clip

    records: dict[str, list[Clip]] = {"train": [None] * n_train, "test": [None] * n_test}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for split, i, clip in pool.map(make, jobs):  # ffmpeg runs in its own processes
            records[split][i] = clip
            done += 1
            if progress is not None:
                progress(done, len(jobs))
    for path, split in zip(paths, _SPLITS, strict=True):
        order = np.random.default_rng([seed, _SPLITS[split], 2**32 - 1]).permutation(
            len(records[split])
        )  # the file's order says nothing about kinds or letters
        rows = [
            _record(pid, records[split][j], f"videos/{records[split][j].name}", graded)
            for pid, j in enumerate(order)
        ]
        _write_json(path, rows)
    _write_json(marker, params)
    return paths


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
