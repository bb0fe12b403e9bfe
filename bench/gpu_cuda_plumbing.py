"""The TensorRT backend's CUDA plumbing on a real GPU, without TensorRT: numpy + pycuda only.

    pip install pycuda            # builds against /usr/local/cuda
    python bench/gpu_cuda_plumbing.py [--height 512 --width 1024 --max-batch 4 --repeats 5] [--out result.json]

Checks, with `bisegunet_ros.backends.tensorrt.cuda_context.CudaContext` (the code the backend
uses), what the contract doubles stand in for in the test suite:
1. the retained primary context is not left current on the thread that made it;
2. page-locked host buffers and device buffers for the largest batch, made with it pushed;
3. from a worker thread: N = 1..max_batch frames copied host->device->host asynchronously on
   one stream, only N frames each way (the rest of the output buffer keeps its sentinel), data
   intact, and no context left current on the worker afterwards;
4. on a thread with no current context: which driver calls fail (an allocation; a copy on the
   default stream; a copy on the backend's own stream, then checked for data), recorded as
   `no_context_calls`, and that `driver_errors` turns each such LogicError into CudaError naming
   the thread. The first GPU run (H200, CUDA 13.0 driver) showed that a copy on an explicit stream
   does not need a current context (the stream carries the context it was made in), so the
   check is on the calls that fail, not on one assumed to.
Also times the N-frame round trip (median, min, max over --repeats). Prints one JSON summary;
exit status 0 only when every check passed.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout, no install needed

from bisegunet_ros.backends.tensorrt.cuda_context import CudaContext, CudaError, driver_errors  # noqa: E402


def on_thread(work, name: str):
    """Run `work()` on a new thread; return its result or raise its exception here."""
    box = {}

    def run():
        try:
            box["result"] = work()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    import pycuda
    import pycuda.driver as cuda

    checks, timings = {}, {}
    context = CudaContext(0)
    checks["no_context_left_on_main_after_init"] = cuda.Context.get_current() is None
    frame_shape = (args.height, args.width, 3)
    with context.current("allocating buffers"):
        host_in = cuda.pagelocked_empty((args.max_batch, *frame_shape), np.uint8)
        host_out = cuda.pagelocked_empty((args.max_batch, *frame_shape), np.uint8)
        device = cuda.mem_alloc(host_in.nbytes)
        stream = cuda.Stream()
    frames = np.random.default_rng(0).integers(0, 256, host_in.shape, dtype=np.uint8)

    def round_trip(n: int) -> tuple[bool, bool, float]:
        with context.current(f"copying {n} frames"):
            host_out.fill(77)                               # sentinel: frames beyond N must keep it
            t0 = time.perf_counter()
            host_in[:n] = frames[:n]
            cuda.memcpy_htod_async(device, host_in[:n], stream)
            cuda.memcpy_dtoh_async(host_out[:n], device, stream)
            stream.synchronize()
            elapsed = time.perf_counter() - t0
        return (bool(np.array_equal(host_out[:n], frames[:n])), bool((host_out[n:] == 77).all()), elapsed)

    def worker() -> None:
        for n in range(1, args.max_batch + 1):
            results = [round_trip(n) for _ in range(max(args.repeats, 3))]
            checks[f"worker_copy_{n}_frames_intact"] = all(r[0] for r in results)
            checks[f"worker_copy_{n}_frames_only"] = all(r[1] for r in results)
            times_ms = np.array([r[2] for r in results]) * 1e3
            timings[f"{n}_frames_ms"] = {"median": round(float(np.median(times_ms)), 3),
                                         "min": round(float(times_ms.min()), 3), "max": round(float(times_ms.max()), 3),
                                         "repeats": len(times_ms)}
        checks["no_context_left_on_worker_after_calls"] = cuda.Context.get_current() is None

    on_thread(worker, "segmentation")

    def without_context(call) -> str:
        """`call()` on a new thread that has no current context: "ok" or the CudaError's message."""
        def probe() -> str:
            try:
                with driver_errors("a call without a context"):
                    call()
            except CudaError as exc:
                return str(exc)
            return "ok"

        return on_thread(probe, "no-context")

    def own_stream_copy() -> None:
        host_in[:1] = frames[1:2]
        cuda.memcpy_htod_async(device, host_in[:1], stream)
        stream.synchronize()

    calls = {"mem_alloc": without_context(lambda: cuda.mem_alloc(16)),
             "memcpy_htod_async_default_stream": without_context(lambda: cuda.memcpy_htod_async(device, host_in[:1])),
             "memcpy_htod_async_own_stream": without_context(own_stream_copy)}
    if calls["memcpy_htod_async_own_stream"] == "ok":            # did the copy without a context arrive?
        with context.current("reading back the copy made without a context"):
            cuda.memcpy_dtoh(host_out[:1], device)
        calls["own_stream_copy_arrived"] = bool(np.array_equal(host_out[:1], frames[1:2]))
        checks["no_context_stream_copy_that_ran_arrived"] = calls["own_stream_copy_arrived"]
    failed = [message for message in calls.values() if isinstance(message, str) and message != "ok"]
    checks["no_context_failures_are_clear_errors"] = bool(failed) and all(
        "no CUDA context is current on thread 'no-context'" in message for message in failed)

    with context.current("freeing buffers"):
        device.free()
    context.close()
    summary = {
        "passed": all(checks.values()), "checks": checks, "round_trip": timings, "no_context_calls": calls,
        "frame_shape": list(frame_shape), "machine": {
            "gpu": context.name, "compute_capability": context.compute_capability,
            "cuda_driver": cuda.get_driver_version(), "pycuda": pycuda.VERSION_TEXT,
            "numpy": np.__version__, "python": platform.python_version(), "os": platform.platform()},
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
