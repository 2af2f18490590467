"""Where activity starts and stops, for shots without cuts (fixed cameras, dashcams).

A surveillance camera films one endless shot, so TransNetV2 finds no cuts; what separates its
events is something starting to move and coming to rest. The cue is motion energy on the same
48x27 frames TransNetV2 reads:

    gray[t]   = BT.601 luma of frames[t]                          float32 [T, 27, 48]
    pair[i]   = mean |gray[i + lag] - gray[i]|                    float32 [T - lag]
    energy[t] = pair placed at the pair's centre frame, edges repeated, then a centred running
                median over ~0.5 s                                float32 [T]

and a two-threshold state machine over ``energy`` with a minimum dwell time:

    idle -> active when energy > high;  active -> idle when energy < low;  and no state change
    until the current state has lasted ``min_event_s`` (frame 0 starts the first state, active
    if the median energy of its first ``min_event_s`` is above ``high``).

The thresholds are set per video from its own noise floor (a low percentile of ``energy``: the
level the video sits at when nothing moves), so a grainy night camera and a clean synthetic
clip get comparable behaviour, with absolute margins so that a noise-free video, whose floor is
0, is not triggered by compression flicker. Boundaries are the frames where the state changes.

Everything but the state machine (one pass over ``T`` scalars) is vectorised numpy; the result
is a pure function of the frames and ``fps``. As a stream (:class:`ActivityStream`, what
segmentation runs) the pair differences are computed as frames arrive, 4 bytes a frame are kept,
and the median and the state machine run at the end.
"""

from __future__ import annotations

import numpy as np

from marc.memory.segment.detector import BoundaryDetector, BoundaryStream, check_fps, check_frames

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601 weights for R, G, B

LAG_S = 0.1
"""Time between the two frames compared. Slow motion (a person far away, at 25-30 fps) moves
well under one 48x27 pixel per frame, so consecutive frames barely differ; comparing frames
~0.1 s apart makes the signal grow with the lag while noise, independent per frame, does not.
At 10 fps this is consecutive frames. ``lag_s=0`` always compares consecutive frames."""

SMOOTH_S = 0.5
"""Running-median width. A median, not a mean: the keyframes of a static H.264 scene differ from
their neighbours by up to ~1 grey level for one or two frames ("pumping"), which a 0.5 s mean
would spread into a ~0.15 bump (the size of a walking person); a median drops any burst shorter
than a quarter second and moves a step by at most a frame or two, so boundaries land within
~0.25 s of the true onset."""

NOISE_PERCENTILE = 5.0
"""The noise floor is this percentile of the smoothed energy: what the video shows when nothing
moves, provided it is idle at least 5% of the time. Measured at 48x27: clean H.264 static scenes
0.00-0.05 grey levels; heavy sensor grain ~0.9 from a 768x576 source and ~1.8 from a 192x144
one (the downscale to 48x27 averages fewer pixels)."""

EDGE_S = 1.0
"""The first and last second are left out of the noise-floor estimate (when the video is longer
than 4 s): encoders start noisy and end quiet (x264 flushing a GOP), which would pull the
percentile away from the level the rest of the video sits at."""

HIGH_ABS, HIGH_REL = 0.15, 2.0
"""Enter ``active`` above ``max(floor + HIGH_ABS, floor * HIGH_REL)``. A person walking across a
fixed camera at 48x27 (a 2x5-pixel figure) adds ~0.15-0.25 grey levels, compression noise of a
clean static scene stays under ~0.05. Grainy footage compressed hard does not sit at a constant
floor: its noise level rises and decays with the H.264 GOP (seen up to 1.7x the floor on x264
``crf`` 28-35 of a vtest frame with ffmpeg ``noise=alls=10..20``), hence 2x. The cost: a single
small figure in very grainy footage (noise floor ~0.6) is missed."""

LOW_ABS, LOW_REL = 0.075, 1.4
"""Leave ``active`` below ``max(floor + LOW_ABS, floor * LOW_REL)``, roughly half-way between the
floor and ``high``, so energy hovering around one threshold cannot toggle the state (hysteresis)."""


