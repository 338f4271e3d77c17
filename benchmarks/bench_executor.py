"""Executor command rate and jitter against the 50 Hz target, and the cost of the safety path.

Runs `ExecutionSession.tick` in real time at CONTROL_HZ for a few seconds, submitting a new
54-step chunk (WAV's real-robot chunk length) every `--replan` seconds so the gate and the
chunk blending run too. Backends: `sim` (the MuJoCo bimanual simulation, physics stepped
inside each tick, no rendering) and `ideal` (no physics: measures the executor alone).

With `--node` it then measures the real thing on the ROS graph: sim_bridge and the
action_executor node run as their own processes, this process sends a goal every `--replan`
seconds (with the heartbeat) and records every command the node publishes on
/sim/joint_commands: the rate and period jitter of the node's stamps (its control loop) and
of their arrival here (plus DDS), against the in-process session loop above as baseline.

    python benchmarks/bench_executor.py --backend sim --seconds 5 --node
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wav_ros.execution import (
    ExecutionSession,
    FollowerConfig,
    IdealArmBackend,
    JointTrajectoryData,
    SafetyLimits,
)
from wav_ros.robot_description import CONTROL_HZ, JOINT_NAMES

CHUNK = 54


class TimedBackend:
    """Wraps a backend's send() to separate the backend's time from the executor's."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.send_seconds: list[float] = []
        original = backend.send

        def timed_send(positions, joint_names):
            start = time.perf_counter()
            original(positions, joint_names)
            self.send_seconds.append(time.perf_counter() - start)

        backend.send = timed_send


def make_backend(name: str):
    if name == "sim":
        from wav_ros.execution.backends.sim import SimBackend
        from wav_ros.sim import make_env

        env = make_env("transfer_cube", cameras=(), max_steps=100_000)
        return SimBackend(env, env.reset(seed=0))
    limits = SafetyLimits()
    return IdealArmBackend(JOINT_NAMES, (limits.lower + limits.upper) / 2)


def chunk_from(start: np.ndarray, stamp: float, phase: float) -> JointTrajectoryData:
    """A smooth 54-step chunk from `start`: arm joints swing ±0.15 rad, grippers stay."""
    times = np.arange(CHUNK) / CONTROL_HZ
    swing = 0.15 * (np.sin(2 * np.pi * 0.5 * (times + phase)) - np.sin(2 * np.pi * 0.5 * phase))
    offsets = np.outer(swing, np.ones(len(JOINT_NAMES)))
    offsets[:, [6, 13]] = 0.0
    return JointTrajectoryData(JOINT_NAMES, times, start + offsets, stamp)


def percentile_ms(values, q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sim", "ideal"), default="sim")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--replan", type=float, default=0.5, help="seconds between chunks")
    parser.add_argument("--node", action="store_true", help="also measure the ROS node")
    args = parser.parse_args()

    backend = make_backend(args.backend)
    timed = TimedBackend(backend)
    session = ExecutionSession(backend, SafetyLimits(), FollowerConfig())
    period = 1.0 / CONTROL_HZ
    origin = time.perf_counter()
    tick_starts, tick_seconds, submit_seconds, faults = [], [], [], []
    accepted = refused = 0
    next_plan = 0.0
    ticks = int(args.seconds * CONTROL_HZ)
    for k in range(ticks):
        deadline = origin + k * period
        while (remaining := deadline - time.perf_counter()) > 0:
            time.sleep(remaining if remaining > 0.002 else 0)
        start = time.perf_counter()
        now = start - origin
        session.heartbeat(now)
        if now >= next_plan:
            base = session.last_command
            base = backend.read_state(now) if base is None else base
            submit_start = time.perf_counter()
            result = session.submit(chunk_from(base, now, phase=now), now)
            submit_seconds.append(time.perf_counter() - submit_start)
            accepted += result.verdict.accepted
            refused += not result.verdict.accepted
            next_plan += args.replan
        report = session.tick(now)
        tick_seconds.append(time.perf_counter() - start)
        tick_starts.append(start)
        if report.fault is not None:
            faults.append(str(report.fault))

    periods = np.diff(tick_starts)
    jitter = np.abs(periods - period)
    sends = np.asarray(timed.send_seconds)
    safety = np.asarray(tick_seconds[: len(sends)]) - sends if len(sends) else tick_seconds
    elapsed = tick_starts[-1] - tick_starts[0]
    print(f"backend            : {args.backend} ({type(backend).__name__})")
    print(
        f"ticks              : {ticks} in {elapsed:.3f} s -> {(ticks - 1) / elapsed:.2f} Hz "
        f"(target {CONTROL_HZ:.0f} Hz)"
    )
    print(
        f"period p50/p99/max : {percentile_ms(periods, 50):.3f} / {percentile_ms(periods, 99):.3f}"
        f" / {periods.max() * 1e3:.3f} ms (target {period * 1e3:.1f} ms)"
    )
    print(
        f"jitter p50/p99/max : {percentile_ms(jitter, 50):.3f} / {percentile_ms(jitter, 99):.3f}"
        f" / {jitter.max() * 1e3:.3f} ms"
    )
    print(
        f"tick total p50/p99 : {percentile_ms(tick_seconds, 50):.3f} / "
        f"{percentile_ms(tick_seconds, 99):.3f} ms"
    )
    if len(sends):
        print(
            f"backend send p50/p99: {percentile_ms(sends, 50):.3f} / "
            f"{percentile_ms(sends, 99):.3f} ms"
        )
    print(
        f"executor p50/p99   : {percentile_ms(safety, 50):.3f} / "
        f"{percentile_ms(safety, 99):.3f} ms per tick "
        "(tick minus backend send; includes heartbeat and any submit)"
    )
    print(
        f"submit (gate+blend): p50 {percentile_ms(submit_seconds, 50):.3f} ms, "
        f"max {max(submit_seconds) * 1e3:.3f} ms over {len(submit_seconds)} chunks "
        f"({accepted} accepted, {refused} refused)"
    )
    print(f"faults             : {len(faults)}" + (f" first: {faults[0]}" if faults else ""))
    if args.node:
        node_periods = measure_node(args.seconds, args.replan)
        for label, node_period in node_periods.items():
            node_jitter = np.abs(node_period - period)
            print(
                f"node {label:<13} : {1.0 / node_period.mean():.2f} Hz, period p50/p99/max "
                f"{percentile_ms(node_period, 50):.3f} / {percentile_ms(node_period, 99):.3f} / "
                f"{node_period.max() * 1e3:.3f} ms, jitter p99 {percentile_ms(node_jitter, 99):.3f}"
                f" ms ({percentile_ms(node_jitter, 99) / percentile_ms(jitter, 99):.1f}x the "
                "session loop's)"
            )


