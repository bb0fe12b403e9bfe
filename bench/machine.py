"""What a benchmark ran on, how loaded the machine was, and how fast it multiplies matrices, for every bench/ report.

The load is recorded in one place for every bench: a snapshot when this module is imported (at the
top of every bench, before it measures anything) and another when the bench writes its results
(write_results): the load averages at both, and the other processes that used the CPU in between,
from /proc. A number measured next to busy processes says so beside itself.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimd",
              "asimddp", "i8mm")   # what decides ONNX Runtime's float and integer kernels (VNNI: u8s8 dot products)


def cpu_flags() -> list[str]:
    """The SIMD flags of SIMD_FLAGS this CPU reports (/proc/cpuinfo; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            present = next((set(line.split(":", 1)[1].split()) for line in f
                            if line.startswith(("flags", "Features"))), set())
    except OSError:
        return []
    return [flag for flag in SIMD_FLAGS if flag in present]
def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """pid -> (user + system clock ticks so far, command) of every process /proc shows."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, rest = stat.read_text().rsplit(")", 1)
            fields = rest.split()
            cmdline = " ".join((stat.parent / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
                               .split())
        except (OSError, ValueError):          # a process that ended while being read
            continue
        ticks[int(stat.parent.name)] = (int(fields[11]) + int(fields[12]), cmdline[:100] or comm.split("(", 1)[-1])
    return ticks


def load_snapshot() -> dict:
    """Load averages and every process's CPU ticks now."""
    return {"time": time.time(), "loadavg": list(os.getloadavg()), "ticks": _cpu_ticks()}


STARTED = load_snapshot()      # when the bench started: every bench imports this module first


def load_record(before: dict = STARTED, top: int = 5) -> dict:
    """The load at `before` and now, and the `top` other processes still running now (not this one) by CPU
    used in between, in percent of one core (a process started in between counts from zero)."""
    after = load_snapshot()
    seconds = max(after["time"] - before["time"], 1e-9)
    hz = os.sysconf("SC_CLK_TCK")
    used = [(pid, (ticks - before["ticks"].get(pid, (0, ""))[0]) / hz / seconds * 100, name)
            for pid, (ticks, name) in after["ticks"].items() if pid != os.getpid()]
    busy = sorted((u for u in used if u[1] > 0), key=lambda u: -u[1])[:top]
    return {"loadavg_before": before["loadavg"], "loadavg_after": after["loadavg"], "seconds": round(seconds, 1),
            "busy_others": [{"pid": pid, "cpu_percent": round(cpu, 1), "command": name} for pid, cpu, name in busy]}


def load_lines(load: dict) -> list[str]:
    """The load record as Markdown lines."""
    busy = "; ".join(f"{p['cpu_percent']:.0f} % `{p['command'][:60]}`" for p in load["busy_others"]) or "none"
    return [f"Machine load: load average (1, 5, 15 min) {' / '.join(f'{x:.2f}' for x in load['loadavg_before'])} "
            f"when the bench started, {' / '.join(f'{x:.2f}' for x in load['loadavg_after'])} when it wrote this "
            f"({load['seconds']:.0f} s later); other processes by CPU over that time (% of one core): {busy}.", ""]


def fp32_gemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Best-of-`repeats` FP32 GEMM throughput with numpy's BLAS (all cores), in GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def describe() -> dict:
    """Machine and software facts to print beside any number measured on it (GPU ones when torch sees one)."""
    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(), "numpy": np.__version__,
        "os": platform.platform(),
    }
    try:   # optional: a training-only machine (the GPU session) may lack onnxruntime
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                        cudnn=torch.backends.cudnn.version(), gpu_count=torch.cuda.device_count())
    except ImportError:
        pass
    return info


def markdown_header(title: str, command: str, machine: dict) -> list[str]:
    return [f"# {title}", "", f"Produced by `{command}` on {machine['date']}.", "",
            f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB"
            + (f", CPU flags {' '.join(machine['cpu_flags'])}" if machine.get("cpu_flags") else "")
            + (f", GPU {machine['gpu']} (CUDA {machine['cuda']}, cuDNN {machine['cudnn']})" if "gpu" in machine else "")
            + f"; Python {machine['python']}"
            + (f", onnxruntime {machine['onnxruntime']}" if "onnxruntime" in machine else "")
            + (f", torch {machine['torch']}" if "torch" in machine else "") + ".", ""]


def write_results(stem: Path, result: dict, markdown: str) -> str:
    """STEM.json and STEM.md, the two forms every benchmark leaves, with the machine's load from the
    bench's start to now (load_record) in both; returns the Markdown."""
    load = load_record()
    result = {**result, "machine": {**result.get("machine", {}), "load": load}}
    markdown = markdown.rstrip("\n") + "\n\n" + "\n".join(load_lines(load))
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    return markdown


def _as_text(value):
    """An argument as JSON can hold it: paths (alone or in a list) as text."""
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def write_run(stem: Path, module: str, argv: list[str] | None, args, results: list,
              markdown: Callable[[list, object, str, dict], str]) -> str:
    """write_results for a bench whose rows are `results`: the invocation, its arguments (less --out)
    and the machine beside them; `markdown(results, args, command, machine)` renders the table."""
    command = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
    config = {k: _as_text(v) for k, v in vars(args).items() if k != "out"}
    machine = describe()
    return write_results(stem, {"machine": machine, "config": config, "results": results},
                         markdown(results, args, command.strip(), machine))
