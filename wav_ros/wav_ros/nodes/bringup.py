"""bringup: the whole graph from the shared launch plan, for machines without `ros2 launch`.

Starts the same nodes as launch/bimanual.launch.py from the same spec (nodes/graph.py), one
process per node as launch does, with the same parameter files and overrides. Separate
processes keep the planner's compute from stalling the simulation, the camera sync and the
executor's control loop, which in one Python process would queue behind it for the GIL.
With `--run-task` it then runs the closed-loop task runner against the graph and exits with
its report: the embedded default (`make demo`); it exits 0 when the episode ran (the report
says whether the task succeeded) and 1 when the graph could not run it. Ctrl-C (or the end of
the task) stops every node; a node that exits early stops the bringup and is named.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from wav_ros.nodes import graph
from wav_ros.nodes.spin import spin_in_background

STOP_TIMEOUT_S = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bringup", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--task", default="", help="simulated task ('' = config/sim_bridge.yaml)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the simulated episode (default: YAML)"
    )
    parser.add_argument("--planner-mode", choices=graph.PLANNER_MODES, default="local")
    parser.add_argument("--checkpoint", default="", help="checkpoint dir ('' = shipped tiny)")
    parser.add_argument("--executor-backend", choices=graph.EXECUTOR_BACKENDS, default="sim")
    parser.add_argument("--camera-topics", nargs="*", default=None)
    parser.add_argument("--config-dir", type=Path, default=None, help="folder of <node>.yaml")
    parser.add_argument("--run-task", action="store_true", help="run one closed-loop episode")
    parser.add_argument("--instruction", default="", help="'' = the simulated task's own")
    parser.add_argument(
        "--steps-per-plan",
        type=int,
        default=None,
        help="points executed per plan (default: the plan's execute_steps, the checkpoint's)",
    )
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--value-threshold", type=float, default=float("-inf"))
    parser.add_argument("--report", type=Path, default=None, help="write the report as JSON")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the graph, a plan, a goal"
    )
    return parser


def plan_for(arguments: argparse.Namespace) -> list[graph.PlannedNode]:
    """The launch plan for these command-line arguments (the launch file's, for its own)."""
    return graph.launch_plan(
        sim=arguments.sim,
        planner_mode=arguments.planner_mode,
        checkpoint=arguments.checkpoint,
        executor_backend=arguments.executor_backend,
        camera_topics=arguments.camera_topics,
        task=arguments.task,
        seed=arguments.seed,
        config_dir=arguments.config_dir,
    )


def node_command(planned: graph.PlannedNode, overrides_dir: Path) -> list[str]:
    """The command line that runs one planned node as launch_ros would: its module, its
    parameter file, then its overrides as a second parameter file (later files win)."""
    command = [sys.executable, "-m", planned.spec.module, "--ros-args"]
    command += ["--params-file", str(planned.parameter_file)]
    if planned.overrides:
        overrides = overrides_dir / f"{planned.spec.name}_overrides.yaml"
        section = {planned.spec.name: {"ros__parameters": planned.overrides}}
        overrides.write_text(yaml.safe_dump(section))
        command += ["--params-file", str(overrides)]
    return command


class NodeProcesses:
    """The graph's node processes: started together, watched, stopped together."""

    def __init__(self, plan: list[graph.PlannedNode]) -> None:
        self._overrides_dir = tempfile.TemporaryDirectory(prefix="wav_bringup_")
        self.processes: dict[str, subprocess.Popen] = {}
        try:
            for planned in plan:
                command = node_command(planned, Path(self._overrides_dir.name))
                self.processes[planned.spec.name] = subprocess.Popen(command)
        except BaseException:
            self.stop()
            raise

    def exited(self) -> dict[str, int]:
        """Nodes whose process has ended, with its exit code."""
        return {
            name: process.returncode
            for name, process in self.processes.items()
            if process.poll() is not None
        }

    def stop(self) -> None:
        """SIGINT to every node (a clean rclpy shutdown), then SIGKILL after STOP_TIMEOUT_S."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"[bringup] {name} did not stop in {STOP_TIMEOUT_S} s: killed", flush=True)
                process.kill()
                process.wait()
        self._overrides_dir.cleanup()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    arguments = build_parser().parse_args(argv)
    # SIGTERM (a supervisor, `kill`) stops the nodes as Ctrl-C does, never orphans them.
    signal.signal(signal.SIGTERM, _interrupt)
    nodes = NodeProcesses(plan_for(arguments))
    try:
        names = ", ".join(nodes.processes)
        print(f"[bringup] started: {names}", flush=True)
        if not arguments.run_task:
            return watch(nodes)
        return run_task(arguments, nodes)
    except KeyboardInterrupt:
        return 0
    finally:
        nodes.stop()


def watch(nodes: NodeProcesses) -> int:
    """Wait until a node exits (or Ctrl-C); a node exiting ends the bringup, named."""
    while not (exited := nodes.exited()):
        time.sleep(0.5)
    print(f"[bringup] node process ended: {exited}; stopping the graph", flush=True)
    return 1


def run_task(arguments: argparse.Namespace, nodes: NodeProcesses) -> int:
    from wav_ros.nodes.task_runner import TaskRunner, TaskRunnerConfig

    rclpy.init()
    runner = TaskRunner()
    executor = SingleThreadedExecutor()
    executor.add_node(runner)
    spinner = spin_in_background(executor, "task_runner")
    try:
        config = TaskRunnerConfig(
            instruction=arguments.instruction,
            steps_per_plan=arguments.steps_per_plan,
            max_steps=arguments.max_steps,
            value_threshold=arguments.value_threshold,
            timeout=arguments.timeout,
        )
        started = time.perf_counter()
        report = runner.run(config).summary()
        report["wall_time"] = time.perf_counter() - started
        report["node_exits"] = nodes.exited()
    except ExternalShutdownException:
        return 1
    finally:
        executor.shutdown()
        spinner.join()
        runner.destroy_node()
        rclpy.try_shutdown()
    text = json.dumps(report, indent=2)
    print(f"[bringup] task report:\n{text}", flush=True)
    if arguments.report:
        arguments.report.write_text(text + "\n")
    # 0 when the graph ran the episode (whatever its outcome, which the report gives); 1 when
    # it could not: no plan was ever executed, or a node process died.
    return 0 if report["steps"] > 0 and not report["node_exits"] else 1


if __name__ == "__main__":
    sys.exit(main())
