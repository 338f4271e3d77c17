"""Backend for ros2_control's joint_trajectory_controller (JTC).

Trajectories go to the controller's FollowJointTrajectory action when `control_msgs` is
importable, else to its `~/joint_trajectory` topic. Message classes are imported lazily, and
the rclpy publisher / action client belong to the node, which passes a `publish` callable:
this module only builds messages from checked trajectories.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from wav_ros.execution.backends.base import ExecutionBackend
from wav_ros.execution.backends.joint_state import JointStateCache
from wav_ros.execution.trajectory import JointTrajectoryData

Interface = Literal["action", "topic"]


def default_interface() -> Interface:
    """'action' when control_msgs (FollowJointTrajectory) can be imported, else 'topic'."""
    return "action" if importlib.util.find_spec("control_msgs") is not None else "topic"


def duration_parts(seconds: float) -> tuple[int, int]:
    """(sec, nanosec) of a non-negative duration, as builtin_interfaces/Duration wants."""
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"duration must be finite and >= 0, got {seconds}")
    total = round(seconds * 1e9)
    return total // 1_000_000_000, total % 1_000_000_000


def build_joint_trajectory_msg(trajectory: JointTrajectoryData) -> Any:
    """A trajectory_msgs/JointTrajectory that starts on receipt (header.stamp zero).

    Only positions are set, so the controller interpolates linearly between waypoints, the
    same path the executor checked (with velocities it would fit cubic splines, which can
    overshoot between waypoints).
    """
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    message = JointTrajectory()
    message.joint_names = list(trajectory.joint_names)
    points = []
    for time, positions in zip(trajectory.times_from_start, trajectory.positions, strict=True):
        point = JointTrajectoryPoint()
        point.positions = [float(value) for value in positions]
        point.time_from_start.sec, point.time_from_start.nanosec = duration_parts(float(time))
        points.append(point)
    message.points = points
    return message


def build_follow_joint_trajectory_goal(
    trajectory: JointTrajectoryData, goal_time_tolerance: float
) -> Any:
    """A control_msgs/FollowJointTrajectory goal for `trajectory` (needs control_msgs)."""
    from control_msgs.action import FollowJointTrajectory

    goal = FollowJointTrajectory.Goal()
    goal.trajectory = build_joint_trajectory_msg(trajectory)
    sec, nanosec = duration_parts(goal_time_tolerance)
    goal.goal_time_tolerance.sec, goal.goal_time_tolerance.nanosec = sec, nanosec
    return goal


class JointTrajectoryControllerBackend(ExecutionBackend):
    """Hands each checked chunk to the JTC, which replaces its current trajectory with it.

    `publish` sends a message: a JointTrajectory on the topic, or a FollowJointTrajectory
    goal through the node's action client. `cancel_goal` (action only) cancels the active
    goal. The measured state comes from the node's joint_states callback via
    `update_joint_state`.
    """

    streams_commands = False

    def __init__(
        self,
        joint_names: tuple[str, ...],
        publish: Callable[[Any], None],
        *,
        interface: Interface | None = None,
        cancel_goal: Callable[[], None] | None = None,
        max_state_age: float = 0.1,
        hold_time: float = 0.05,
        goal_time_tolerance: float = 0.1,
    ) -> None:
        super().__init__(joint_names)
        self.interface: Interface = interface or default_interface()
        if self.interface not in ("action", "topic"):
            raise ValueError(f"interface must be 'action' or 'topic', got {self.interface!r}")
        if hold_time <= 0 or goal_time_tolerance < 0:
            raise ValueError("hold_time must be > 0 and goal_time_tolerance >= 0")
        self.publish = publish
        self.cancel_goal = cancel_goal
        self.hold_time = hold_time
        self.goal_time_tolerance = goal_time_tolerance
        self.joint_states = JointStateCache(self.joint_names, max_state_age)

    def update_joint_state(self, names: list[str], positions: list[float], stamp: float) -> None:
        self.joint_states.update(names, positions, stamp)

    def read_state(self, now: float) -> np.ndarray | None:
        return self.joint_states.read(now)

    def build_message(self, trajectory: JointTrajectoryData) -> Any:
        self._check_names(trajectory.joint_names)
        if self.interface == "action":
            return build_follow_joint_trajectory_goal(trajectory, self.goal_time_tolerance)
        return build_joint_trajectory_msg(trajectory)

    def send_trajectory(self, trajectory: JointTrajectoryData) -> None:
        self.publish(self.build_message(trajectory))

    def hold(self, positions: np.ndarray) -> None:
        """Cancel the goal (action) and command a single point at `positions`.

        The point is reached `hold_time` after receipt; positions is the last checked setpoint,
        at most one control period of motion from where the controller was commanded.
        """
        if self.interface == "action" and self.cancel_goal is not None:
            self.cancel_goal()
        point = JointTrajectoryData(
            self.joint_names, [self.hold_time], np.asarray(positions)[None, :], 0.0
        )
        self.publish(self.build_message(point))
