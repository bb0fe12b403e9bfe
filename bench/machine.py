"""What a benchmark ran on, and how fast this machine multiplies matrices, for every bench/ report."""
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
    """STEM.json and STEM.md, the two forms every benchmark leaves; returns the Markdown."""
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    return markdown


def write_run(stem: Path, module: str, argv: list[str] | None, args, results: list,
              markdown: Callable[[list, object, str, dict], str]) -> str:
    """write_results for a bench whose rows are `results`: the invocation, its arguments (less --out)
    and the machine beside them; `markdown(results, args, command, machine)` renders the table."""
    command = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
    config = {k: v for k, v in vars(args).items() if k != "out"}
    machine = describe()
    return write_results(stem, {"machine": machine, "config": config, "results": results},
                         markdown(results, args, command.strip(), machine))
