"""Benchmark of /wav/plan through ROS against the bare model API, in one run.

Prints p50/p95 latency of: the bare API (`WAVPolicy.plan`, this process); /wav/plan with the
planner in `local` mode (one planner process); /wav/plan in `distributed` mode (world_model,
value and latent_planner processes, features crossing process boundaries). Ratios are against
the bare API measured in the same run; the target is ROS overhead ≤ 20 % in local mode.
Planner: K=3, M=30, N=5 unless given. Observations (3 × 64² rgb8 + joints) are published by
this process at 10 Hz.

    source scripts/activate.sh && python benchmarks/bench_planning_graph.py [--calls 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

INSTRUCTION = "hand the cube to the left arm"
PLANNER, WORLD_MODEL = "wav_ros.nodes.latent_planner", "wav_ros.nodes.world_model"


def percentiles(samples: list[float]) -> str:
    p50, p95 = np.percentile(np.asarray(samples) * 1e3, [50, 95])
    return f"p50 {p50:8.1f} ms   p95 {p95:8.1f} ms"


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def node_args(module: str, checkpoint: Path, threads: int, **parameters) -> list[str]:
    args = ["-m", module, "--ros-args", "-p", f"checkpoint:={checkpoint}"]
    args += ["-p", f"torch_threads:={threads}"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--video-samples", type=int, default=30)
    parser.add_argument("--value-samples", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--modes", nargs="+", default=["local", "distributed"])
    arguments = parser.parse_args()
    import torch

    torch.set_num_threads(arguments.threads)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Header

    from wav_interfaces.msg import Observation, PlanOptions
    from wav_interfaces.srv import Plan
    from wav_ros.model import WAVPolicy
    from wav_ros.nodes.image_codec import array_to_image
    from wav_ros.nodes.model_host import SHIPPED_CHECKPOINT
    from wav_ros.planning import PlannerConfig
    from wav_ros.robot_description import JOINT_NAMES

    checkpoint = arguments.checkpoint or SHIPPED_CHECKPOINT
    policy = WAVPolicy.from_pretrained(checkpoint)
    config = policy.config
    size = config.tokenizer.image_size
    rng = np.random.default_rng(0)
    images = {
        name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in config.camera_names
    }
    state = np.zeros(len(JOINT_NAMES), np.float32)
    planner = PlannerConfig(
        iterations=arguments.iterations,
        num_video_samples=arguments.video_samples,
        num_value_samples=arguments.value_samples,
    )
    print(
        f"checkpoint: {checkpoint}\nplanner: K={planner.iterations} "
        f"M={planner.num_video_samples} N={planner.num_value_samples}; {arguments.calls} calls"
    )

    policy.plan(images, state, INSTRUCTION, planner)  # warm-up
    bare = []
    for _ in range(arguments.calls):
        began = time.perf_counter()
        policy.plan(images, state, INSTRUCTION, planner)
        bare.append(time.perf_counter() - began)
    del policy

    rclpy.init()
    node = Node("bench_planning_graph")
    publisher = node.create_publisher(Observation, "/wav/observation", 5)

    def publish() -> None:
        header = Header(stamp=node.get_clock().now().to_msg(), frame_id="world")
        message = Observation(header=header, camera_names=list(config.camera_names))
        message.images = [array_to_image(images[name], header=header) for name in images]
        message.joint_state = JointState(header=header, name=list(JOINT_NAMES))
        message.joint_state.position = state.astype(float).tolist()
        publisher.publish(message)

    node.create_timer(0.1, publish)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = node.create_client(Plan, "/wav/plan")
    options = PlanOptions(
        iterations=planner.iterations,
        num_video_samples=planner.num_video_samples,
        num_value_samples=planner.num_value_samples,
    )
    threads = arguments.threads
    results = {"bare API (in process)": (bare, bare)}
    for mode in arguments.modes:
        processes = []
        if mode == "distributed":
            processes += [
                start(node_args(WORLD_MODEL, checkpoint, threads, visualize="false")),
                start(node_args("wav_ros.nodes.value", checkpoint, threads)),
            ]
        processes.append(
            # Random pixels: plans are projected onto the limits however far out (latency only).
            start(
                node_args(
                    PLANNER,
                    checkpoint,
                    threads,
                    mode=mode,
                    visualize="false",
                    max_limit_projection=100.0,
                )
            )
        )
        try:
            if not client.wait_for_service(timeout_sec=120):
                raise RuntimeError(f"/wav/plan did not come up in {mode} mode")
            request = Plan.Request(instruction=INSTRUCTION, options=options)
            while not (response := client.call(request, timeout_sec=120)).success:
                if "observation" not in response.message:  # warm-up until observations flow
                    raise RuntimeError(response.message)
            round_trips, server = [], []
            for _ in range(arguments.calls):
                began = time.perf_counter()
                response = client.call(request, timeout_sec=120)
                round_trips.append(time.perf_counter() - began)
                if not response.success:
                    raise RuntimeError(response.message)
                server.append(response.planning_time)
            results[f"/wav/plan {mode}"] = (round_trips, server)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            while client.service_is_ready():  # the next mode's planner must be the one answering
                time.sleep(0.05)

    bare_p50 = float(np.median(bare))
    print(f"\n{'':28s} {'client round trip':36s} ratio to bare p50")
    for name, (round_trips, server) in results.items():
        ratio = float(np.median(round_trips)) / bare_p50
        print(f"{name:28s} {percentiles(round_trips)}   {ratio:5.2f}x")
        if name != "bare API (in process)":
            print(f"{'  of which planning (server)':28s} {percentiles(server)}")
    if "/wav/plan local" in results:
        local_overhead = float(np.median(results["/wav/plan local"][0])) / bare_p50 - 1
        verdict = "met" if local_overhead <= 0.20 else "NOT met"
        print(f"\nROS overhead, local: {100 * local_overhead:+.1f} % (target ≤ 20 %: {verdict})")
    executor.shutdown()
    spinner.join()
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
