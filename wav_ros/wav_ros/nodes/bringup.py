"""In-process bringup: the whole graph in one process, for machines without `ros2 launch`.

Builds the same nodes as launch/bimanual.launch.py from the same spec (nodes/graph.py) with
the same parameter files and overrides, and spins them in one MultiThreadedExecutor. With
`--run-task` it then runs the closed-loop task runner against the graph and exits with its
report: the embedded default (`make demo`).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.parameter import Parameter

from wav_ros.nodes import graph
from wav_ros.nodes.model_host import ModelNode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bringup", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--task", default="", help="simulated task ('' = config/sim_bridge.yaml)")
    parser.add_argument("--planner-mode", choices=graph.PLANNER_MODES, default="local")
    parser.add_argument("--checkpoint", default="", help="checkpoint dir ('' = shipped tiny)")
    parser.add_argument("--executor-backend", choices=graph.EXECUTOR_BACKENDS, default="sim")
    parser.add_argument("--camera-topics", nargs="*", default=None)
    parser.add_argument("--config-dir", type=Path, default=None, help="folder of <node>.yaml")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--run-task", action="store_true", help="run one closed-loop episode")
    parser.add_argument("--instruction", default="", help="'' = the simulated task's own")
    parser.add_argument("--steps-per-plan", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--value-threshold", type=float, default=float("-inf"))
    parser.add_argument("--report", type=Path, default=None, help="write the report as JSON")
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
        config_dir=arguments.config_dir,
    )


def build_nodes(arguments: argparse.Namespace) -> list:
    """Construct the graph's nodes exactly as the launch file starts them: each with its own
    parameter file and the launch-argument overrides (nodes/graph.py: launch_plan)."""
    nodes = []
    for planned in plan_for(arguments):
        overrides = [Parameter(name, value=value) for name, value in planned.overrides.items()]
        node_class = planned.spec.load_class()
        nodes.append(
            node_class(
                cli_args=["--ros-args", "--params-file", str(planned.parameter_file)],
                parameter_overrides=overrides,
            )
        )
    return nodes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    arguments = build_parser().parse_args(argv[:split])
    rclpy.init(args=["bringup", *argv[split:]])
    nodes = []
    executor = MultiThreadedExecutor(num_threads=arguments.threads)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    try:
        nodes = build_nodes(arguments)
        for node in nodes:
            if isinstance(node, ModelNode):
                node.autostart()
            executor.add_node(node)
        spinner.start()
        names = ", ".join(node.get_name() for node in nodes)
        print(f"[bringup] ready: {names}", flush=True)
        if not arguments.run_task:
            spinner.join()
            return 0
        return run_task(arguments, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        executor.shutdown()
        if spinner.is_alive():
            spinner.join()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def run_task(arguments: argparse.Namespace, executor: MultiThreadedExecutor) -> int:
    from wav_ros.nodes.task_runner import TaskRunner, TaskRunnerConfig

    runner = TaskRunner()
    executor.add_node(runner)
    config = TaskRunnerConfig(
        instruction=arguments.instruction,
        steps_per_plan=arguments.steps_per_plan,
        max_steps=arguments.max_steps,
        value_threshold=arguments.value_threshold,
    )
    started = time.perf_counter()
    report = runner.run(config).summary()
    report["wall_time"] = time.perf_counter() - started
    text = json.dumps(report, indent=2)
    print(f"[bringup] task report:\n{text}", flush=True)
    if arguments.report:
        arguments.report.write_text(text + "\n")
    executor.remove_node(runner)
    runner.destroy_node()
    return 0 if report["success"] or report["stop_reason"].startswith("step budget") else 1


if __name__ == "__main__":
    sys.exit(main())
