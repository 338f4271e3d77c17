"""action_executor: the ExecuteTrajectory action server, the only way plans reach the arms.

Every goal passes the execution safety gate (joint position and velocity limits from
config/action_executor.yaml, stale plans, distance from the current state, latched e-stop,
deadman heartbeat) and is blended into the motion in progress. A 50 Hz control loop on a
thread of its own (not an executor timer, so that no callback queue can delay a command) then
follows it; the goal reports progress and tracking error as feedback at `feedback_rate`.
Cancelling a goal, an e-stop on /wav/estop, a missing heartbeat on /wav/heartbeat or any fault
holds the arms still. The e-stop stays latched until /wav/estop/reset is called.

Backends (parameter `backend`): `sim` streams setpoints to sim_bridge on /sim/joint_commands;
`joint_trajectory` hands checked chunks to ros2_control's joint_trajectory_controller;
`moveit` executes them with MoveItPy (needs moveit_py, not installable on our CI machines).
"""

from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Empty, Header
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from wav_interfaces.action import ExecuteTrajectory
from wav_ros.control_loop import ControlLoop
from wav_ros.execution import ExecutionSession, FollowerConfig, JointTrajectoryData
from wav_ros.execution.session import OutcomeStatus
from wav_ros.nodes import conversions
from wav_ros.nodes.graph import EXECUTOR_BACKENDS, load_joint_limits
from wav_ros.nodes.qos import LATCHED, SENSOR_DATA
from wav_ros.nodes.spin import run_nodes, spin_in_background
from wav_ros.robot_description import CONTROL_HZ, JOINT_NAMES

RESULT_CODES = {
    OutcomeStatus.SUCCEEDED: ExecuteTrajectory.Result.SUCCEEDED,
    OutcomeStatus.ABORTED: ExecuteTrajectory.Result.ABORTED,
    OutcomeStatus.CANCELED: ExecuteTrajectory.Result.CANCELED,
    OutcomeStatus.SUPERSEDED: ExecuteTrajectory.Result.ABORTED,
}


class ActionExecutorNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("action_executor", **kwargs)
        declare = self.declare_parameter
        declare("backend", "sim")
        declare("limits_file", "")
        declare("deadman_timeout", 0.5)
        declare("blend_window", 0.2)
        declare("max_tracking_error", 0.5)
        declare("joint_states_topic", "/joint_states")
        declare("max_joint_state_age", 0.25)
        declare("command_topic", "/sim/joint_commands")
        declare("controller_topic", "/bimanual_controller/joint_trajectory")
        declare("controller_action", "/bimanual_controller/follow_joint_trajectory")
        declare("feedback_rate", 10.0)

        self.limits = load_joint_limits(self.get_parameter("limits_file").value)
        deadman = self.get_parameter("deadman_timeout").value
        tracking = self.get_parameter("max_tracking_error").value
        follower = FollowerConfig(
            control_hz=CONTROL_HZ,
            blend_window=self.get_parameter("blend_window").value,
            deadman_timeout=deadman if deadman > 0 else None,
            max_tracking_error=tracking if tracking > 0 else None,
        )
        self.backend = self._make_backend(self.get_parameter("backend").value)
        self.session = ExecutionSession(self.backend, self.limits, follower)
        self._last_report = None
        self._tick_done = threading.Condition()

        # Joint states feed the safety checks of every tick: they get a node and a thread of
        # their own, so no callback queued in this node's executor can delay them.
        self._state_node = Node(f"{self.get_name()}_joint_states", context=self.context)
        self._state_node.create_subscription(
            JointState,
            self.get_parameter("joint_states_topic").value,
            self._on_joint_state,
            SENSOR_DATA,
        )
        self._state_executor = SingleThreadedExecutor(context=self.context)
        self._state_executor.add_node(self._state_node)
        spin_in_background(self._state_executor, "joint_states")
        self.create_subscription(Bool, "/wav/estop", self._on_estop, LATCHED)
        self.create_subscription(Empty, "/wav/heartbeat", self._on_heartbeat, 10)
        self.create_service(Trigger, "/wav/estop/reset", self._on_estop_reset)
        self._server = ActionServer(
            self,
            ExecuteTrajectory,
            "/wav/execute_trajectory",
            execute_callback=self._execute,
            goal_callback=lambda goal: GoalResponse.ACCEPT,
            cancel_callback=lambda goal_handle: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )
        self._control_loop = ControlLoop(
            CONTROL_HZ,
            self._on_tick,
            name="action_executor",
            keep_running=self.context.ok,
            on_error=self._on_loop_error,
        ).start()

    # ------------------------------------------------------------------ set-up
    @property
    def _state_age(self) -> float:
        return float(self.get_parameter("max_joint_state_age").value)

    def _make_backend(self, name: str):
        if name == "sim":
            from wav_ros.execution.backends.joint_command import JointCommandBackend

            publisher = self.create_publisher(
                JointState, self.get_parameter("command_topic").value, 10
            )

            def publish(names: tuple[str, ...], positions: np.ndarray) -> None:
                message = JointState(
                    header=Header(stamp=self.get_clock().now().to_msg()), name=list(names)
                )
                message.position = positions.tolist()
                publisher.publish(message)

            return JointCommandBackend(JOINT_NAMES, publish, max_state_age=self._state_age)
        if name == "joint_trajectory":
            from wav_ros.execution.backends.joint_trajectory import (
                JointTrajectoryControllerBackend,
                default_interface,
            )

            interface = default_interface()
            if interface == "action":
                from control_msgs.action import FollowJointTrajectory
                from rclpy.action import ActionClient

                client = ActionClient(
                    self, FollowJointTrajectory, self.get_parameter("controller_action").value
                )
                goals: list = []

                def send_goal(goal) -> None:
                    goals.append(client.send_goal_async(goal))

                def cancel_goal() -> None:
                    for future in goals:
                        if future.done() and future.result() is not None:
                            future.result().cancel_goal_async()
                    goals.clear()

                return JointTrajectoryControllerBackend(
                    JOINT_NAMES,
                    send_goal,
                    interface="action",
                    cancel_goal=cancel_goal,
                    max_state_age=self._state_age,
                )
            publisher = self.create_publisher(
                JointTrajectory, self.get_parameter("controller_topic").value, 10
            )
            return JointTrajectoryControllerBackend(
                JOINT_NAMES, publisher.publish, interface="topic", max_state_age=self._state_age
            )
        if name == "moveit":
            from wav_ros.execution.backends.moveit import MoveItBackend

            backend = MoveItBackend(self.limits, max_state_age=self._state_age)
            backend.connect(node_name=f"{self.get_name()}_moveit_py")
            return backend
        raise ValueError(f"unknown backend {name!r}; choose one of {EXECUTOR_BACKENDS}")

    # ------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_state(self, message: JointState) -> None:
        stamp = conversions.time_to_seconds(message.header.stamp) or self._now()
        try:
            self.backend.update_joint_state(list(message.name), list(message.position), stamp)
        except ValueError as error:
            self.get_logger().warning(f"ignored joint state: {error}", throttle_duration_sec=1.0)

    def _on_estop(self, message: Bool) -> None:
        self.session.set_estop(bool(message.data), "e-stop asserted on /wav/estop")
        if message.data:
            self.get_logger().error("E-STOP: arms holding; call /wav/estop/reset to release")

    def _on_estop_reset(self, request: Trigger.Request, response: Trigger.Response):
        verdict = self.session.reset_estop()
        response.success = verdict.accepted
        response.message = "e-stop released" if verdict.accepted else verdict.reason
        return response

    def _on_heartbeat(self, message: Empty) -> None:
        self.session.heartbeat(self._now())

    def _on_loop_error(self, error: BaseException) -> None:
        self.get_logger().fatal(f"control loop stopped: {error!r}; holding the arms")
        self.backend.stop()

    def _on_tick(self) -> None:
        report = self.session.tick(self._now())
        if report.fault is not None:
            self.get_logger().error(f"fault, holding: {report.fault}", throttle_duration_sec=1.0)
        with self._tick_done:
            self._last_report = report
            self._tick_done.notify_all()

    # ------------------------------------------------------------------ action
    def _execute(self, goal_handle) -> ExecuteTrajectory.Result:
        result = ExecuteTrajectory.Result()
        now = self._now()
        try:
            trajectory = self._trajectory_data(goal_handle.request.trajectory, now)
        except ValueError as error:
            return self._finish(goal_handle, result, ExecuteTrajectory.Result.REFUSED, str(error))
        submitted = self.session.submit(trajectory, now)
        if not submitted.verdict.accepted:
            return self._finish(
                goal_handle,
                result,
                ExecuteTrajectory.Result.REFUSED,
                f"refused: {submitted.verdict.reason}",
            )
        trajectory_id = submitted.trajectory_id
        max_error = 0.0
        feedback_period = 1.0 / max(float(self.get_parameter("feedback_rate").value), 1e-3)
        next_feedback = 0.0
        while True:
            with self._tick_done:
                self._tick_done.wait(timeout=0.5)
                report = self._last_report
            if goal_handle.is_cancel_requested or not self.context.ok():
                # Cancelled, or the node is shutting down (nobody left to report to): hold.
                self.session.cancel(self._now(), trajectory_id)
                if not self.context.ok():
                    result.error_code = ExecuteTrajectory.Result.ABORTED
                    result.message = "the executor is shutting down"
                    return result
            outcome = self.session.outcome(trajectory_id)
            ours = report is not None and report.trajectory_id == trajectory_id
            if ours and np.isfinite(report.tracking_error):
                max_error = max(max_error, float(report.tracking_error))
            if ours and (outcome is not None or time.monotonic() >= next_feedback):
                next_feedback = time.monotonic() + feedback_period
                goal_handle.publish_feedback(
                    ExecuteTrajectory.Feedback(
                        progress=float(report.progress),
                        tracking_error=float(report.tracking_error),
                        waypoint_index=int(report.progress * max(trajectory.num_waypoints - 1, 0)),
                    )
                )
            if outcome is not None:
                break
        result.max_tracking_error = max_error
        code = RESULT_CODES[outcome.status]
        if self.session.gate.estop.latched and code != ExecuteTrajectory.Result.SUCCEEDED:
            code = ExecuteTrajectory.Result.ESTOPPED
        # A chunk superseded by the next one is how blending works, not a problem to report.
        superseded = outcome.status is OutcomeStatus.SUPERSEDED
        message = outcome.reason or outcome.status.value
        return self._finish(goal_handle, result, code, message, warn=not superseded)

    def _finish(self, goal_handle, result, code: int, message: str, *, warn: bool = True):
        result.error_code, result.message = code, message
        if code == ExecuteTrajectory.Result.SUCCEEDED:
            goal_handle.succeed()
        elif code == ExecuteTrajectory.Result.CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            if warn:
                self.get_logger().warning(f"goal not executed: {message}")
            goal_handle.abort()
        return result

    def _trajectory_data(self, message: JointTrajectory, now: float) -> JointTrajectoryData:
        """Message → plain arrays; a zero stamp means "start now" (ROS convention)."""
        times, positions = conversions.trajectory_to_arrays(message)
        stamp = conversions.time_to_seconds(message.header.stamp) or now
        return JointTrajectoryData(tuple(message.joint_names), times, positions, stamp)

    def destroy_node(self) -> None:
        try:
            self._control_loop.stop()
        finally:
            self.backend.stop()
            self._state_executor.shutdown()
            self._state_node.destroy_node()
            super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_nodes([ActionExecutorNode], args=args, threads=4)


if __name__ == "__main__":
    main()
