"""How many of a camera's frames reach the node: arrival rate against the rate the header stamps imply.

A best-effort camera stream loses frames in transport without any error (Fast DDS defaults with
large images: docs/node.md). The sender's rate shows in the stamps of the frames that did arrive:
their typical spacing is the sender's period even when frames in between are lost. No ROS imports.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

WINDOW_S = 5.0
PERIOD_PERCENTILE = 10  # of stamp spacings: the sender's period, robust to lost frames and a little jitter


@dataclass(frozen=True)
class StreamStats:
    received_hz: float   # frames that arrived per second (arrival clock)
    stamped_hz: float    # the sender's rate implied by the stamps; 0 when unknown (fewer than 3 stamped frames)
    missing: float       # fraction of the frames the stamps imply that never arrived; 0 when unknown

    def as_values(self) -> dict[str, str]:
        return {"received_hz": f"{self.received_hz:.2f}", "stamped_hz": f"{self.stamped_hz:.2f}",
                "missing_percent": f"{100 * self.missing:.1f}"}


class StreamRate:
    """Arrival times and header stamps (seconds) of the last WINDOW_S seconds of one camera."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self._frames: deque[tuple[float, float]] = deque()

    def add(self, arrival_s: float, stamp_s: float) -> None:
        if self._frames and stamp_s < self._frames[-1][1]:
            self._frames.clear()  # the sender's clock went back (a bag replayed again): start over
        self._frames.append((arrival_s, stamp_s))
        self._forget(arrival_s)

    def stats(self, now_s: float) -> StreamStats:
        self._forget(now_s)
        if not self._frames:
            return StreamStats(0.0, 0.0, 0.0)
        arrivals, stamps = np.asarray(self._frames).T
        span = arrivals[-1] - arrivals[0]
        received_hz = (len(arrivals) - 1) / span if span > 0 else 0.0
        spacings = np.diff(stamps)
        spacings = spacings[spacings > 0]
        if len(spacings) < 2:
            return StreamStats(received_hz, 0.0, 0.0)
        period = float(np.percentile(spacings, PERIOD_PERCENTILE))
        expected = round((stamps[-1] - stamps[0]) / period) + 1
        distinct = len(spacings) + 1
        return StreamStats(received_hz, 1.0 / period, max(0.0, 1.0 - distinct / expected))

    def _forget(self, now_s: float) -> None:
        while self._frames and now_s - self._frames[0][0] > self.window_s:
            self._frames.popleft()
