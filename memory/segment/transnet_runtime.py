"""Where TransNetV2's forward pass runs: PyTorch eager, or OpenVINO on the same weights.

Both runtimes take ``uint8 [B, 100, 27, 48, 3]`` windows and return the single-frame head's
logits ``float32 [B, 100]``. They execute :class:`TransNetForward`, the package's
``TransNetV2.forward`` restated so that it can be exported (the package builds the colour
histogram with a Python ``len()`` that tracing freezes to the example's batch size); it gives
the package's logits up to float summation order, within 1e-5 (``tests/test_gate.py`` checks).

On a CPU, OpenVINO runs a window in fp32 faster than PyTorch eager, with probabilities within
1e-6 of it. OpenVINO's bf16 (AMX) path is faster still but moves probabilities by more than the
segmentation contract allows (the reference's probabilities within 1e-3), so it is not used.
``bench/segmentation.md`` has the measurements.

The OpenVINO model is converted from the PyTorch module once per machine (about 7 s: tracing)
and kept as IR in :func:`default_cache_dir` (the user's cache, shared by every archive) under a
name that covers the weights and both libraries' versions; later processes read it in well under
a second.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

RUNTIMES = ("openvino", "torch")


class TransNetForward(torch.nn.Module):
    """``TransNetV2.forward`` (single-frame head only), exportable; shares the net's weights.

    Input ``uint8 [B, T, 27, 48, 3]``; output ``float32 [B, T]`` logits.
    """

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        net = self.net
        B, T = frames.shape[0], frames.shape[1]
        x = frames.permute(0, 4, 1, 2, 3).float() / 255.0  # [B, 3, T, 27, 48]
        features = []
        for block in net.SDDCNN:  # 3 blocks of dilated (2+1)D convolutions, each pooling 2x2
            x = block(x)
            features.append(x)
        x = x.permute(0, 2, 3, 4, 1).reshape(B, T, -1)  # [B, T, 3 * 6 * 256]
        x = torch.cat([net.frame_sim_layer(features), x], 2)  # + [B, T, 128]
        x = torch.cat([self._color_histograms(frames), x], 2)  # + [B, T, 128]
        x = F.relu(net.fc1(x))  # dropout is the identity in eval mode
        return net.cls_layer1(x)[..., 0]  # [B, T]

    def _color_histograms(self, frames: torch.Tensor) -> torch.Tensor:
        """The package's ``ColorHistograms`` layer: 512-bin RGB histograms, their cosine
        similarities to the frames +-50 around each frame (zero beyond the window), a dense."""
        B, T = frames.shape[0], frames.shape[1]
        f = frames.int()
        bins = ((f[..., 0] >> 5) << 6) + ((f[..., 1] >> 5) << 3) + (f[..., 2] >> 5)  # [B, T, H, W]
        bins = bins.reshape(B * T, -1).long()
        hist = torch.zeros(B * T, 512).scatter_add_(1, bins, torch.ones_like(bins).float())
        hist = F.normalize(hist.view(B, T, 512), p=2, dim=2)
        layer = self.net.color_hist_layer
        half = (layer.lookup_window - 1) // 2
        sims = F.pad(torch.bmm(hist, hist.transpose(1, 2)), [half, half])  # [B, T, T + 100]
        lookup = torch.arange(T)[:, None] + torch.arange(layer.lookup_window)[None, :]  # [T, 101]
        sims = torch.gather(sims, 2, lookup[None].expand(B, T, layer.lookup_window))
        return F.relu(layer.fc(sims))


class Runtime(Protocol):
    name: str

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """``uint8 [B, 100, 27, 48, 3]`` -> logits ``float32 [B, 100]``."""
        ...


class TorchRuntime:
    """PyTorch eager execution on ``device``, with ``threads`` intra-op threads while running."""

    name = "torch"

    def __init__(self, net: torch.nn.Module, device: torch.device, threads: int) -> None:
        self.forward = TransNetForward(net).eval()
        self.device, self.threads = device, threads

    @torch.inference_mode()
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        before = torch.get_num_threads()
        if before != self.threads:
            torch.set_num_threads(self.threads)
        try:
            x = torch.from_numpy(windows).to(self.device)
            return self.forward(x).float().cpu().numpy()
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)


class OpenVinoRuntime:
    """OpenVINO's CPU plugin in fp32, ``threads`` inference threads; model cached as IR."""

    name = "openvino"

    def __init__(self, net: torch.nn.Module, threads: int, cache_dir: Path | None) -> None:
        self.model = _compiled(net, threads, None if cache_dir is None else str(cache_dir))
        self.request = self.model.create_infer_request()

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: np.ascontiguousarray(windows)})
        return np.array(out[self.model.output(0)], dtype=np.float32)


def default_cache_dir() -> Path:
    """Where converted models are kept: ``$XDG_CACHE_HOME/marc/openvino`` (or the platform's)."""
    import platformdirs

    return platformdirs.user_cache_path("marc") / "openvino"


def _ir_name(net: torch.nn.Module) -> str:
    import openvino

    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    h.update(f"{openvino.__version__} {torch.__version__}".encode())
    return f"transnetv2-{h.hexdigest()[:16]}.xml"


@functools.cache
def _compiled(net: torch.nn.Module, threads: int, cache_dir: str | None):
    import openvino as ov

    core = ov.Core()
    model = None
    path = Path(cache_dir) / _ir_name(net) if cache_dir else None
    if path is not None and path.exists():
        try:
            model = core.read_model(path)
        except RuntimeError:  # a damaged cache entry: convert again
            model = None
    if model is None:
        example = torch.zeros(1, 100, 27, 48, 3, dtype=torch.uint8)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convert_model traces: torch's deprecation notices
            model = ov.convert_model(TransNetForward(net).eval(), example_input=example)
        model.reshape([-1, 100, 27, 48, 3])  # any number of windows per call
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.xml")
            ov.save_model(model, tmp, compress_to_fp16=False)  # fp32 weights, as shipped
            tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
            tmp.replace(path)  # the .xml last: a reader never sees it without its weights
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    return core.compile_model(model, "CPU", config)


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def load_runtime(
    name: str, net: torch.nn.Module, device: torch.device, threads: int, cache_dir: Path | None
) -> Runtime:
    """The runtime ``name`` (``"openvino"``, ``"torch"`` or ``"auto"``) for ``net``.

    ``"auto"`` is OpenVINO on CPU when it is installed, PyTorch otherwise (accelerators run
    PyTorch: OpenVINO here targets the CPU).
    """
    if name == "auto":
        name = "openvino" if device.type == "cpu" and openvino_available() else "torch"
    if name == "openvino":
        if device.type != "cpu":
            raise ValueError(f"the openvino runtime runs on the CPU, not {device}")
        return OpenVinoRuntime(net, threads, cache_dir)
    if name == "torch":
        return TorchRuntime(net, device, threads)
    raise ValueError(f"runtime must be one of auto, {', '.join(RUNTIMES)}; got {name!r}")
