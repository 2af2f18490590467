"""Token compression of retrieved events: pure tensor code (torch and the standard library only).

:func:`compress` is the paper's Memory-Aware Temporal Compression layer; see
:mod:`marc.compression.temporal_compression`.
"""

from marc.compression.temporal_compression import (
    DEFAULT_BUDGET,
    DEFAULT_RATIO,
    DEFAULT_WINDOW,
    Compressed,
    MergeMode,
    compress,
)

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_RATIO",
    "DEFAULT_WINDOW",
    "Compressed",
    "MergeMode",
    "compress",
]