def motion_energy(
    frames: np.ndarray,
    fps: float,
    *,
    lag_s: float = LAG_S,
    smooth_s: float = SMOOTH_S,
    chunk: int = 4096,
) -> np.ndarray:
    """Smoothed per-frame motion energy in grey levels (0-255 scale).

    Args:
        frames: uint8 ``[T, H, W, 3]`` RGB.
        fps: frame rate, to turn ``lag_s`` and ``smooth_s`` into frames.
        lag_s: time between the compared frames (at least one frame).
        smooth_s: width of the centred running median (at least one frame).
        chunk: frames converted to float at once (bounds memory for hour-long videos).

    Returns:
        float32 ``[T]``; all zeros when ``T <= lag``.
    """
    T = len(frames)
    lag = max(1, round(lag_s * fps))
    if lag >= T:
        return np.zeros(T, dtype=np.float32)
    pair = np.empty(T - lag, dtype=np.float32)  # pair[i] compares frames i and i + lag
    for a in range(0, T - lag, chunk):
        b = min(a + chunk, T - lag)
        pair[a:b] = pair_energy(luma(frames[a : b + lag]), lag)
    return smooth_energy(pair, T, fps, lag, smooth_s)


def luma(frames: np.ndarray) -> np.ndarray:
    """float32 ``[N, H, W]`` BT.601 luma of uint8 ``[N, H, W, 3]`` RGB."""
    return frames.astype(np.float32) @ LUMA


def pair_energy(gray: np.ndarray, lag: int) -> np.ndarray:
    """float32 ``[N - lag]``: mean ``|gray[i + lag] - gray[i]|`` of consecutive luma frames."""
    return np.abs(gray[lag:] - gray[:-lag]).mean(axis=(1, 2))


