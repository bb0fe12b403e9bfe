"""Host cost around inference, before and after issue 14, and node overhead; every figure names its network size.

    python -m bench.node [--preset small] [--network 512x1024] [--frame 512x1024] [--frames 20] [--repeats 3]
    python -m bench.node --smoke --out DIR        # toy sizes, checks the path only

A model of --preset with random weights (latency does not depend on their values) is exported at
the --network size twice: the float core alone (format 1: normalised float NCHW in, float logits
out) and the same core in bisegunet-export's uint8 graph (format 2: uint8 pixels in, uint8 labels
and confidence out). For rgb8 frames of --frame size, each frame goes through
- before: the runtime as it was (reproduced here): float normalisation and NCHW transpose on
  the host, float logits copied from the engine, numpy argmax and softmax confidence;
- after: the pipeline as it is (bisegunet_ros.pipeline): uint8 frame in, uint8 labels and
  confidence out;
with decode and the label + confidence message payloads (publish) the same in both. Per stage,
process CPU ms per frame (time.process_time, which counts ONNX Runtime's threads) and wall ms;
`cpu_ms_outside_inference_per_frame` = decode + preprocess + postprocess + publish, and
`cpu_ms_total_per_frame` = all five stages (inference included: what the host pays in all). Each of
--repeats fresh processes gives the median over --frames frames (after 3 warm-up); reported: the
median of those and their min-max. Bytes moved from the engine per frame are counted from the
output arrays.

Then, unless --skip-node, the real node (after path) in --repeats fresh processes per transport:
end-to-end latency from publish of a frame to receipt of its label image, one frame in flight,
with Fast DDS defaults and with config/fastdds_shm.xml, and the node's CPU per frame. DDS stays
on localhost.
Writes OUT.json and OUT.md (OUT = bench/node by default).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.machine import describe, markdown_header, write_results
from bench.ros_env import localhost_env
from bench.stats import spread
from bisegunet_ros.dds_profile import profile_environment

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"Fast DDS defaults (UDP)": None, "shared memory (config/fastdds_shm.xml)": ROOT / "config/fastdds_shm.xml"}
STAGES = ("decode", "preprocess", "inference", "postprocess", "publish")
OUTSIDE_INFERENCE = ("decode", "preprocess", "postprocess", "publish")
WARMUP = 3


def size_arg(text: str) -> tuple[int, int]:
    """argparse type: "HxW" -> (H, W), height first as everywhere (--size H W, --height --width)."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 512x1024, got {text!r}") from None
    return a, b


