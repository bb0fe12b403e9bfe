"""The segmentation node's bookkeeping, without ROS: newest-frame mailbox, counters, statistics.

Subscription callbacks, the worker thread and the diagnostics timer run on different threads
and all touch this state; every access goes through one lock, and readers get immutable
snapshots, so nothing iterates a deque that another thread appends to. Each camera keeps only
its newest frame: a frame replaced before the worker took it is counted as dropped, never queued.

Every frame received is counted once more when its fate is known, so that at every snapshot
received = processed + dropped + rejected + failed + skipped + waiting, where waiting (0 to 2) is
the frame in the mailbox and the one the worker has taken and not yet settled (docs/node.md).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

import numpy as np

from .stream_rate import StreamRate, StreamStats


@dataclass(frozen=True)
class CameraSnapshot:
    """One camera's counters and statistics at one moment."""

    received: int
    processed: int
    dropped: int            # replaced by a newer frame before inference
    rejected: int           # bad input
    failed: int             # inference failed; nothing was published for it
    skipped: int            # taken while no output had a subscriber: not segmented
    waiting: int            # received, not yet one of the above: in the mailbox or in the worker (0-2)
    fps: float              # frames processed per second, recently (0 once none for fps_window_s)
    latency_p50_ms: float
    latency_p99_ms: float
    seconds_since_frame: float
    failing: bool           # the camera's most recent inference failed
    last_error: str         # the most recent inference error ("" if none yet)
    outputs: tuple[str, ...]
    stream: StreamStats     # arrival rate against the sender's rate from the stamps (transport loss)


@dataclass
class _Camera:
    pending: object = None
    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    taken: int = 0          # frames of this camera the worker took that no record_* has settled yet
    failing: bool = False
    last_error: str = ""
    outputs: tuple[str, ...] = ()
    last_frame: float = 0.0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=300))
    done_at: deque = field(default_factory=lambda: deque(maxlen=300))
    stream: StreamRate = field(default_factory=StreamRate)


class NodeStats:
    """Mailbox and statistics for the cameras named by `cameras` (any hashable keys).

    `clock` is injectable so the statistics can be tested without waiting; `fps_window_s` is how
    far back the frame rate looks.
    """

    def __init__(self, cameras: Iterable[Hashable], fps_window_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._window = fps_window_s
        self._cameras = {name: _Camera(last_frame=clock()) for name in cameras}
        self._wake = threading.Condition()
        self._closed = False

    # Mailbox: callbacks offer, the worker takes.

    def offer(self, camera: Hashable, frame: object, stamp_s: float | None = None) -> None:
        """Keep `frame` as the camera's newest; a frame still waiting is dropped.

        `stamp_s` is the frame's header stamp in seconds, for the transport-loss statistics."""
        with self._wake:
            state = self._cameras[camera]
            if state.pending is not None:
                state.dropped += 1
            state.pending = frame
            state.received += 1
            state.last_frame = self._clock()
            if stamp_s is not None:
                state.stream.add(state.last_frame, stamp_s)
            self._wake.notify()

    def take(self, timeout: float | None = None) -> list[tuple[Hashable, object]] | None:
        """Wait for frames and take every camera's waiting one; None once closed ([] on timeout)."""
        with self._wake:
            self._wake.wait_for(lambda: self._closed or any(c.pending is not None for c in self._cameras.values()),
                                timeout)
            if self._closed:
                return None
            taken = [(name, c.pending) for name, c in self._cameras.items() if c.pending is not None]
            for name, _ in taken:
                self._cameras[name].pending = None
                self._cameras[name].taken += 1
            return taken

    def close(self) -> None:
        """Wake the worker for good: `take` returns None from now on."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    # What happened to the frames taken: each record_* settles the camera's frame that the worker took
    # and counts nothing for a camera whose frame is settled already (a failure after some were counted).

    def _settle(self, camera: Hashable) -> _Camera | None:
        state = self._cameras[camera]
        if not state.taken:
            return None
        state.taken -= 1
        return state

    def set_outputs(self, camera: Hashable, outputs: tuple[str, ...]) -> None:
        with self._wake:
            self._cameras[camera].outputs = tuple(outputs)

    def record_rejected(self, camera: Hashable) -> None:
        with self._wake:
            if state := self._settle(camera):
                state.rejected += 1

    def record_skipped(self, camera: Hashable) -> None:
        with self._wake:
            if state := self._settle(camera):
                state.skipped += 1

    def record_processed(self, camera: Hashable, latency_ms: float) -> None:
        with self._wake:
            if not (state := self._settle(camera)):
                return
            state.processed += 1
            state.failing = False
            state.latencies_ms.append(latency_ms)
            state.done_at.append(self._clock())

    def record_failed(self, cameras: Iterable[Hashable], error: str) -> None:
        with self._wake:
            for camera in cameras:
                if not (state := self._settle(camera)):
                    continue
                state.failed += 1
                state.failing = True
                state.last_error = error

    def snapshot(self, camera: Hashable) -> CameraSnapshot:
        """Counters and statistics of `camera` now (a copy, safe to read anywhere)."""
        with self._wake:
            state = self._cameras[camera]
            now = self._clock()
            latencies = np.asarray(state.latencies_ms) if state.latencies_ms else np.zeros(1)
            return CameraSnapshot(
                received=state.received, processed=state.processed, dropped=state.dropped,
                rejected=state.rejected, failed=state.failed, skipped=state.skipped,
                waiting=(state.pending is not None) + state.taken, fps=self._fps(state.done_at, now),
                latency_p50_ms=float(np.percentile(latencies, 50)), latency_p99_ms=float(np.percentile(latencies, 99)),
                seconds_since_frame=now - state.last_frame, failing=state.failing, last_error=state.last_error,
                outputs=state.outputs, stream=state.stream.stats(now))

    def _fps(self, done_at: deque, now: float) -> float:
        """Frames per second over those done within the window, measured from the last one done before
        it when there is one, so that a rate below one frame per window still shows; 0 when none is."""
        times = list(done_at)
        recent = sum(1 for t in times if now - t <= self._window)
        if recent == 0 or len(times) < 2:
            return 0.0
        frames, since = (recent, times[-recent - 1]) if recent < len(times) else (recent - 1, times[0])
        return frames / (times[-1] - since) if times[-1] > since else 0.0
