"""`wav`: the command-line client of a running wav_ros graph, for machines without the ros2 CLI.

wav plan "hand the red cube to the left arm" --iterations 3 --seed 0
    ≡ ros2 service call /wav/plan wav_interfaces/srv/Plan "{instruction: '...'}"
wav run-task --max-steps 400
wav status
wav estop on|off|reset
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from wav_interfaces.msg import PlannerStatus, PlanOptions
from wav_interfaces.srv import Plan
from wav_ros.nodes.qos import LATCHED
from wav_ros.nodes.spin import spin_in_background


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wav", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=30.0)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="call /wav/plan and print the result")
    plan.add_argument("instruction")
    plan.add_argument("--iterations", type=int, default=-1, help="K; -1 = configured")
    plan.add_argument("--video-samples", type=int, default=0, help="M; 0 = configured")
    plan.add_argument("--value-samples", type=int, default=0, help="N; 0 = configured")
    plan.add_argument("--seed", type=int, default=None)
    plan.add_argument("--rollout", action="store_true", help="return the imagined frames")
    plan.add_argument("--reset", action="store_true", help="drop the planner's warm start")
    plan.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run = commands.add_parser("run-task", help="closed loop: plan, execute, re-plan")
    run.add_argument("--instruction", default="", help="'' = the simulated task's own")
    run.add_argument(
        "--steps-per-plan",
        type=int,
        default=None,
        help="points executed per plan (default: the plan's execute_steps, the checkpoint's)",
    )
    run.add_argument("--max-steps", type=int, default=400)
    run.add_argument("--value-threshold", type=float, default=float("-inf"))
    commands.add_parser("status", help="print the planner's latched status")
    estop = commands.add_parser("estop", help="assert, release or reset the e-stop")
    estop.add_argument("action", choices=("on", "off", "reset"))
    return parser


def plan_options(arguments: argparse.Namespace) -> PlanOptions:
    return PlanOptions(
        iterations=arguments.iterations,
        num_video_samples=arguments.video_samples,
        num_value_samples=arguments.value_samples,
        use_seed=arguments.seed is not None,
        seed=arguments.seed or 0,
        return_rollout=arguments.rollout,
        reset_warm_start=arguments.reset,
    )


def describe_plan(response: Plan.Response) -> dict[str, object]:
    points = response.trajectory.points
    return {
        "success": response.success,
        "message": response.message,
        "planning_time": round(float(response.planning_time), 4),
        "predicted_value": round(float(response.predicted_value), 4),
        "steps": len(points),
        "joint_names": list(response.trajectory.joint_names),
        "first_point": [round(v, 4) for v in points[0].positions] if points else [],
        "last_point": [round(v, 4) for v in points[-1].positions] if points else [],
        "imagined_frames": len(response.best_rollout.frames),
        "stats": dict(
            zip(response.stat_names, (round(v, 4) for v in response.stat_values), strict=True)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    rclpy.init()
    node = Node("wav_cli")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = spin_in_background(executor, "wav_cli")
    try:
        return COMMANDS[arguments.command](node, executor, arguments)
    finally:
        executor.shutdown()
        spinner.join()
        node.destroy_node()
        rclpy.try_shutdown()


def command_plan(node: Node, executor, arguments: argparse.Namespace) -> int:
    client = node.create_client(Plan, "/wav/plan")
    if not client.wait_for_service(timeout_sec=arguments.timeout):
        print("/wav/plan is not available: is the graph running (bringup or launch)?")
        return 2
    request = Plan.Request(instruction=arguments.instruction, options=plan_options(arguments))
    response = client.call(request, timeout_sec=arguments.timeout)
    if response is None:
        print(f"/wav/plan did not answer within {arguments.timeout} s")
        return 2
    summary = describe_plan(response)
    if arguments.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"success: {response.success}\nmessage: {response.message}")
        if response.success:
            for key in ("planning_time", "predicted_value", "steps", "first_point", "last_point"):
                print(f"{key}: {summary[key]}")
    return 0 if response.success else 1


def command_run_task(node: Node, executor, arguments: argparse.Namespace) -> int:
    from wav_ros.nodes.task_runner import TaskRunner, TaskRunnerConfig

    runner = TaskRunner()
    executor.add_node(runner)
    report = runner.run(
        TaskRunnerConfig(
            instruction=arguments.instruction,
            steps_per_plan=arguments.steps_per_plan,
            max_steps=arguments.max_steps,
            value_threshold=arguments.value_threshold,
            timeout=arguments.timeout,
        )
    ).summary()
    print(json.dumps(report, indent=2))
    return 0 if report["success"] else 1


def command_status(node: Node, executor, arguments: argparse.Namespace) -> int:
    received = threading.Event()
    status: list[PlannerStatus] = []

    def on_status(message: PlannerStatus) -> None:
        status.append(message)
        received.set()

    node.create_subscription(PlannerStatus, "/wav/status", on_status, LATCHED)
    if not received.wait(arguments.timeout):
        print("no status on /wav/status: is latent_planner running?")
        return 2
    message = status[-1]
    for slot in message.get_fields_and_field_types():
        if slot != "header":
            print(f"{slot}: {getattr(message, slot)}")
    return 0


def command_estop(node: Node, executor, arguments: argparse.Namespace) -> int:
    if arguments.action == "reset":
        client = node.create_client(Trigger, "/wav/estop/reset")
        if not client.wait_for_service(timeout_sec=arguments.timeout):
            print("/wav/estop/reset is not available: is action_executor running?")
            return 2
        response = client.call(Trigger.Request(), timeout_sec=arguments.timeout)
        print(response.message if response else "no answer")
        return 0 if response and response.success else 1
    publisher = node.create_publisher(Bool, "/wav/estop", LATCHED)
    publisher.publish(Bool(data=arguments.action == "on"))
    matched = threading.Event()
    # A latched message reaches the executor even if it subscribes later; wait for one match
    # so the process does not exit before DDS delivered it.
    node.create_timer(0.05, lambda: publisher.get_subscription_count() and matched.set())
    if not matched.wait(arguments.timeout):
        print("no subscriber on /wav/estop: is action_executor running?")
        return 2
    print(f"e-stop {arguments.action}")
    return 0


COMMANDS = {
    "plan": command_plan,
    "run-task": command_run_task,
    "status": command_status,
    "estop": command_estop,
}


if __name__ == "__main__":
    sys.exit(main())