def frame(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class FloatLogitsPath:
    """The format-1 host path before issue 14, kept only as this benchmark's baseline.

    Float32 NCHW normalised on the host, the full float logits bound back from ONNX Runtime,
    then numpy argmax (labels) and max softmax probability x 255 (confidence), as pipeline.py did.
    """

    def __init__(self, core: Path, mean, std, num_classes: int):
        from bisegunet_ros.backends.onnxruntime_backend import inference_session, session_options
        from bisegunet_training.normalisation import scale_offset

        self.session = inference_session(str(core), session_options(0))   # the backend's settings
        shape = self.session.get_inputs()[0].shape
        self.height, self.width = shape[2], shape[3]
        self.scale, self.offset = scale_offset(mean, std)
        self.label_map = np.arange(num_classes, dtype=np.uint8)
        self.logits = np.empty((1, num_classes, self.height, self.width), np.float32)
        self.binding = self.session.io_binding()

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape[:2] != (self.height, self.width):
            shrink = rgb.shape[0] > self.height or rgb.shape[1] > self.width
            rgb = cv2.resize(rgb, (self.width, self.height),
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        batch = np.empty((1, 3, self.height, self.width), np.float32)
        batch[0] = (rgb.astype(np.float32) * self.scale + self.offset).transpose(2, 0, 1)
        return batch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.binding.bind_cpu_input("input", batch)
        self.binding.bind_output("logits", "cpu", 0, np.float32, list(self.logits.shape), self.logits.ctypes.data)
        self.session.run_with_iobinding(self.binding)
        return self.logits

    def postprocess(self, logits: np.ndarray, frame_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        labels = self.label_map[logits.argmax(axis=0)]
        confidence = (255.0 / np.exp(logits - logits.max(axis=0)).sum(axis=0)).astype(np.uint8)
        if labels.shape != frame_size:
            size = (frame_size[1], frame_size[0])
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
            confidence = cv2.resize(confidence, size, interpolation=cv2.INTER_LINEAR)
        return labels, confidence


class Clock:
    """Process CPU and wall ms per named stage of one frame."""

    def __init__(self):
        self.cpu, self.wall = {}, {}
        self._c, self._w = time.process_time(), time.perf_counter()

    def lap(self, stage: str) -> None:
        c, w = time.process_time(), time.perf_counter()
        self.cpu[stage], self.wall[stage] = (c - self._c) * 1e3, (w - self._w) * 1e3
        self._c, self._w = c, w


def stages(uint8_model: Path, core: Path, frame_size: tuple[int, int], frames: int) -> dict:
    """One process: both paths on the same frames, alternating; per-stage medians and bytes per frame."""
    from bisegunet_ros.backends import load_backend
    from bisegunet_ros.image_codec import decode_image, encode_image
    from bisegunet_ros.pipeline import SegmentationPipeline

    pipeline = SegmentationPipeline(load_backend(uint8_model, "onnxruntime"))
    info = pipeline.info
    before = FloatLogitsPath(core, info.mean, info.std, len(info.classes))
    height, width = frame_size
    laps = {"before": [], "after": []}
    moved = {}
    for i in range(frames + WARMUP):
        data = frame(i, height, width).tobytes()
        for path in ("after", "before"):
            clock = Clock()
            rgb = decode_image("rgb8", width, height, width * 3, 0, data)
            clock.lap("decode")
            if path == "after":
                batch = pipeline.preprocess([rgb])
                clock.lap("preprocess")
                out = pipeline.backend.infer(batch)
                clock.lap("inference")
                labels, confidence = pipeline.postprocess(out.labels[0], out.confidence[0], rgb.shape[:2])
                engine = (batch.nbytes, out.labels[0].nbytes + out.confidence[0].nbytes)
            else:
                batch = before.preprocess(rgb)
                clock.lap("preprocess")
                logits = before.infer(batch)
                clock.lap("inference")
                labels, confidence = before.postprocess(logits[0], rgb.shape[:2])
                engine = (batch.nbytes, logits[0].nbytes)
            clock.lap("postprocess")
            encode_image(labels, "mono8")
            encode_image(confidence, "mono8")
            clock.lap("publish")
            moved[path] = {"to_engine_bytes_per_frame": engine[0], "from_engine_bytes_per_frame": engine[1]}
            if i >= WARMUP:
                laps[path].append(clock)
    result = {}
    for path, clocks in laps.items():
        result[path] = {
            "cpu_ms": {s: float(np.median([c.cpu[s] for c in clocks])) for s in STAGES},
            "wall_ms": {s: float(np.median([c.wall[s] for c in clocks])) for s in STAGES},
            "cpu_ms_outside_inference_per_frame": float(np.median([sum(c.cpu[s] for s in OUTSIDE_INFERENCE)
                                                                   for c in clocks])),
            **moved[path]}
    return result


def stages_in_processes(uint8_model: Path, core: Path, frame_size: tuple[int, int], frames: int,
                        repeats: int) -> dict:
    """`stages` in `repeats` fresh processes; each figure as median and min-max over the processes."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-m", "bench.node", "--stages", str(uint8_model), str(core),
                              "--frame", f"{frame_size[0]}x{frame_size[1]}", "--frames", str(frames)],
                             cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise RuntimeError(f"stage timing failed:\n{out.stderr[-2000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {}
    for path in ("before", "after"):
        r = [run[path] for run in runs]
        result[path] = {
            "cpu_ms": {s: spread(x["cpu_ms"][s] for x in r) for s in STAGES},
            "wall_ms": {s: spread(x["wall_ms"][s] for x in r) for s in STAGES},
            "cpu_ms_outside_inference_per_frame": spread(x["cpu_ms_outside_inference_per_frame"] for x in r),
            "to_engine_bytes_per_frame": r[0]["to_engine_bytes_per_frame"],
            "from_engine_bytes_per_frame": r[0]["from_engine_bytes_per_frame"]}
    return result


def total_cpu(cpu_ms: dict) -> dict:
    """CPU ms per frame of all stages: per process the sum of its stage medians, then median and
    min-max over the processes (`cpu_ms`: stage -> spread over the processes, in process order)."""
    return spread(sum(values) for values in zip(*(cpu_ms[s]["values"] for s in STAGES)))


def client(frames: int, frame_size: tuple[int, int]) -> dict:
    """Runs in a child process (so it loads the same DDS profile as the node): one frame in flight."""
    from sensor_msgs.msg import Image

    sys.path.insert(0, str(ROOT / "test"))
    from ros_client import RosClient

    height, width = frame_size
    node_pid = int(os.environ["BENCH_NODE_PID"])
    ros = RosClient("bench_node_client")
    labels = ros.subscribe("/camera/segmentation/label", Image)
    latencies = []
    for i in range(frames + WARMUP):
        if i == WARMUP:
            cpu_start = _cpu_seconds(node_pid)  # clock ticks are 10 ms: measure the whole run, not each frame
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=frame(i, height, width).tobytes())
        t0 = time.perf_counter()
        if ros.request("/camera/image", msg, labels, timeout=120, resend=60) is None:
            raise RuntimeError("the node did not answer")
        if i >= WARMUP:
            latencies.append((time.perf_counter() - t0) * 1e3)
    cpu_per_frame = (_cpu_seconds(node_pid) - cpu_start) * 1e3 / frames
    ros.close()
    return {"end_to_end_ms": {"median": float(np.median(latencies)), "p90": float(np.percentile(latencies, 90)),
                              "n": len(latencies)}, "node_cpu_ms_per_frame": cpu_per_frame}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def through_node(model: Path, frames: int, frame_size: tuple[int, int], profile: Path | None) -> dict:
    env = localhost_env()
    if profile:
        env.update(profile_environment(str(profile)))
    node = subprocess.Popen([sys.executable, "-m", "bisegunet_ros.segment_node", "--ros-args", "-p",
                             f"model_path:={model}", "-p", "backend:=onnxruntime", "-p", "input_qos:=reliable"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        env["BENCH_NODE_PID"] = str(node.pid)
        out = subprocess.run([sys.executable, "-m", "bench.node", "--client", "--frames", str(frames),
                              "--frame", f"{frame_size[0]}x{frame_size[1]}"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        node.terminate()
        node.wait(10)


def node_in_processes(model: Path, frames: int, frame_size: tuple[int, int], profile: Path | None,
                      repeats: int) -> dict:
    """`through_node` with `repeats` fresh node processes; median and min-max over them."""
    runs = [through_node(model, frames, frame_size, profile) for _ in range(repeats)]
    return {"end_to_end_median_ms": spread(r["end_to_end_ms"]["median"] for r in runs),
            "end_to_end_p90_ms": spread(r["end_to_end_ms"]["p90"] for r in runs),
            "node_cpu_ms_per_frame": spread(r["node_cpu_ms_per_frame"] for r in runs)}


def export_models(preset: str, network: tuple[int, int], folder: Path) -> tuple[Path, Path]:
    """The uint8 model (format 2) and its bare float core (format 1 baseline) of a random `preset` model."""
    import onnx

    from bench.backends import random_state
    from bisegunet_training.export import export_float_core, export_onnx, model_info

    model, state = random_state(preset)
    height, width = network
    uint8_model, core = folder / f"{preset}_{height}x{width}.onnx", folder / f"{preset}_{height}x{width}.core.onnx"
    export_onnx(model, uint8_model, height, width, model_info(state, height, width, True, False))
    onnx.save(export_float_core(model, height, width), str(core))
    return uint8_model, core


def fmt(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def markdown(result: dict, command: str) -> str:
    net, cam, preset = result["network"], result["frame"], result["preset"]
    s = result["stages"]
    lines = markdown_header(f"Host cost around inference and node overhead: {preset} at a {net} network", command,
                            result["machine"])
    lines += [f"Model: `{preset}` preset, random weights, network size **{net}** (HxW); rgb8 frames of {cam} "
              f"(HxW){' (no resize: the frame is the network size)' if cam == net else ' (resized to the network)'}. "
              f"{result['repeats']} fresh processes x {result['frames']} frames after {WARMUP} warm-up; each cell: "
              "median of the process medians (min-max over the processes).", "",
              "Before: the format-1 path (float normalisation and NCHW transpose on the host, float logits from the "
              "engine, numpy argmax and softmax confidence). After: the pipeline with the uint8 graph (issue 14). "
              "Publish: the label and confidence message payloads.", "",
              f"| stage ({net} network) | before: CPU ms/frame | after: CPU ms/frame | before: wall ms | after: wall ms |",
              "|---|---|---|---|---|"]
    for stage in STAGES:
        lines.append(f"| {stage} | {fmt(s['before']['cpu_ms'][stage])} | {fmt(s['after']['cpu_ms'][stage])} | "
                     f"{fmt(s['before']['wall_ms'][stage])} | {fmt(s['after']['wall_ms'][stage])} |")
    out = result["cpu_ms_outside_inference_per_frame"]
    lines.append(f"| **CPU outside inference** (`cpu_ms_outside_inference_per_frame`) | **{fmt(out['before'])}** | "
                 f"**{fmt(out['after'])}** | | |")
    total = result["cpu_ms_total_per_frame"]
    change = 100 * (total["after"]["median"] / total["before"]["median"] - 1)
    lines.append(f"| **CPU total, inference included** (`cpu_ms_total_per_frame`) | **{fmt(total['before'])}** | "
                 f"**{fmt(total['after'])}** ({change:+.0f} %) | | |")
    lines += ["", f"| bytes per frame ({net} network) | before | after |", "|---|---|---|"]
    for key, name in (("to_engine_bytes_per_frame", "to the engine"), ("from_engine_bytes_per_frame", "from the engine")):
        lines.append(f"| {name} | {s['before'][key] / 1e6:.2f} MB | {s['after'][key] / 1e6:.2f} MB |")
    if result.get("node"):
        lines += ["", f"Through the node (after path, {net} network, {cam} rgb8 frames, one frame in flight, "
                  f"{result['frames']} frames after {WARMUP} warm-up; {result['repeats']} node processes per "
                  "transport, median (min-max) over them):", "",
                  f"| transport | end-to-end median ms | end-to-end p90 ms | node CPU ms per frame | node CPU outside "
                  f"inference ms per frame ({net} network) |", "|---|---|---|---|---|"]
        inference = s["after"]["cpu_ms"]["inference"]["median"]
        for name, r in result["node"].items():
            cpu = r["node_cpu_ms_per_frame"]
            outside = {k: v - inference if k != "values" else [x - inference for x in v] for k, v in cpu.items()}
            lines.append(f"| {name} | {fmt(r['end_to_end_median_ms'])} | {fmt(r['end_to_end_p90_ms'])} | "
                         f"{fmt(cpu)} | {fmt(outside)} |")
        lines += ["", "Node CPU outside inference = the node's CPU per frame (from /proc, 10 ms ticks over the whole "
                  "run) minus the median inference CPU of the stage table above: decode, preprocess, postprocess, "
                  "message building, DDS and the node's threads."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--network", type=size_arg, default=(512, 1024), help="network size HxW")
    parser.add_argument("--frame", type=size_arg, default=(512, 1024), help="camera frame size HxW (rgb8)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="processes (at least 3 for reported numbers)")
    parser.add_argument("--skip-node", action="store_true", help="stage table only, no ROS node run")
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 64x128, 2 frames: checks the path only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/node", help="OUT.json and OUT.md")
    parser.add_argument("--stages", nargs=2, type=Path, metavar=("UINT8_MODEL", "CORE"), help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    frame_size = args.frame                              # (H, W)
    if args.client:
        print(json.dumps(client(args.frames, frame_size)))
        return 0
    if args.stages:
        print(json.dumps(stages(*args.stages, frame_size, args.frames)))
        return 0
    if args.smoke:
        args.preset, args.network, frame_size, args.frames = "tiny", (64, 128), (64, 128), 2
    machine = describe()
    with tempfile.TemporaryDirectory() as tmp:
        uint8_model, core = export_models(args.preset, args.network, Path(tmp))
        staged = stages_in_processes(uint8_model, core, frame_size, args.frames, args.repeats)
        node = {} if args.skip_node else {name: node_in_processes(uint8_model, args.frames, frame_size, p,
                                                                  args.repeats) for name, p in PROFILES.items()}
    network = f"{args.network[0]}x{args.network[1]}"
    result = {"machine": machine, "preset": args.preset, "network": network,
              "frame": f"{frame_size[0]}x{frame_size[1]}", "frames": args.frames, "repeats": args.repeats,
              "cpu_ms_outside_inference_per_frame": {p: staged[p]["cpu_ms_outside_inference_per_frame"]
                                                     for p in ("before", "after")},
              "cpu_ms_total_per_frame": {p: total_cpu(staged[p]["cpu_ms"]) for p in ("before", "after")},
              "stages": staged, "node": node}
    command = "python -m bench.node" + (" --smoke" if args.smoke else "") + (" --skip-node" if args.skip_node else "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_results(args.out, result, markdown(result, command)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
