"""Node overhead: end-to-end latency through the node against the bare pipeline, at 512x1024.

    python -m bench.node [--model models/bisegunet_tiny.onnx] [--frames 40]

End-to-end = publish of an rgb8 frame to receipt of its label image, across processes, one frame
in flight at a time; measured with Fast DDS defaults and with config/fastdds_shm.xml. The bare
pipeline is the same decode + preprocess + inference + postprocess in one process, no ROS.
Writes bench/node.json and bench/node.md. DDS stays on localhost, on a domain of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.machine import describe, markdown_header, write_results

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 512, 1024
PROFILES = {"Fast DDS defaults (UDP)": None, "shared memory (config/fastdds_shm.xml)": ROOT / "config/fastdds_shm.xml"}


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def stats(values) -> dict:
    v = np.asarray(values)
    return {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "n": int(v.size)}


def bare(model: str, frames: int) -> dict:
    """The pipeline without ROS: wall time per stage, and process CPU time of inference."""
    from bisegunet_ros.backends import load_backend
    from bisegunet_ros.image_codec import decode_image
    from bisegunet_ros.pipeline import SegmentationPipeline

    pipeline = SegmentationPipeline(load_backend(model, "onnxruntime"))
    totals, inference, inference_cpu = [], [], []
    for i in range(frames + 5):
        data = frame(i).tobytes()
        t0 = time.perf_counter()
        rgb = decode_image("rgb8", WIDTH, HEIGHT, WIDTH * 3, 0, data)
        batch = pipeline.preprocess([rgb])
        c0, t1 = time.process_time(), time.perf_counter()
        logits = pipeline.backend.infer(batch)
        c1, t2 = time.process_time(), time.perf_counter()
        pipeline.postprocess(logits[0], rgb.shape[:2], False)
        if i >= 5:
            totals.append((time.perf_counter() - t0) * 1e3)
            inference.append((t2 - t1) * 1e3)
            inference_cpu.append((c1 - c0) * 1e3)
    return {"total_ms": stats(totals), "inference_ms": stats(inference), "inference_cpu_ms": stats(inference_cpu)}


def client(frames: int) -> dict:
    """Runs in a child process (so it loads the same DDS profile as the node): one frame in flight."""
    from sensor_msgs.msg import Image

    sys.path.insert(0, str(ROOT / "test"))
    from ros_client import RosClient

    node_pid = int(os.environ["BENCH_NODE_PID"])
    ros = RosClient("bench_node_client")
    labels = ros.subscribe("/camera/segmentation/label", Image)
    latencies = []
    for i in range(frames + 5):
        if i == 5:
            cpu_start = _cpu_seconds(node_pid)  # clock ticks are 10 ms: measure the whole run, not each frame
        msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=frame(i).tobytes())
        t0 = time.perf_counter()
        if ros.request("/camera/image", msg, labels, timeout=60, resend=30) is None:
            raise RuntimeError("the node did not answer")
        if i >= 5:
            latencies.append((time.perf_counter() - t0) * 1e3)
    cpu_per_frame = (_cpu_seconds(node_pid) - cpu_start) * 1e3 / frames
    ros.close()
    return {"end_to_end_ms": stats(latencies), "node_cpu_ms_per_frame": cpu_per_frame}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def through_node(model: str, frames: int, profile: Path | None) -> dict:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", str(random.randint(101, 200))))
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    node = subprocess.Popen([sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args", "-p",
                             f"model_path:={model}", "-p", "backend:=onnxruntime", "-p", "input_qos:=reliable"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        env["BENCH_NODE_PID"] = str(node.pid)
        out = subprocess.run([sys.executable, "-m", "bench.node", "--client", "--frames", str(frames)], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        node.terminate()
        node.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models/bisegunet_tiny.onnx"))
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        print(json.dumps(client(args.frames)))
        return 0
    machine = describe()
    result = {"machine": machine, "model": args.model, "input": [HEIGHT, WIDTH], "bare": bare(args.model, args.frames),
              "node": {name: through_node(args.model, args.frames, p) for name, p in PROFILES.items()}}
    bare_ms, infer_ms = result["bare"]["total_ms"]["median"], result["bare"]["inference_ms"]["median"]
    lines = markdown_header("Node overhead at 512x1024", "python -m bench.node", machine)
    lines += [f"Model `{Path(args.model).name}`; rgb8 input frames of {WIDTH}x{HEIGHT}, one frame in flight, "
              f"{args.frames} frames after 5 warm-up.", "",
              f"Bare pipeline (decode + preprocess + inference + postprocess, no ROS): median {bare_ms:.1f} ms "
              f"(inference alone {infer_ms:.1f} ms, p90 {result['bare']['inference_ms']['p90']:.1f} ms).", "",
              "| transport | end-to-end median ms | p90 ms | overhead over bare pipeline ms | overhead / bare inference "
              "| node CPU ms per frame | CPU outside inference ms per frame |", "|---|---|---|---|---|---|---|"]
    for name, r in result["node"].items():
        e2e, cpu = r["end_to_end_ms"], r["node_cpu_ms_per_frame"]
        overhead = e2e["median"] - bare_ms
        r["overhead_ms"] = overhead
        outside = cpu - result["bare"]["inference_cpu_ms"]["median"]
        lines.append(f"| {name} | {e2e['median']:.1f} | {e2e['p90']:.1f} | {overhead:.1f} | "
                     f"{100 * overhead / infer_ms:.0f} % | {cpu:.1f} | {outside:.1f} |")
    lines += ["", "Overhead = end-to-end median minus the bare pipeline median: publishing, DDS transport both "
              "ways, deserialisation, the node's threads and the label message. The goal is at most 10 % of "
              "bare inference.", ""]
    print(write_results(ROOT / "bench/node", result, "\n".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
