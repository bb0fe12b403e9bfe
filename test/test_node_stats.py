"""The node's ROS-free bookkeeping: newest-frame mailbox, counters, fps and latency percentiles."""
from __future__ import annotations

import random
import threading

import pytest

from bisegunet_ros.node_stats import NodeStats


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_mailbox_keeps_only_the_newest_frame_and_counts_the_dropped():
    stats = NodeStats(["front", "rear"])
    for frame in ("f1", "f2", "f3"):
        stats.offer("front", frame)
    stats.offer("rear", "r1")
    assert sorted(stats.take(timeout=0)) == [("front", "f3"), ("rear", "r1")]
    assert stats.take(timeout=0) == []
    front = stats.snapshot("front")
    assert (front.received, front.dropped) == (3, 2)


def test_take_waits_for_a_frame_and_close_ends_it():
    stats = NodeStats(["cam"])
    got = []
    worker = threading.Thread(target=lambda: got.extend(iter(stats.take, None)))
    worker.start()
    stats.offer("cam", "a")
    stats.close()
    worker.join(10)
    assert not worker.is_alive() and stats.take() is None
    assert [f for batch in got for f in batch] in ([("cam", "a")], [])  # taken before or after close


def test_fps_and_percentiles_from_the_recorded_frames():
    clock = Clock()
    stats = NodeStats(["cam"], fps_window_s=5.0, clock=clock)
    for i in range(11):          # 10 intervals of 0.1 s
        stats.offer("cam", i)
        stats.take(timeout=0)
        stats.record_processed("cam", latency_ms=float(i + 1))
        clock.now += 0.1
    s = stats.snapshot("cam")
    assert s.fps == pytest.approx(10.0)
    assert s.latency_p50_ms == pytest.approx(6.0) and s.latency_p99_ms == pytest.approx(10.9)
    clock.now += 10.0            # outside the window: no rate, and the frames are old
    s = stats.snapshot("cam")
    assert s.fps == 0.0 and s.seconds_since_frame == pytest.approx(10.1)


def test_a_failure_is_counted_and_shown_until_the_next_success():
    stats = NodeStats(["front", "rear"])
    stats.offer("front", "f1")
    stats.take(timeout=0)
    stats.record_failed(["front"], "TensorRTError: execute_async_v3 failed")
    front = stats.snapshot("front")
    assert front.failing and front.failed == 1 and "execute_async_v3" in front.last_error
    assert not stats.snapshot("rear").failing
    stats.offer("front", "f2")
    stats.take(timeout=0)
    stats.record_processed("front", 5.0)
    front = stats.snapshot("front")
    assert not front.failing and front.failed == 1 and front.last_error  # the count and last error stay


def test_the_counters_add_up_at_every_snapshot():
    """received = processed + dropped + rejected + failed + skipped + waiting, whatever happens to the frames,
    including a failure reported for a batch in which some frames were counted already."""
    rng = random.Random(0)
    stats = NodeStats(["front", "rear"])
    for _ in range(500):
        for camera in ("front", "rear"):
            for _ in range(rng.randint(0, 2)):
                stats.offer(camera, "frame")
        taken = [camera for camera, _ in stats.take(timeout=0)]
        fates = [rng.choice(["processed", "rejected", "skipped", "failed"]) for _ in taken]
        for camera, fate in zip(taken, fates):
            if fate == "processed":
                stats.record_processed(camera, 1.0)
            elif fate != "failed":
                getattr(stats, f"record_{fate}")(camera)
        if "failed" in fates:
            stats.record_failed(taken, "error")   # the worker's catch-all: only the unsettled ones count
        for camera in ("front", "rear"):
            s = stats.snapshot(camera)
            assert s.received == s.processed + s.dropped + s.rejected + s.failed + s.skipped + s.waiting, s
            assert 0 <= s.waiting <= 2
    totals = [sum(getattr(stats.snapshot(c), k) for c in ("front", "rear"))
              for k in ("processed", "dropped", "rejected", "failed", "skipped")]
    assert all(totals), totals   # every path was taken


def test_fps_shows_a_rate_below_one_frame_per_window():
    clock = Clock()
    stats = NodeStats(["cam"], fps_window_s=5.0, clock=clock)
    for _ in range(4):           # one frame every 8 s: never two in a 5 s window
        stats.offer("cam", 0)
        stats.take(timeout=0)
        stats.record_processed("cam", 1.0)
        clock.now += 8.0
    clock.now -= 7.0             # 1 s after the last frame
    assert stats.snapshot("cam").fps == pytest.approx(1 / 8)


def test_snapshots_while_another_thread_records_never_fail():
    """The diagnostics timer reads while the worker appends (the old node's deque crash)."""
    stats = NodeStats(["cam"])
    stop = threading.Event()
    errors = []

    def record():
        while not stop.is_set():
            stats.offer("cam", 0)
            stats.take(timeout=0)
            stats.record_processed("cam", 1.0)

    writer = threading.Thread(target=record)
    writer.start()
    try:
        for _ in range(2000):
            try:
                stats.snapshot("cam")
            except RuntimeError as exc:  # "deque mutated during iteration"
                errors.append(exc)
    finally:
        stop.set()
        writer.join(10)
    assert not errors
    assert stats.snapshot("cam").processed > 0
