"""Camera frames between two processes: how many arrive, and how late, per Fast DDS profile and QoS.

    python -m bench.transport [--seconds 15] [--repeats 1]     # writes bench/transport.json and .md
    python -m bench.transport --quick                          # 3 s a cell: the whole matrix in minutes
    python -m bench.transport --quick --out DIR/transport      # elsewhere

For each cell of profile (Fast DDS defaults; config/fastdds_shm.xml) x reliability (reliable;
best effort, as camera drivers publish) x cameras (1; 2) x rate (10; 30 Hz): a subscriber process
and a publisher process, both real rclpy with the cell's profile in their environment
(FASTDDS_DEFAULT_PROFILES_FILE and, for older Fast DDS, FASTRTPS_DEFAULT_PROFILES_FILE), on
localhost and this process's ROS_DOMAIN_ID. Once the publisher sees the subscriber on every
topic, it publishes 512x1024 (HxW) rgb8 sensor_msgs/Image frames (the same bytes every frame, stamped
with the wall clock when published) on each camera's topic at the rate for --seconds, then stays
1 s longer (frames in flight or resent still arrive); the subscriber counts what arrives and its
latency (wall clock at receipt minus the stamp, both processes on one machine). Delivered =
frames received / frames published, over the cameras. QoS: keep last 5, volatile, the cell's
reliability on both sides (a reader that falls behind loses the oldest frames even when reliable).
Python publishes and receives, as a Python camera driver and this node do: the latency includes
rclpy's message conversion. The machine's load is recorded beside the results (bench/machine.py):
on a busy machine the subscriber falls behind and the figures say more about the load.
"""
from __future__ import annotations

import argparse
import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.machine import describe, markdown_header, write_results
from bench.ros_env import localhost_env

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"Fast DDS defaults": None, "shared memory (config/fastdds_shm.xml)": ROOT / "config/fastdds_shm.xml"}
RELIABILITIES = ("reliable", "best_effort")
CAMERAS = (1, 2)
RATES = (10, 30)
WIDTH, HEIGHT = 1024, 512
DEPTH = 5
MATCH_TIMEOUT_S = 30.0      # for the publisher to see the subscriber on every topic
LINGER_S = 1.0              # the publisher stays after its last frame: in-flight and resent frames still arrive


def topic(camera: int) -> str:
    return f"/bench_transport/camera{camera}/image"


def qos(reliability: str):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=DEPTH, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                      else ReliabilityPolicy.BEST_EFFORT)


