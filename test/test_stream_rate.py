"""StreamRate: the loss a best-effort transport hides shows as the gap between arrivals and stamps."""
from __future__ import annotations

import pytest

from bisegunet_ros.stream_rate import StreamRate


def feed(rate: StreamRate, stamps: list[float], delay: float = 0.02) -> float:
    """Frames that arrive `delay` after their stamp; returns the last arrival time."""
    for stamp in stamps:
        rate.add(stamp + delay, stamp)
    return stamps[-1] + delay


def test_a_complete_stream_has_no_missing_frames():
    rate = StreamRate()
    now = feed(rate, [100 + 0.1 * i for i in range(40)])
    stats = rate.stats(now)
    assert stats.stamped_hz == pytest.approx(10, rel=0.01)
    assert stats.received_hz == pytest.approx(10, rel=0.01)
    assert stats.missing == pytest.approx(0, abs=0.01)


def test_lost_frames_show_as_missing_while_the_stamped_rate_stays_the_senders():
    rate = StreamRate()
    kept = [100 + 0.1 * i for i in range(45) if i % 3 != 1]  # every third frame lost in transport
    stats = rate.stats(feed(rate, kept))
    assert stats.stamped_hz == pytest.approx(10, rel=0.01)
    assert stats.received_hz == pytest.approx(10 * 2 / 3, rel=0.05)
    assert stats.missing == pytest.approx(1 / 3, abs=0.03)


def test_heavy_loss_is_still_measured():
    rate = StreamRate()
    kept = [100 + 0.1 * i for i in range(48) if i % 4 == 0 or i in (9, 10, 21, 22, 33, 34)]  # 18 of 0..44

    stats = rate.stats(feed(rate, kept))
    assert stats.stamped_hz == pytest.approx(10, rel=0.01)
    assert stats.missing == pytest.approx(1 - 18 / 45, abs=0.01)


def test_old_frames_leave_the_window_and_unstamped_frames_give_no_estimate():
    rate = StreamRate(window_s=5.0)
    now = feed(rate, [100 + 0.1 * i for i in range(10)])
    assert rate.stats(now + 10).received_hz == 0.0
    for i in range(20):
        rate.add(200 + 0.1 * i, 0.0)  # a driver that leaves header.stamp empty
    stats = rate.stats(202)
    assert stats.stamped_hz == 0.0 and stats.missing == 0.0 and stats.received_hz == pytest.approx(10, rel=0.01)


def test_a_sender_clock_going_back_restarts_the_estimate():
    rate = StreamRate()
    feed(rate, [100 + 0.1 * i for i in range(20)])
    now = feed(rate, [50 + 0.1 * i for i in range(20)], delay=52.02)  # a bag replayed again
    assert rate.stats(now).missing == pytest.approx(0, abs=0.01)
