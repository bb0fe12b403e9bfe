"""The one summary of repeated measurements every bench reports: median, min-max and the values."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def spread(values: Iterable[float]) -> dict:
    """Median and min-max of repetitions (processes, rounds), with the values themselves."""
    v = [float(x) for x in values]
    return {"median": float(np.median(v)), "min": min(v), "max": max(v), "values": v}
