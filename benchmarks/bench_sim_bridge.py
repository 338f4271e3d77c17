"""Simulated steps per second of sim_bridge with its cameras at 10 Hz, against the same node
whose cameras (nearly) never render: the physics loop must keep CONTROL_HZ either way, or every
chunk the executor streams at 50 commands/s runs in fewer simulated steps than planned.

sim_bridge runs in a process of its own, as bringup starts it; this process counts its
/joint_states (one per simulated step) and camera frames.

    python benchmarks/bench_sim_bridge.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

import rclpy
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import Image, JointState

from wav_ros.nodes.qos import SENSOR_DATA
from wav_ros.robot_description import CONTROL_HZ


def measure(camera_rate: float, seconds: float) -> tuple[float, float]:
    """(simulated steps/s, cam_high frames/s) over `seconds` after the start-up."""
    counts = {"steps": 0, "frames": 0}
    lock = threading.Lock()

    def count(key: str) -> None:
        with lock:
            counts[key] += 1

    command = [sys.executable, "-m", "wav_ros.nodes.sim_bridge", "--ros-args"]
    sim = subprocess.Popen([*command, "-p", f"camera_rate:={camera_rate}"])
    counter = rclpy.create_node("bench_sim_bridge_counter")
    counter.create_subscription(JointState, "/joint_states", lambda _: count("steps"), SENSOR_DATA)
    counter.create_subscription(
        Image, "/cam_high/image_raw", lambda _: count("frames"), SENSOR_DATA
    )
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(counter)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        while not counts["frames" if camera_rate >= 1.0 else "steps"]:
            time.sleep(0.2)  # start-up, GL context, discovery
        time.sleep(1.0)
        with lock:
            start = dict(counts)
        started = time.monotonic()
        time.sleep(seconds)
        with lock:
            end = dict(counts)
        elapsed = time.monotonic() - started
    finally:
        executor.shutdown()
        spinner.join()
        counter.destroy_node()
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=10)
    return (end["steps"] - start["steps"]) / elapsed, (end["frames"] - start["frames"]) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.environ["ROS_DOMAIN_ID"] = str(random.randint(1, 100))  # no other graph's /joint_states
    rclpy.init()
    try:
        baseline, _ = measure(camera_rate=0.01, seconds=args.seconds)
        steps, frames = measure(camera_rate=10.0, seconds=args.seconds)
    finally:
        rclpy.try_shutdown()
    print(f"{os.cpu_count()} CPUs, MUJOCO_GL={os.environ['MUJOCO_GL']}, {args.seconds:.0f} s each")
    print(f"target: {CONTROL_HZ:.1f} steps/s")
    print(f"cameras (nearly) off: {baseline:.1f} steps/s")
    print(f"3 cameras at 10 Hz:   {steps:.1f} steps/s, {frames:.1f} frames/s")
    print(f"ratio with cameras / without: {steps / baseline:.3f}")


if __name__ == "__main__":
    main()