def subscribe(cameras: int, reliability: str) -> dict:
    """The subscriber process: counts frames and their latency per topic until SIGUSR1."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    stop = []
    signal.signal(signal.SIGUSR1, lambda *_: stop.append(True))
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_transport_subscriber", context=context)
    latencies = {topic(c): [] for c in range(cameras)}
    for name, received in latencies.items():
        node.create_subscription(Image, name, lambda msg, r=received: r.append(
            time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)), qos(reliability))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    print("ready", flush=True)
    while not stop:
        executor.spin_once(timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown(context=context)
    return {name: [1e3 * x for x in values] for name, values in latencies.items()}


def publish(cameras: int, reliability: str, rate: float, seconds: float) -> dict:
    """The publisher process: waits until the subscriber is matched on every topic, then publishes
    at `rate` for `seconds`; returns the frames published per topic and the time from the first to the last."""
    import rclpy
    from rclpy.context import Context
    from sensor_msgs.msg import Image

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_transport_publisher", context=context)
    publishers = [node.create_publisher(Image, topic(c), qos(reliability)) for c in range(cameras)]
    deadline = time.monotonic() + MATCH_TIMEOUT_S
    while any(p.get_subscription_count() < 1 for p in publishers):
        if time.monotonic() > deadline:
            raise SystemExit(f"no subscriber matched within {MATCH_TIMEOUT_S:g} s")
        time.sleep(0.05)
    time.sleep(0.5)                            # both sides have matched (discovery is not symmetric in time)
    msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3,
                data=np.random.default_rng(0).integers(0, 256, HEIGHT * WIDTH * 3, dtype=np.uint8).tobytes())
    frames = int(round(rate * seconds))
    start = time.monotonic()
    for i in range(frames):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        for p in publishers:
            now = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            p.publish(msg)
    took = time.monotonic() - start
    time.sleep(LINGER_S)
    node.destroy_node()
    rclpy.shutdown(context=context)
    return {"published": {topic(c): frames for c in range(cameras)}, "seconds": took}


def environment(profile: Path | None) -> dict:
    env = localhost_env()
    for key in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        if profile:
            env[key] = str(profile)
        else:
            env.pop(key, None)
    return env


def cell(profile: Path | None, reliability: str, cameras: int, rate: float, seconds: float) -> dict:
    """One subscriber and one publisher process with `profile`; what arrived."""
    env = environment(profile)
    role = [sys.executable, "-m", "bench.transport", "--cameras", str(cameras), "--reliability", reliability]
    subscriber = subprocess.Popen([*role, "--role", "subscriber"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([subscriber.stdout], [], [], 120)
        if not ready or subscriber.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the subscriber did not start: {subscriber.stderr.read()[-2000:]}")
        sent = subprocess.run([*role, "--role", "publisher", "--rate", str(rate), "--seconds", str(seconds)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=seconds * 4 + MATCH_TIMEOUT_S + 60)
        subscriber.send_signal(signal.SIGUSR1)
        out, err = subscriber.communicate(timeout=60)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
    if sent.returncode != 0:
        raise RuntimeError(f"the publisher failed: {sent.stderr[-2000:]}")
    if subscriber.returncode != 0:
        raise RuntimeError(f"the subscriber failed: {err[-2000:]}")
    published, received = json.loads(sent.stdout.strip().splitlines()[-1]), json.loads(out.strip().splitlines()[-1])
    latencies = [x for values in received.values() for x in values]
    total = sum(published["published"].values())
    return {"published": total, "received": len(latencies), "delivered": len(latencies) / total,
            "publish_seconds": published["seconds"],
            "published_hz": (total / cameras - 1) / published["seconds"] if published["seconds"] > 0 else None,
            "latency_ms": ({"median": float(np.median(latencies)), "p90": float(np.percentile(latencies, 90)),
                            "max": float(np.max(latencies))} if latencies else None)}


def measure(seconds: float, repeats: int) -> list[dict]:
    rows = []
    for name, profile in PROFILES.items():
        for reliability in RELIABILITIES:
            for cameras in CAMERAS:
                for rate in RATES:
                    runs = [cell(profile, reliability, cameras, rate, seconds) for _ in range(repeats)]
                    rows.append({"profile": name, "reliability": reliability, "cameras": cameras, "rate_hz": rate,
                                 "runs": runs, "delivered": [r["delivered"] for r in runs]})
                    print(f"{name}, {reliability}, {cameras} camera(s), {rate} Hz: delivered "
                          f"{', '.join(f'{100 * d:.0f} %' for d in rows[-1]['delivered'])}", file=sys.stderr)
    return rows


def markdown(result: dict, command: str) -> str:
    lines = markdown_header("Camera frames between two processes, per Fast DDS profile and QoS", command,
                            result["machine"])
    lines += [f"{HEIGHT}x{WIDTH} (HxW) rgb8 sensor_msgs/Image frames from a publisher process to a subscriber process "
              f"(rclpy, localhost), {result['seconds']:g} s of publishing a cell, {result['repeats']} run(s) a cell; "
              f"QoS keep last {DEPTH}, volatile. Delivered: frames received / published over the cameras. Latency: "
              "receipt minus publish time (wall clock, one machine), median and p90 over the frames received. "
              "Published Hz: what the publisher achieved per camera (Python on this machine).", "",
              "| profile | reliability | cameras | rate Hz | published Hz | delivered | latency median ms | "
              "latency p90 ms |", "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        runs = row["runs"]
        latency = [r["latency_ms"] for r in runs if r["latency_ms"]]
        hz = " / ".join(f"{r['published_hz']:.1f}" if r["published_hz"] else "-" for r in runs)
        delivered = " / ".join(f"{100 * r['delivered']:.0f} % ({r['received']}/{r['published']})" for r in runs)
        median = " / ".join(f"{x['median']:.1f}" for x in latency) or "none arrived"
        p90 = " / ".join(f"{x['p90']:.1f}" for x in latency)
        lines.append(f"| {row['profile']} | {row['reliability'].replace('_', ' ')} | {row['cameras']} | "
                     f"{row['rate_hz']} | {hz} | {delivered} | {median} | {p90} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="publishing time a cell")
    parser.add_argument("--repeats", type=int, default=1, help="runs (fresh process pairs) a cell")
    parser.add_argument("--quick", action="store_true", help="3 s a cell, one run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/transport", help="OUT.json and OUT.md")
    parser.add_argument("--role", choices=["subscriber", "publisher"], help=argparse.SUPPRESS)
    parser.add_argument("--cameras", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--reliability", choices=RELIABILITIES, default="best_effort", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "subscriber":
        print(json.dumps(subscribe(args.cameras, args.reliability)))
        return 0
    if args.role == "publisher":
        print(json.dumps(publish(args.cameras, args.reliability, args.rate, args.seconds)))
        return 0
    if args.quick:
        args.seconds, args.repeats = 3.0, 1
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be positive and --repeats at least 1")
    machine = describe()
    result = {"machine": machine, "seconds": args.seconds, "repeats": args.repeats, "frame": f"{HEIGHT}x{WIDTH}",
              "encoding": "rgb8", "rows": measure(args.seconds, args.repeats)}
    command = "python -m bench.transport" + (" --quick" if args.quick else f" --seconds {args.seconds:g} --repeats "
                                                                           f"{args.repeats}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_results(args.out, result, markdown(result, command)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
