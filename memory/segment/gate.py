"""Change gating: run TransNetV2 only on windows where the picture changes enough to hold a cut.

TransNetV2 costs ~0.3 s of CPU per 100-frame window, whatever the frames show. A fixed camera
spends hours on frames that differ from the previous one by sensor grain and a walking figure;
a shot transition (hard cut, dissolve, fade) always changes the *whole* picture. The gate
measures that on the 48x27 frames the network already reads, blurred further so grain and small
moving things average out:

    b[t]   = frames[t] averaged over 9x9 pixel blocks         float32 [T, 3, 5, 3]  (0-255)
    d_k[t] = mean |b[t] - b[t - k]|                           grey levels, 0 where t < k
    c[t]   = max(d_1[t], d_8[t] / 2)                          the change at frame t

``d_1`` sees a hard cut as a jump of tens of grey levels; ``d_8`` sees a gradual transition,
which spreads its change over many frames, as the drift across 8 of them (halved, so that the
drift of slow camera motion or a walker, which grows with the lag while grain does not, stays
under the threshold). Window ``w``, which scores frames ``[50 w, 50 w + 50)``, is evaluated
when any frame within ``margin`` of those has ``c >= threshold``; the others are skipped and
their frames are left unscored (NaN), which the cut rule reads as "no transition".

The defaults are set from the reference predictions of every test video (``bench/segmentation.md``
has the table; ``tests/test_gate.py`` re-checks it):

- **threshold 2.5 grey levels.** The quietest frame within 2 frames of any frame the network
  scores above 0.05 (ten times below the cut threshold) has ``c = 2.85`` (a 3 s dissolve the
  network scores 0.23 at most; frames it calls a cut, > 0.5, have ``c >= 4.7``), while the fixed
  grainy camera of ``vtest.avi`` never exceeds 1.6.
- **margin 5 frames**, more than twice the 2 frames the evidence needed. The margin matters
  most at hard cuts: the network marks the last frame *before* the cut, while the change shows
  on the first frame after it, which may belong to the next window.

The gate depends only on frames, never on the video's frame rate or length, so a frame's
verdict is the same in a streamed and in a whole-array run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marc.memory.core.config import GATE_THRESHOLD

BLOCK = 9
"""Pixels per side of the blocks averaged before comparing: 48x27 -> 5x3 blocks (the last 3
columns are left out)."""

LAG = 8
"""Frames between the two compared for gradual transitions."""

THRESHOLD = GATE_THRESHOLD
"""The default gate threshold, grey levels (see the module docstring for the evidence); the
settings' default too, so it is defined in :mod:`marc.memory.core.config`."""

MARGIN = 5
"""The default margin, frames."""


def block_means(frames: np.ndarray) -> np.ndarray:
    """float32 ``[T, 3, 5, 3]``: ``frames`` (uint8 ``[T, 27, 48, 3]``) averaged over 9x9 blocks."""
    T, H, W, C = frames.shape
    h, w = H // BLOCK, W // BLOCK
    x = frames[:, : h * BLOCK, : w * BLOCK].astype(np.float32)
    return x.reshape(T, h, BLOCK, w, BLOCK, C).mean(axis=(2, 4))


def change(blocks: np.ndarray, start: int = 0) -> np.ndarray:
    """The change ``c[t]`` of every frame of ``blocks[start:]``, given the earlier ones.

    Args:
        blocks: float32 ``[N, 3, 5, 3]`` block means of consecutive frames; ``blocks[:start]`` are
            context (the up to :data:`LAG` frames before the ones to score).
        start: index in ``blocks`` of the first frame to score; its global frame number is
            ``start`` too when ``blocks`` starts at frame 0, so frames with fewer than ``k``
            predecessors get ``d_k = 0``.

    Returns:
        float32 ``[N - start]``.
    """
    n = len(blocks)
    out = np.zeros(n - start, np.float32)
    for k, weight in ((1, 1.0), (LAG, 0.5)):
        a = max(start, k)
        if a < n:
            d = np.abs(blocks[a:] - blocks[a - k : n - k]).mean(axis=(1, 2, 3)) * weight
            np.maximum(out[a - start :], d, out=out[a - start :])
    return out


@dataclass(frozen=True)
class ChangeGate:
    """Which TransNetV2 windows need the network (see the module docstring).

    Args:
        threshold: change ``c`` (grey levels) at or above which a frame may be a transition.
        margin: frames either side of a window's scored frames that also wake it.
    """

    threshold: float = THRESHOLD
    margin: int = MARGIN

    def __post_init__(self) -> None:
        if not self.threshold >= 0:
            raise ValueError(f"gate threshold must be >= 0, got {self.threshold!r}")
        if not 0 <= self.margin <= 25:
            raise ValueError(f"gate margin must be in [0, 25] frames, got {self.margin!r}")

    def wakes(self, c: np.ndarray, window: int, offset: int = 0) -> bool:
        """Whether window ``window`` must be evaluated.

        Args:
            c: float ``[N]`` changes of frames ``offset .. offset + N - 1`` (those that exist of
                ``[50 w - margin, 50 w + 50 + margin)`` must be included).
            window: the window number ``w``.
            offset: global frame number of ``c[0]``.
        """
        a = max(50 * window - self.margin - offset, 0)
        b = max(50 * window + 50 + self.margin - offset, 0)
        part = c[a:b]
        return bool(len(part) and part.max() >= self.threshold)

    def windows(self, frames: np.ndarray) -> np.ndarray:
        """bool ``[ceil(T / 50)]``: the windows of ``frames`` (uint8 ``[T, 27, 48, 3]``) to run."""
        c = change(block_means(frames))
        n = -(-len(frames) // 50)
        return np.array([self.wakes(c, w) for w in range(n)], dtype=bool)