def smooth_energy(pair: np.ndarray, T: int, fps: float, lag: int, smooth_s: float) -> np.ndarray:
    """Per-frame energy ``[T]`` from the pair differences ``[T - lag]`` (see the module docs)."""
    if lag >= T:
        return np.zeros(T, dtype=np.float32)
    # place pair i at frame i + ceil(lag / 2) (for lag 1: the frame where the change shows)
    off = (lag + 1) // 2
    energy = np.pad(pair, (off, lag - off), mode="edge")  # [T]
    w = max(1, round(smooth_s * fps))
    padded = np.pad(energy, (w // 2, w - 1 - w // 2), mode="edge")  # [T + w - 1]
    windows = np.lib.stride_tricks.sliding_window_view(padded, w)  # [T, w] view, no copy
    return np.median(windows, axis=1).astype(np.float32)  # [T] centred median over w frames


class MotionEnergyStream:
    """:func:`motion_energy` over frames that arrive in pieces: the pair differences are
    computed as frames come (keeping only the last ``lag`` luma frames), the median at the end.
    The result equals :func:`motion_energy` of the whole array."""

    def __init__(self, fps: float, *, lag_s: float = LAG_S, smooth_s: float = SMOOTH_S) -> None:
        self.fps, self.smooth_s = check_fps(fps), smooth_s
        self.lag = max(1, round(lag_s * self.fps))
        self.gray = np.empty((0, 27, 48), np.float32)  # the last lag frames
        self.pairs: list[np.ndarray] = []
        self.n = 0

    def feed(self, frames: np.ndarray) -> None:
        gray = np.concatenate([self.gray, luma(frames)])
        if len(gray) > self.lag:
            self.pairs.append(pair_energy(gray, self.lag))
        self.gray = gray[-self.lag :]
        self.n += len(frames)

    def finish(self) -> np.ndarray:
        pair = np.concatenate(self.pairs) if self.pairs else np.zeros(0, np.float32)
        return smooth_energy(pair, self.n, self.fps, self.lag, self.smooth_s)


def thresholds(energy: np.ndarray, fps: float) -> tuple[float, float]:
    """``(high, low)`` for one video's smoothed energy ``[T]``, from its noise floor.

    A video that never rests (a dashcam that never stops) has no noise floor to see; its
    thresholds are then set by its own quietest moments, so it is split where its motion drops
    well below its usual level, or not at all.
    """
    edge = round(EDGE_S * fps)
    inner = energy[edge:-edge] if len(energy) > 4 * edge else energy
    floor = float(np.percentile(inner, NOISE_PERCENTILE)) if len(inner) else 0.0
    high = max(floor + HIGH_ABS, floor * HIGH_REL)
    low = max(floor + LOW_ABS, floor * LOW_REL)
    return high, low


def hysteresis(energy: np.ndarray, high: float, low: float, hold: int) -> np.ndarray:
    """Two-threshold state machine with a minimum dwell of ``hold`` frames per state.

    Args:
        energy: float ``[T]``.
        high: enter ``active`` when ``energy > high``.
        low: leave ``active`` when ``energy < low`` (``low <= high``).
        hold: frames a state must last before it may change. Frame 0 starts the first state:
            active if the median of ``energy[:hold]`` is above ``high`` (one frame would be
            at the mercy of the encoder's start-up, whose first frames are often noisier).

    Returns:
        bool ``[T]``: ``True`` where active.
    """
    assert low <= high, (low, high)
    T = len(energy)
    if T == 0:
        return np.zeros(0, dtype=bool)
    rising = (energy > high).tolist()  # [T] bool: would enter (lists: fast scalar access)
    falling = (energy < low).tolist()  # [T] bool: would leave
    first = state = bool(np.median(energy[: max(hold, 1)]) > high)
    since, changes = 0, []
    for t in range(max(hold, 1), T):
        if t - since >= hold and (falling[t] if state else rising[t]):
            state, since = not state, t
            changes.append(t)
    toggles = np.zeros(T, dtype=np.int64)
    toggles[changes] = 1
    return (np.cumsum(toggles) % 2 == 1) ^ first  # [T] bool


class ActivityDetector(BoundaryDetector):
    """Activity start/stop boundaries from motion energy (see the module docstring).

    Args:
        min_event_s: minimum time each state (active or idle) is held, so flicker cannot make
            events shorter than this; a state change closer than this to the end of the video
            is not reported either.
        lag_s: time between compared frames (:data:`LAG_S`).
        smooth_s: running-median width (:data:`SMOOTH_S`).
    """

    name = "activity"
    kind = "activity"

    def __init__(
        self, min_event_s: float = 2.0, *, lag_s: float = LAG_S, smooth_s: float = SMOOTH_S
    ) -> None:
        if not min_event_s >= 0:
            raise ValueError(f"min_event_s must be >= 0, got {min_event_s!r}")
        if not (lag_s >= 0 and smooth_s >= 0):
            raise ValueError(f"lag_s and smooth_s must be >= 0, got {lag_s!r}, {smooth_s!r}")
        self.min_event_s = float(min_event_s)
        self.lag_s = float(lag_s)
        self.smooth_s = float(smooth_s)

    def energy(self, frames: np.ndarray, fps: float) -> np.ndarray:
        """float32 ``[T]`` smoothed motion energy of ``frames`` (see :func:`motion_energy`)."""
        return motion_energy(
            check_frames(frames), check_fps(fps), lag_s=self.lag_s, smooth_s=self.smooth_s
        )

    def active(self, frames: np.ndarray, fps: float) -> np.ndarray:
        """bool ``[T]``: the activity state of every frame, consistent with :meth:`boundaries`."""
        fps = check_fps(fps)
        return self.active_from_energy(self.energy(frames, fps), fps)

    def active_from_energy(self, energy: np.ndarray, fps: float) -> np.ndarray:
        """bool ``[T]``: :meth:`active` from the video's motion ``energy`` (float32 ``[T]``)."""
        T = len(energy)
        hold = max(1, round(self.min_event_s * fps))
        state = hysteresis(energy, *thresholds(energy, fps), hold=hold)
        changes = np.flatnonzero(state[1:] != state[:-1]) + 1
        if len(changes) and T - changes[-1] < hold:  # too close to the end: keep the state
            state[changes[-1] :] = state[changes[-1] - 1]
        return state

    def boundaries_from_energy(self, energy: np.ndarray, fps: float) -> list[int]:
        """:meth:`boundaries` from the video's motion ``energy`` (e.g. a
        :class:`MotionEnergyStream`'s, with this detector's ``lag_s`` and ``smooth_s``)."""
        state = self.active_from_energy(energy, check_fps(fps))
        return (np.flatnonzero(state[1:] != state[:-1]) + 1).tolist()

    def energy_stream(self, fps: float) -> MotionEnergyStream:
        """A :class:`MotionEnergyStream` with this detector's settings."""
        return MotionEnergyStream(fps, lag_s=self.lag_s, smooth_s=self.smooth_s)

    def stream(self, fps: float) -> ActivityStream:
        """An :class:`ActivityStream`: frames where the activity state changes (the first
        frame of the new state), over frames that arrive in pieces."""
        return ActivityStream(self, fps)

    def __repr__(self) -> str:
        return f"ActivityDetector(min_event_s={self.min_event_s})"


class ActivityStream(BoundaryStream):
    """:class:`ActivityDetector` boundaries of frames that arrive in pieces: a
    :class:`MotionEnergyStream`, then :meth:`ActivityDetector.boundaries_from_energy`."""

    def __init__(self, detector: ActivityDetector, fps: float) -> None:
        self.detector, self.fps = detector, check_fps(fps)
        self.energy = detector.energy_stream(self.fps)

    def feed(self, frames: np.ndarray) -> None:
        """Add the next frames, uint8 ``[N, 27, 48, 3]``."""
        self.energy.feed(check_frames(frames))

    def finish(self) -> list[int]:
        """Frames where the activity state changes."""
        return self.detector.boundaries_from_energy(self.energy.finish(), self.fps)
