"""The vehicle team's benchmark: one command, one JSON (and Markdown) to report back (docs/orin.md).

    python3 -m bench.vehicle --model models/bisegunet_fast.onnx [--int8-model models/bisegunet_fast.int8.onnx] \
        [--cameras 1 2 4] --out vehicle_orin

Needs TensorRT 10, pycuda and a CUDA GPU (the Orin); anywhere else it refuses with one line naming
what is missing (exit 2) and measures nothing. It measures, for the shipped or any exported model:
- engine, per precision (fp16, fp32, int8 with --int8-model) and batch N in --cameras: the engine the
  node uses with N cameras (profile tuned for N, max batch N): its build time (or "reused" when the
  cache had it), the latency of one `infer` of N frames (uint8 frames in, labels and confidence
  out, host<->device copies included; median, p90 over --repeats after --warmup), and the GPU
  memory in use after loading it (pycuda's mem_get_info: on a Jetson, memory shared with the CPU);
- node, per camera count N in --cameras (unless --no-node): the segmentation node (backend
  tensorrt, --node-precision) in its own process, fed by one publisher per camera at --fps for
  --seconds: end-to-end latency (stamp at publish to label received) median and p90, labels per
  second per camera, and how many frames were published. DDS stays on loopback, on a domain of
  its own (never the car's), with the shared-memory profile (config/fastdds_shm.xml);
- machine: JetPack release (/etc/nv_tegra_release), power mode (`nvpmodel -q`), TensorRT, GPU.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import describe, markdown_header, write_results
from bisegunet_ros.backends.tensorrt.availability import unavailable_reason
from bisegunet_ros.dds_profile import profile_environment
from bisegunet_ros.model_info import ModelError, ModelInfo

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_shm.xml"
COMMAND = "python3 -m bench.vehicle"


def percentiles(values_ms: list[float]) -> dict:
    return {"median": round(float(np.median(values_ms)), 3), "p90": round(float(np.percentile(values_ms, 90)), 3),
            "count": len(values_ms)}


def vehicle_facts() -> dict:
    """JetPack release, power mode and TensorRT version, as far as this machine tells."""
    facts = {}
    release = Path("/etc/nv_tegra_release")
    facts["nv_tegra_release"] = release.read_text().splitlines()[0] if release.is_file() else None
    if shutil.which("nvpmodel"):
        done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True)
        facts["nvpmodel"] = " ".join(done.stdout.split()) or done.stderr.strip()
    import tensorrt

    facts["tensorrt"] = tensorrt.__version__
    return facts


def measure_engine(model: Path, precision: str, batch: int, args) -> dict:
    """Build (or reuse) the engine a node with `batch` cameras uses, then time `infer` of `batch` frames."""
    from bisegunet_ros.backends.tensorrt.backend import TensorRTBackend

    cached = {p.name for p in Path(args.engine_cache_dir).glob("*.engine")}
    t0 = time.perf_counter()
    backend = TensorRTBackend(model, precision, cameras=batch, max_batch=batch,
                              engine_cache_dir=args.engine_cache_dir)
    build_s = time.perf_counter() - t0
    try:
        with backend.cuda.current("measuring GPU memory") as cuda:
            free, total = cuda.mem_get_info()
        info = backend.info
        frames = np.random.default_rng(0).integers(0, 256, (batch, info.input_height, info.input_width, 3),
                                                   dtype=np.uint8)
        for _ in range(args.warmup):
            backend.infer(frames)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            backend.infer(frames)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        backend.close()
    reused = {p.name for p in Path(args.engine_cache_dir).glob("*.engine")} == cached
    return {"precision": precision, "batch": batch, "build_s": None if reused else round(build_s, 1),
            "engine": "reused from the cache" if reused else "built", "infer_ms": percentiles(times),
            "gpu_memory_used_mib": round((total - free) / 2**20, 1)}


def measure_node(model: Path, cameras: int, args) -> dict:
    """The node with `cameras` cameras fed at --fps each for --seconds; latency from the stamps it copies."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    names = [f"bench_cam{i}" for i in range(cameras)]
    cmd = [sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args"]
    for param in (f"model_path:={model.resolve()}", "backend:=tensorrt", f"precision:={args.node_precision}",
                  f"engine_cache_dir:={Path(args.engine_cache_dir).resolve()}", f"cameras:=[{', '.join(names)}]",
                  "publish_confidence:=false"):
        cmd += ["-p", param]
    info = ModelInfo.from_onnx(model)
    data = np.random.default_rng(1).integers(0, 256, (info.input_height, info.input_width, 3), np.uint8).tobytes()
    with tempfile.TemporaryDirectory() as cwd, open(Path(cwd) / "node.log", "w+") as log:
        node_process = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)  # the installed package
        context = Context()
        rclpy.init(context=context)
        node = rclpy.create_node(f"bench_vehicle_{os.getpid()}", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        latencies: dict[str, list[float]] = {name: [] for name in names}

        def received(name: str, msg: Image) -> None:
            sent_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            latencies[name].append((time.time_ns() - sent_ns) / 1e6)

        publishers = {name: node.create_publisher(Image, f"/{name}/image", qos_profile_sensor_data) for name in names}
        for name in names:
            node.create_subscription(Image, f"/{name}/segmentation/label", lambda msg, n=name: received(n, msg),
                                     QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

        def feed(seconds: float) -> int:
            published, period = 0, 1.0 / args.fps
            end = next_tick = time.monotonic()
            end += seconds
            while time.monotonic() < end and node_process.poll() is None:
                if time.monotonic() >= next_tick:
                    now = time.time_ns()
                    for name, publisher in publishers.items():
                        msg = Image(height=info.input_height, width=info.input_width, encoding="rgb8",
                                    step=info.input_width * 3, data=data)
                        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
                        msg.header.frame_id = name
                        publisher.publish(msg)
                    published += 1
                    next_tick += period
                executor.spin_once(timeout_sec=0.002)
            return published

        try:
            deadline = time.monotonic() + args.node_start_timeout
            while not all(latencies.values()) and time.monotonic() < deadline and node_process.poll() is None:
                feed(1.0)   # until every camera got a label (the node may be building its engine)
            if not all(latencies.values()):
                log.seek(0)
                raise RuntimeError(f"the node gave no labels for every camera within {args.node_start_timeout} s; "
                                   f"its log:\n{log.read()[-3000:]}")
            for values in latencies.values():
                values.clear()
            published = feed(args.seconds)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown(context=context)
            node_process.terminate()
            node_process.wait(30)
    every = [v for values in latencies.values() for v in values]
    return {"cameras": cameras, "precision": args.node_precision, "fps_offered_per_camera": args.fps,
            "frames_published_per_camera": published, "end_to_end_ms": percentiles(every),
            "labels_per_second_per_camera": {name: round(len(v) / args.seconds, 2) for name, v in latencies.items()}}


def markdown(result: dict) -> str:
    lines = markdown_header("TensorRT engine and node on the vehicle", result["command"], result["machine"])
    vehicle = result["vehicle"]
    lines += [f"JetPack: {vehicle['nv_tegra_release']}; power mode: {vehicle.get('nvpmodel')}; "
              f"TensorRT {vehicle['tensorrt']}; model `{result['model']}` at {result['network']} (HxW).", "",
              "| precision | batch | engine | build s | infer median ms | infer p90 ms | GPU memory used MiB |",
              "|---|---|---|---|---|---|---|"]
    for row in result["engine"]:
        lines.append(f"| {row['precision']} | {row['batch']} | {row['engine']} | {row['build_s']} | "
                     f"{row['infer_ms']['median']} | {row['infer_ms']['p90']} | {row['gpu_memory_used_mib']} |")
    if result["node"]:
        lines += ["", "| cameras | precision | end-to-end median ms | p90 ms | labels/s per camera (offered) |",
                  "|---|---|---|---|---|"]
        for row in result["node"]:
            rates = ", ".join(f"{v}" for v in row["labels_per_second_per_camera"].values())
            lines.append(f"| {row['cameras']} | {row['precision']} | {row['end_to_end_ms']['median']} | "
                         f"{row['end_to_end_ms']['p90']} | {rates} ({row['fps_offered_per_camera']}) |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="ONNX written by bisegunet-export")
    parser.add_argument("--int8-model", type=Path, help="its QDQ model (bisegunet-quantize): adds int8 rows")
    parser.add_argument("--precisions", nargs="+", default=["fp16", "fp32"], choices=["fp16", "fp32"])
    parser.add_argument("--cameras", nargs="+", type=int, default=[1, 2, 4], help="batch sizes / camera counts")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--no-node", dest="node", action="store_false", help="engine rows only")
    parser.add_argument("--node-precision", default="fp16", choices=["fp16", "fp32"])
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second offered per camera")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured feeding time per camera count")
    parser.add_argument("--node-start-timeout", type=float, default=900.0,
                        help="seconds for the node's first labels (it may build an engine)")
    parser.add_argument("--engine-cache-dir", default=str(Path.home() / ".ros" / "bisegunet_bench_engines"),
                        help="engines built here are kept: a second run reuses them (build_s null)")
    parser.add_argument("--out", required=True, type=Path, help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    for name, value in (("--cameras", min(args.cameras)), ("--repeats", args.repeats), ("--fps", args.fps),
                        ("--seconds", args.seconds)):
        if value <= 0:
            parser.error(f"{name} must be positive, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.model, args.int8_model):
        if path is not None and not path.is_file():
            print(f"bench.vehicle: {path}: model file not found (give the .onnx written by bisegunet-export)",
                  file=sys.stderr)
            return 1
    reason = unavailable_reason()
    if reason:
        print(f"bench.vehicle: not measuring: {reason}. This benchmark runs on the vehicle with TensorRT 10 and a "
              "CUDA GPU (docs/orin.md); nothing is measured elsewhere", file=sys.stderr)
        return 2
    if args.node:  # DDS on loopback, on a domain of this run's own (never the car's graph), for client and node
        os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOCALHOST_ONLY="1",
                          ROS_DOMAIN_ID=str(random.randint(150, 200)), **profile_environment(str(PROFILE)))
    Path(args.engine_cache_dir).mkdir(parents=True, exist_ok=True)
    try:
        info = ModelInfo.from_onnx(args.model)
        runs = [(args.model, p) for p in args.precisions] + ([(args.int8_model, "int8")] if args.int8_model else [])
        engine = [measure_engine(model, precision, batch, args) for model, precision in runs for batch in args.cameras]
        node = [measure_node(args.model, n, args) for n in args.cameras] if args.node else []
    except (ModelError, RuntimeError, ValueError) as exc:
        print(f"bench.vehicle: {exc}", file=sys.stderr)
        return 1
    result = {"command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
              "machine": describe(), "vehicle": vehicle_facts(), "model": str(args.model),
              "network": f"{info.input_height}x{info.input_width}", "engine": engine, "node": node}
    print(write_results(args.out, result, markdown(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