def measure_node(seconds: float, replan: float) -> dict[str, np.ndarray]:
    """Periods of the commands the action_executor node publishes while executing goals."""
    import subprocess
    import sys

    import rclpy
    from rclpy.action import ActionClient
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Empty, Header

    from wav_interfaces.action import ExecuteTrajectory
    from wav_ros.nodes.conversions import actions_to_trajectory, time_to_seconds
    from wav_ros.nodes.qos import SENSOR_DATA

    peers = [
        subprocess.Popen([sys.executable, "-m", f"wav_ros.nodes.{name}"])
        for name in ("sim_bridge", "action_executor")
    ]
    rclpy.init()
    node = Node("bench_executor")
    stamps: list[float] = []
    arrivals: list[float] = []
    state: list[np.ndarray] = []

    def on_command(message: JointState) -> None:
        arrivals.append(time.perf_counter())
        stamps.append(time_to_seconds(message.header.stamp))

    node.create_subscription(JointState, "/sim/joint_commands", on_command, 10)
    node.create_subscription(
        JointState, "/joint_states", lambda m: state.__setitem__(slice(None), [m]), SENSOR_DATA
    )
    heartbeat = node.create_publisher(Empty, "/wav/heartbeat", 10)
    client = ActionClient(node, ExecuteTrajectory, "/wav/execute_trajectory")
    try:
        if not client.wait_for_server(timeout_sec=30.0):
            raise RuntimeError("the action_executor node did not come up")
        while not state:
            rclpy.spin_once(node, timeout_sec=0.1)
        start = time.perf_counter()
        next_goal = next_beat = start + 1.0  # measure from one second in: past start-up
        while (now := time.perf_counter()) < start + 1.0 + seconds:
            rclpy.spin_once(node, timeout_sec=0.005)
            if now >= next_beat:
                heartbeat.publish(Empty())
                next_beat += 0.1
            if now >= next_goal:
                here = np.array(state[0].position)
                chunk = chunk_from(here, 0.0, phase=now)
                trajectory = actions_to_trajectory(
                    chunk.positions, JOINT_NAMES, header=Header(), dt=1.0 / CONTROL_HZ
                )
                client.send_goal_async(ExecuteTrajectory.Goal(trajectory=trajectory, blend=True))
                next_goal += replan
        measured = np.asarray(arrivals) >= start + 1.0
        return {
            "stamps": np.diff(np.asarray(stamps)[measured]),
            "arrivals": np.diff(np.asarray(arrivals)[measured]),
        }
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for peer in reversed(peers):  # the executor first: a robot vanishing mid-goal faults
            peer.terminate()
            peer.wait(timeout=10)


if __name__ == "__main__":
    main()
