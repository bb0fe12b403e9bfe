"""ONNX Runtime's profiler on one graph: where one run's time goes, by node and by op type.

ONNX Runtime names the nodes of its optimised graph after the ones they came from where it can
(`uint8_io/argmax`), and after the rewrite otherwise (`Conv_token_58`, `ReorderOutput_token_3`),
so the export's head and tail (`uint8_io/` nodes) can be told from the network; layout reorders
it inserts count with the network.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from bisegunet_ros.backends.onnxruntime_backend import inference_session, session_options


class KernelTime(NamedTuple):
    node: str
    op: str
    ms: float


def kernel_times(model: bytes | str, feed: dict, threads: int, tmp: Path,
                 int8_target: str | None = None) -> list[KernelTime]:
    """Every kernel of the second of two runs (the first warms up), in a session as the backend makes it
    (`int8_target`: the model's, ModelInfo.int8_target)."""
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp / "profile")
    session = inference_session(model, options, int8_target)
    session.run(None, feed)
    session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    last_start = runs[-1]["ts"] if runs else 0
    return [KernelTime(e["name"].removesuffix("_kernel_time"), e["args"]["op_name"], e["dur"] / 1e3) for e in events
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= last_start]


def ms_by(times: Iterable[KernelTime], key: Callable[[KernelTime], str]) -> dict[str, float]:
    """Summed ms per key, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for t in times:
        totals[key(t)] += t.ms
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def by_op(t: KernelTime) -> str:
    return t.op
