"""Decode a video once for the whole ingest: TransNetV2 frames and encoder samples in one pass.

:func:`decode` decodes with exactly one ffmpeg process per file (after a packet-copying scan
of the frames' times, :mod:`marc.memory.sparse`, which decodes nothing). Its filter graph makes
the video constant-rate (frame ``i`` is at ``i / fps`` seconds), splits it, and writes two raw
RGB streams at once, read concurrently by two threads:

- ``small``: every frame squashed to 48x27, what TransNetV2 consumes;
- ``samples``: the frames nearest to ``k / sample_fps`` seconds, resized so the short side is
  ``image_size`` and centre-cropped to a square (CLIP's ``Resize`` + ``CenterCrop``), what the
  image encoder consumes.

Times are seconds on the file's timeline (presentation time less the container's start time, what
``-ss`` seeks to): frame ``i`` of ``small`` is the source frame on screen at ``i / fps``, by the
rule :mod:`marc.memory.frames` uses to read events back, so an event's ``start_s`` names the same
frame in both. A stream larger than ``spill_bytes`` goes to a
memory-mapped temp file instead of RAM. With ``on_small``, the small frames are not kept at all:
each piece is handed to the callback as ffmpeg produces it (the ingest feeds them straight into
a :class:`~marc.memory.segment.SegmentStream`), so segmentation runs while ffmpeg decodes, on the
other core, and the memory it takes does not grow with the video's length; a slow consumer
simply makes ffmpeg wait on the pipe. Probing (:func:`probe`, :class:`VideoInfo`) lives in
:mod:`marc.memory.probe` and is re-exported here.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import ffmpeg  # ffmpeg-python: builds the filter graph; we run the process ourselves
import numpy as np

from marc.memory.core.errors import MediaError
from marc.memory.frames import at_frame_filters
from marc.memory.probe import (
    SNIFF_BYTES,
    VideoInfo,
    exact_rate,
    ffmpeg_command,
    ffmpeg_exe,
    ffmpeg_problem,
    ffmpeg_source,
    ffmpeg_url,
    looks_like_video,
    probe,
)
from marc.memory.sparse import Timeline, scan, timeline

__all__ = [
    "SNIFF_BYTES",
    "Decoded",
    "VideoInfo",
    "decode",
    "ffmpeg_exe",
    "ffmpeg_source",
    "looks_like_video",
    "probe",
    "sample_frames",
]

#: TransNetV2's input frame size, (height, width).
SMALL_HW = (27, 48)
#: Above this many bytes a decoded stream is written to a memory-mapped temp file instead of RAM.
SPILL_BYTES = 64 << 20
#: Name prefix of spill files (older versions left ``marc-frames-*.u8`` files behind on a crash;
#: :func:`clean_spill_files` removes them).
SPILL_PREFIX = "marc-frames-"
#: A decode that yields less than this share of the container duration (and misses more than
#: ``_TRUNCATED_MIN_S`` seconds) is *partial*: a recording cut short (power lost, copy stopped).
_TRUNCATED_SHARE, _TRUNCATED_MIN_S = 0.9, 1.0
#: Small frames handed to ``on_small`` at most at once (~1 MB); pieces go out as soon as 25
#: frames are there, so the consumer works while ffmpeg decodes.
PIECE_FRAMES = 250
#: Small frames ffmpeg may decode ahead of a busy ``on_small`` (~10 MB at 48x27): decoding goes on
#: while the network runs on a window, on the other core.
AHEAD_FRAMES = 2500
#: Stands for the input's URL in the graph ffmpeg-python builds.
_INPUT = "file:marc-input"
# Decoder threads. Ingest decodes a file before it segments and embeds it, so use the cores
# (2 vs 1 thread: ~1200 vs ~1000 frames/s on 640x360 H.264, 2 cores; "auto" was slower).
_THREADS = min(os.cpu_count() or 2, 8)


class _FrameSink:
    """Collects one raw frame stream: a growing RAM buffer, spilled to a memmap when large."""

    def __init__(
        self, frame_shape: tuple[int, ...], expect: int, spill_bytes: int, tmp_dir: Path | None
    ) -> None:
        self.shape = frame_shape
        self.frame_bytes = math.prod(frame_shape)
        self.spill_bytes, self.tmp_dir = spill_bytes, tmp_dir
        cap = min(max(expect, 16) * self.frame_bytes, spill_bytes)
        self.buf = np.empty(cap, np.uint8)
        self.n = 0
        self.file: BinaryIO | None = None
        self.error: BaseException | None = None

    def drain(self, src: BinaryIO) -> None:
        chunk = memoryview(bytearray(1 << 20))
        while k := src.readinto(chunk):
            self._append(chunk[:k])

    def _append(self, data: memoryview) -> None:
        end = self.n + len(data)
        if self.file is None and end > self.spill_bytes:
            if self.tmp_dir is not None:
                self.tmp_dir.mkdir(parents=True, exist_ok=True)
            # No name from the start (O_TMPFILE, else unlinked at once): only the descriptor
            # holds the space, so even kill -9 never leaves the file behind.
            self.file = tempfile.TemporaryFile(  # noqa: SIM115 - closed in array()
                dir=self.tmp_dir, prefix=SPILL_PREFIX, suffix=".u8"
            )
            self.file.write(self.buf[: self.n].data)
            self.buf = np.empty(0, np.uint8)
        if self.file is not None:
            self.file.write(data)
        else:
            if end > len(self.buf):
                self.buf = np.resize(self.buf, min(max(2 * len(self.buf), end), self.spill_bytes))
            self.buf[self.n : end] = np.frombuffer(data, np.uint8)
        self.n = end

    def array(self) -> np.ndarray:
        """The frames, ``uint8 [N, *frame_shape]`` (a copy-on-write memmap if spilled)."""
        count = self.n // self.frame_bytes
        if self.file is None:
            used = self.buf[: count * self.frame_bytes]
            if len(self.buf) > len(used) * 5 // 4:
                used = used.copy()  # give back the over-allocation
            return used.reshape(count, *self.shape)
        try:
            if count == 0:
                return np.empty((0, *self.shape), np.uint8)
            self.file.flush()
            # copy-on-write: writable like the in-RAM arrays (torch.from_numpy wants that); the
            # mapping keeps the pages until the array is dropped (Decoded.close)
            return np.memmap(self.file, np.uint8, "c", shape=(count, *self.shape))
        finally:
            self.file.close()


class _StreamSink:
    """Hands one raw frame stream to ``consume`` in whole frames, keeping none of them.

    ``consume`` runs on a thread of its own while this one keeps reading, so ffmpeg decodes up to
    ``ahead`` frames past a busy consumer (the network running on a window) instead of stalling on
    a full pipe; that bound keeps memory constant.
    """

    def __init__(
        self,
        frame_shape: tuple[int, ...],
        consume: Callable[[np.ndarray], None],
        ahead: int = AHEAD_FRAMES,
    ):
        self.shape, self.consume, self.ahead = frame_shape, consume, ahead
        self.frame_bytes = math.prod(frame_shape)
        self.n = 0  # frames handed over
        self.error: BaseException | None = None
        self._pending: deque[np.ndarray | None] = deque()
        self._queued = 0  # frames read but not yet consumed
        self._cond = threading.Condition()

    def drain(self, src: BinaryIO) -> None:
        worker = threading.Thread(target=self._consume_all, daemon=True)
        worker.start()
        try:
            self._read(src)
        finally:
            self._put(None)
            worker.join()
        if self.error is not None:
            raise self.error

    def _read(self, src: BinaryIO) -> None:
        chunk = bytearray(PIECE_FRAMES * self.frame_bytes)
        view, have = memoryview(chunk), 0
        read = getattr(src, "readinto1", src.readinto)  # a buffered reader would fill it all
        while self.error is None and (k := read(view[have:])):
            have += k
            whole = have - have % self.frame_bytes
            if whole and (have == len(chunk) or whole >= self.frame_bytes * 25):
                self._hand(chunk, whole)
                chunk[: have - whole] = chunk[whole:have]
                have -= whole
        if self.error is None and have >= self.frame_bytes:
            self._hand(chunk, have - have % self.frame_bytes)

    def _hand(self, chunk: bytearray, nbytes: int) -> None:
        self._put(np.frombuffer(chunk, np.uint8, nbytes).reshape(-1, *self.shape).copy())

    def _put(self, frames: np.ndarray | None) -> None:
        with self._cond:
            if frames is not None:  # wait for room, unless nothing is queued (a piece always fits)
                while self._queued and self._queued + len(frames) > self.ahead:
                    if self.error is not None:
                        return
                    self._cond.wait()
                self._queued += len(frames)
            self._pending.append(frames)
            self._cond.notify_all()

    def _consume_all(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                frames = self._pending.popleft()
            if frames is None:
                return
            if self.error is None:
                try:
                    self.consume(frames)
                    self.n += len(frames)
                except BaseException as e:  # raised by drain(), in the reading thread
                    self.error = e
            with self._cond:
                self._queued -= len(frames)
                self._cond.notify_all()

    def array(self) -> np.ndarray:
        return np.empty((0, *self.shape), np.uint8)


@dataclass(eq=False)
class Decoded:
    """One decoded video, ready for segmentation and embedding.

    Attributes:
        info: the probe this decode used.
        fps: the constant frame rate of ``small``: frame ``i`` is at ``i / fps`` seconds.
        small: ``uint8 [T, 27, 48, 3]`` RGB, every frame (TransNetV2's input); empty when
            :func:`decode` handed them to ``on_small`` instead.
        samples: ``uint8 [S, image_size, image_size, 3]`` RGB encoder frames, ``sample_fps`` a
            second (at least one); an ``np.memmap`` for long videos (``spill_bytes``).
        sample_times: ``float64 [S]`` seconds of each sample on the file's timeline, increasing.
        frames: T, the number of decoded frames.
        timeline: for a file with long pauses between frames, the compact timeline ``small``
            and the sample indices are on (frame ``i`` at ``timeline.to_file(i / fps)``);
            ``None``: frame ``i`` is at ``i / fps``. See :mod:`marc.memory.sparse`.
        partial: the decode stopped far short of the container's duration (``info.duration_s``):
            the file was cut off (a recorder lost power) and only ``duration_s`` of it decodes.
    """

    info: VideoInfo
    fps: float
    small: np.ndarray
    samples: np.ndarray
    sample_times: np.ndarray
    frames: int
    timeline: Timeline | None = None
    partial: bool = False

    @property
    def duration_s(self) -> float:
        """Decoded duration ``T / fps`` on the file's timeline (may differ slightly from the
        container's)."""
        if self.timeline is not None:
            return float(self.timeline.to_file(self.frames / self.fps))
        return self.frames / self.fps

    def frame_at(self, t: float) -> np.ndarray:
        """The sample nearest to ``t`` seconds, ``uint8 [image_size, image_size, 3]``."""
        times = self.sample_times
        i = int(np.searchsorted(times, t))
        if i == len(times) or (i > 0 and t - times[i - 1] <= times[i] - t):
            i -= 1
        return self.samples[i]

    def close(self) -> None:
        """Drop the frame arrays (and with them any memory-mapped spill file)."""
        self.small = self.small[:0].copy()
        self.samples = np.empty((0, *self.samples.shape[1:]), np.uint8)
        self.sample_times = self.sample_times[:0]

    def __enter__(self) -> Decoded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_spill_files(tmp_dir: Path) -> int:
    """Delete spill files that older versions left in ``tmp_dir`` when killed; bytes freed.

    Spill files made now have no name (see :class:`_FrameSink`), so a named one is always stale.
    """
    freed = 0
    for f in Path(tmp_dir).glob(f"{SPILL_PREFIX}*.u8"):
        try:
            size = f.stat().st_size
            f.unlink()
            freed += size
        except OSError:
            continue
    return freed


def temp_bytes(tmp_dir: Path) -> int:
    """Bytes of temporary files in ``tmp_dir``: those with a name, and (Linux) the nameless
    spill files that running decodes of this user hold open there."""
    tmp_dir = Path(tmp_dir)
    total = 0
    with contextlib.suppress(OSError):
        for f in tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                total += f.lstat().st_size if f.is_file() else 0
    prefix = str(tmp_dir.absolute()) + "/"
    seen: set[tuple[int, int]] = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(prefix):
                st = fd.stat()
                if st.st_nlink == 0 and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def _sample_step(fps: float, sample_fps: float) -> Fraction:
    """Frames per sample, ``P/Q``: sample ``k`` is frame ``round(k * P / Q)``."""
    return exact_rate(fps) / Fraction(sample_fps).limit_denominator(1000)


def sample_frames(frames: int, fps: float, sample_fps: float) -> np.ndarray:
    """Indices of the frames :func:`decode` samples: each frame nearest to ``k / sample_fps``.

    Frame ``n`` is taken iff some ``k`` has ``k * step`` in ``[n - 1/2, n + 1/2)``; frame 0 always.
    Exact integer arithmetic, mirrored by the ``select`` expression in the ffmpeg graph.

    >>> sample_frames(25, 25.0, 4.0).tolist()
    [0, 6, 13, 19]
    """
    step = _sample_step(fps, sample_fps)
    p, q = step.numerator, step.denominator
    n = np.arange(frames, dtype=np.int64)
    # ceil(a / b) == -((-a) // b) for b > 0
    hits = -((-(2 * n + 1) * q) // (2 * p)) - (-((-(2 * n - 1) * q) // (2 * p)))
    return n[hits > 0]


def _command(
    info: VideoInfo,
    image_size: int,
    sample_fps: float,
    sample_fd: int,
    resize_mode: str = "shortest",
    interpolation: str = "bicubic",
    line: Timeline | None = None,
) -> list[str]:
    """ffmpeg argv: small frames to stdout, encoder samples to ``sample_fd``."""
    s = image_size
    step = _sample_step(info.fps, sample_fps)
    p, q = step.numerator, step.denominator
    # the file's name goes into the argv afterwards: ffmpeg-python hashes its graph as UTF-8
    # text, and a file name need not be UTF-8
    src = ffmpeg.input(_INPUT, threads=_THREADS)
    # frame i is the frame on screen at i / fps on the file's timeline, as event_frames() reads
    # events back (the first frame also fills the slots before it, in both outputs alike)
    step = 1 / exact_rate(info.fps)
    cfr = src[str(info.stream)]
    filters = at_frame_filters(0.0, step)
    if line is not None and (shorten := line.setpts()) is not None:
        filters.insert(1, shorten)  # after settb=AVTB: the pauses' lengths in microseconds
    for name, options in filters:
        cfr = cfr.filter(name, **options)
    cfr = cfr.split()
    small = cfr[0].filter("scale", SMALL_HW[1], SMALL_HW[0])
    # CLIP geometry: short side -> s (in display aspect, i.e. times the SAR), then centre crop.
    wide = "gt(iw*sar,ih)"
    sample = (
        cfr[1]
        # the frames of sample_frames(); double arithmetic is exact here (see its docstring)
        .filter("select", f"gt(ceil((2*n+1)*{q}/{2 * p})-ceil((2*n-1)*{q}/{2 * p}),0)")
    )
    if resize_mode == "squash":  # the whole frame, aspect ignored (PE-Core's own preprocessing)
        sample = sample.filter("scale", s, s, flags=interpolation)
    elif resize_mode == "shortest":
        sample = sample.filter(
            "scale",
            w=f"if({wide},max({s},round({s}*iw*sar/ih)),{s})",
            h=f"if({wide},{s},max({s},round({s}*ih/(iw*sar))))",
            flags=interpolation,
        ).filter("crop", s, s)
    else:
        raise ValueError(f"resize_mode must be 'shortest' or 'squash', got {resize_mode!r}")
    # passthrough: each filtered frame written once (the muxer's default for rawvideo is
    # constant rate, which pads or drops frames by their timestamps on its own)
    raw = {"format": "rawvideo", "pix_fmt": "rgb24", "fps_mode": "passthrough"}
    args = ffmpeg.merge_outputs(
        small.output("pipe:1", **raw), sample.output(f"pipe:{sample_fd}", **raw)
    ).get_args()
    return ffmpeg_command(*(ffmpeg_url(info.path) if a == _INPUT else a for a in args))


def decode(
    path: Path | str,
    *,
    image_size: int = 224,
    sample_fps: float = 4.0,
    info: VideoInfo | None = None,
    tmp_dir: Path | None = None,
    spill_bytes: int = SPILL_BYTES,
    resize_mode: str = "shortest",
    interpolation: str = "bicubic",
    on_small: Callable[[np.ndarray], None] | None = None,
) -> Decoded:
    """Decode ``path`` once into TransNetV2 frames and encoder samples (one ffmpeg process).

    Args:
        path: the video.
        image_size: side of the square encoder samples.
        sample_fps: encoder samples per second of video.
        info: the file's :func:`probe` result; probed here (one more, header-only ffmpeg run) if
            not given.
        tmp_dir: where spill files go (default: the system temp dir); created if needed.
        spill_bytes: a stream larger than this goes to a memory-mapped temp file, not RAM.
        resize_mode: ``"shortest"`` (short side to ``image_size``, centre crop: CLIP's
            geometry) or ``"squash"`` (whole frame scaled to a square: PE-Core's); pass the
            encoder's ``resize_mode`` so samples match what it was trained on.
        interpolation: ffmpeg scaler, ``"bicubic"`` or ``"bilinear"``.
        on_small: if given, called with each piece of small frames (uint8 ``[N, 27, 48, 3]``,
            in order, from a thread of its own) as ffmpeg produces them, ffmpeg decoding up to
            ``AHEAD_FRAMES`` past it; they are then not kept (``Decoded.small`` is empty). An
            exception it raises stops ffmpeg and is raised here (a :class:`MediaError` as is,
            anything else wrapped in one).

    A decode that stops far short of the container duration (a recording cut off by a power
    loss) is not an error: what decodes is returned, with ``partial`` set.

    Raises:
        MediaError: ffmpeg failed or no frame decoded.
    """
    path = Path(path)
    if info is None:
        info = probe(path)
    if not (sample_fps > 0 and image_size > 0):
        raise ValueError(f"need sample_fps > 0 and image_size > 0, got {sample_fps}, {image_size}")
    # a file whose frames lie far apart decodes on a compact timeline (marc.memory.sparse)
    line = timeline(info, scan(info))
    expect = math.ceil(info.duration_s * info.fps) + 2
    sinks = (
        _FrameSink((*SMALL_HW, 3), expect, spill_bytes, tmp_dir)
        if on_small is None
        else _StreamSink((*SMALL_HW, 3), on_small),
        _FrameSink(
            (image_size, image_size, 3),
            math.ceil(info.duration_s * sample_fps) + 2,
            spill_bytes,
            tmp_dir,
        ),
    )
    read_fd, w = os.pipe()
    write_fd = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 3)  # never 0-2, which Popen rewires
    os.close(w)
    try:
        cmd = _command(info, image_size, sample_fps, write_fd, resize_mode, interpolation, line)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    stderr: list[bytes] = []

    def run(sink: _FrameSink | _StreamSink, src: BinaryIO) -> None:
        try:
            with src:
                sink.drain(src)
        except BaseException as e:  # surfaced below; stop ffmpeg so the other pipe cannot block
            sink.error = e
            proc.kill()

    sample_pipe = open(read_fd, "rb", buffering=0)  # noqa: SIM115 - closed by its reader thread
    threads = [
        threading.Thread(target=run, args=(sinks[0], proc.stdout), daemon=True),
        threading.Thread(target=run, args=(sinks[1], sample_pipe), daemon=True),
        threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C: do not leave ffmpeg running
        proc.kill()
        raise
    rc = proc.wait()
    small, samples = sinks[0].array(), sinks[1].array()
    for sink in sinks:
        if isinstance(sink.error, MediaError):
            raise sink.error
        if sink.error is not None:
            raise MediaError(path, f"reading ffmpeg's output failed: {sink.error}") from sink.error
    n_small = len(small) if on_small is None else sinks[0].n
    problem = ffmpeg_problem(stderr[0].decode("utf-8", "replace"))
    if n_small == 0 or len(samples) == 0:
        raise MediaError(path, "no video frame could be decoded" + (f" ({problem})" if rc else ""))
    if rc != 0:
        raise MediaError(path, f"ffmpeg failed: {problem}")
    decoded_s = float(line.to_file(n_small / info.fps)) if line else n_small / info.fps
    missing = info.duration_s - decoded_s
    partial = decoded_s < _TRUNCATED_SHARE * info.duration_s and missing > _TRUNCATED_MIN_S
    index = sample_frames(n_small, info.fps, sample_fps)
    # Both outputs come from the same constant-rate frames, so the counts agree; should a last
    # sample still be missing (ffmpeg stopped between the two pipes), the shorter one wins: a
    # short tail is no reason to fail a file.
    kept = min(len(index), len(samples))
    index, samples = index[:kept], samples[:kept]
    times = index / info.fps if line is None else line.to_file(index / info.fps)
    return Decoded(
        info=info,
        fps=info.fps,
        small=small,
        samples=samples,
        sample_times=times,
        frames=n_small,
        timeline=line,
        partial=partial,
    )
