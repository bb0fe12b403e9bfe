"""bench/transport.py's mechanics: one cell, real rclpy in a publisher and a subscriber process."""
from __future__ import annotations

from bench import transport


def test_a_cell_counts_every_frame_of_two_reliable_cameras_over_shared_memory():
    shm = transport.PROFILES["shared memory (config/fastdds_shm.xml)"]
    result = transport.cell(shm, "reliable", 2, 10, 0.5)
    assert (result["published"], result["received"], result["delivered"]) == (10, 10, 1.0)
    assert 0 < result["latency_ms"]["median"] <= result["latency_ms"]["p90"] <= result["latency_ms"]["max"]
