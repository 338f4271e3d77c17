"""Backend executing chunks through MoveIt 2's trajectory execution manager (MoveItPy).

Written against MoveIt 2.12 (ROS 2 Jazzy) / 2.14 (Kilted), whose binding is
``MoveItPy.execute(robot_trajectory, controllers)``: the planning group is read from the
trajectory, there is no ``blocking`` flag, and the call blocks with the GIL released.
(Humble's 2.5 binding was ``execute(group_name, robot_trajectory, blocking=True)``.)
Cancel uses ``MoveItPy.get_trajectory_execution_manager().stop_execution()``; time
parameterisation uses ``RobotTrajectory.apply_totg_time_parameterization``. moveit_py is
imported only when the backend connects, so everything else here runs without MoveIt.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from wav_ros.execution.backends.base import ExecutionBackend
from wav_ros.execution.backends.joint_state import JointStateCache
from wav_ros.execution.backends.joint_trajectory import build_joint_trajectory_msg
from wav_ros.execution.limits import SafetyLimits
from wav_ros.execution.safety import Refusal, RefusedError, validate_trajectory
from wav_ros.execution.trajectory import JointTrajectoryData
from wav_ros.robot_description import ARM_SIDES, JOINT_NAMES

MOVEIT_PY_VERSION = "2.12 (Jazzy) / 2.14 (Kilted)"


def default_planning_groups(
    joint_names: tuple[str, ...] = JOINT_NAMES,
) -> dict[str, tuple[str, ...]]:
    """`left_arm`, `right_arm` (each arm's joints incl. gripper) and `both_arms`."""
    groups = {
        f"{side}_arm": tuple(name for name in joint_names if name.startswith(f"{side}_"))
        for side in ARM_SIDES
    }
    groups["both_arms"] = tuple(joint_names)
    return groups


@dataclass(frozen=True)
class MoveItBackendConfig:
    """How executor joints map onto the MoveIt robot model and how chunks are timed."""

    planning_groups: Mapping[str, tuple[str, ...]] = field(default_factory=default_planning_groups)
    """Planning group name → executor joints it actuates (as in the SRDF)."""
    urdf_joint_names: Mapping[str, str] = field(default_factory=dict)
    """Executor joint → URDF joint name, where they differ."""
    time_parameterization: Literal["totg", "plan"] = "totg"
    """'totg': re-time the waypoints with MoveIt's TOTG; 'plan': keep the plan's timing."""
    velocity_scaling: float = 1.0
    """TOTG velocity scaling factor in (0, 1]."""
    acceleration_scaling: float = 1.0
    """TOTG acceleration scaling factor in (0, 1]."""
    path_tolerance: float = 0.1
    """TOTG path tolerance (rad), MoveIt's default."""
    resample_dt: float = 0.1
    """TOTG resampling period (s), MoveIt's default."""
    controllers: tuple[str, ...] = ()
    """Controllers for MoveIt to use; empty lets MoveIt choose."""
    moving_tolerance: float = 1e-6
    """A joint moves when its range over the chunk exceeds this; picks the smallest group."""

    def __post_init__(self) -> None:
        for name in ("velocity_scaling", "acceleration_scaling"):
            value = getattr(self, name)
            if not (0 < value <= 1):
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if self.time_parameterization not in ("totg", "plan"):
            raise ValueError(
                "time_parameterization must be 'totg' or 'plan', "
                f"got {self.time_parameterization!r}"
            )
        if not self.planning_groups:
            raise ValueError("planning_groups must not be empty")
        for name in ("path_tolerance", "resample_dt"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be finite and > 0")


def select_planning_group(trajectory: JointTrajectoryData, config: MoveItBackendConfig) -> str:
    """The smallest planning group containing every joint the chunk moves.

    A chunk that moves only the left arm then goes to `left_arm`, leaving the right arm's
    controller free. Raises ValueError when no group covers the moving joints.
    """
    ranges = np.ptp(trajectory.positions, axis=0)
    moving = {
        name
        for name, extent in zip(trajectory.joint_names, ranges, strict=True)
        if extent > config.moving_tolerance
    }
    candidates = [
        (len(joints), name)
        for name, joints in config.planning_groups.items()
        if moving <= set(joints) and set(joints) <= set(trajectory.joint_names)
    ]
    if not candidates:
        raise ValueError(f"no planning group covers the moving joints {sorted(moving)}")
    return min(candidates)[1]


def group_trajectory(
    trajectory: JointTrajectoryData, group: str, config: MoveItBackendConfig
) -> JointTrajectoryData:
    """The chunk restricted to `group`'s joints, renamed to URDF joint names."""
    joints = config.planning_groups[group]
    columns = [trajectory.joint_names.index(name) for name in joints]
    names = tuple(config.urdf_joint_names.get(name, name) for name in joints)
    return JointTrajectoryData(
        names, trajectory.times_from_start, trajectory.positions[:, columns], trajectory.stamp
    )


def check_retimed(
    joint_trajectory_msg: Any, group: str, config: MoveItBackendConfig, limits: SafetyLimits
) -> list[Refusal]:
    """Re-check a (TOTG-retimed) trajectory_msgs/JointTrajectory against the safety limits.

    MoveIt's time parameterisation uses the URDF's limits, not the executor's; nothing
    leaves the node unless the retimed waypoints also respect the executor's.
    """
    to_executor = {config.urdf_joint_names.get(n, n): n for n in config.planning_groups[group]}
    names = tuple(to_executor.get(name, name) for name in joint_trajectory_msg.joint_names)
    points = joint_trajectory_msg.points
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in points]
    positions = np.array([list(p.positions) for p in points], dtype=np.float64)
    retimed = JointTrajectoryData(names, times, positions.reshape(len(points), -1), 0.0)
    joints = tuple(config.planning_groups[group])
    group_limits = dataclasses.replace(
        limits, joint_names=joints, joint_limits={n: limits.joint_limits[n] for n in joints}
    )
    return validate_trajectory(retimed, None, 0.0, group_limits)


class MoveItBackend(ExecutionBackend):
    """Executes each checked chunk with MoveIt; cancel/hold stops the execution manager.

    MoveIt cannot splice a new trajectory into a running one: a new chunk first stops the
    current execution, then executes. `update_joint_state` is fed by the node's joint_states
    callback (MoveIt's own state monitor is not consulted, so every backend reads state alike).
    """

    streams_commands = False

    def __init__(
        self,
        limits: SafetyLimits,
        config: MoveItBackendConfig | None = None,
        *,
        moveit: Any | None = None,
        max_state_age: float = 0.1,
        on_execution_done: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(limits.joint_names)
        self.limits = limits
        self.config = config or MoveItBackendConfig()
        unknown = {j for joints in self.config.planning_groups.values() for j in joints} - set(
            self.joint_names
        )
        if unknown:
            raise ValueError(f"planning groups name joints the executor lacks: {sorted(unknown)}")
        self.joint_states = JointStateCache(self.joint_names, max_state_age)
        self.on_execution_done = on_execution_done
        self._moveit = moveit
        self._worker: threading.Thread | None = None

    def connect(self, node_name: str = "wav_moveit_py") -> None:
        """Start MoveItPy (needs moveit_py and a robot description with these groups)."""
        if self._moveit is not None:
            return
        try:
            from moveit.planning import MoveItPy
        except ImportError as error:
            raise ImportError(
                f"the moveit backend needs moveit_py (MoveIt {MOVEIT_PY_VERSION}); install "
                "ros-<distro>-moveit-py and source it, or use the joint_trajectory backend"
            ) from error
        self._moveit = MoveItPy(node_name=node_name)

    def update_joint_state(self, names: list[str], positions: list[float], stamp: float) -> None:
        self.joint_states.update(names, positions, stamp)

    def read_state(self, now: float) -> np.ndarray | None:
        return self.joint_states.read(now)

    def send_trajectory(self, trajectory: JointTrajectoryData) -> None:
        self._check_names(trajectory.joint_names)
        self.connect()
        group = select_planning_group(trajectory, self.config)
        robot_trajectory = self._robot_trajectory(
            group_trajectory(trajectory, group, self.config), group
        )
        refusals = check_retimed(
            robot_trajectory.get_robot_trajectory_msg().joint_trajectory,
            group,
            self.config,
            self.limits,
        )
        if refusals:
            raise RefusedError(*refusals)
        self._stop_execution()
        self._worker = threading.Thread(target=self._execute, args=(robot_trajectory,), daemon=True)
        self._worker.start()

    def hold(self, positions: np.ndarray) -> None:
        """Stop the execution manager; the controllers then hold where they are."""
        self._stop_execution()

    def stop(self) -> None:
        self._stop_execution()

    def _robot_trajectory(self, trajectory: JointTrajectoryData, group: str) -> Any:
        from moveit.core.robot_state import RobotState
        from moveit.core.robot_trajectory import RobotTrajectory
        from moveit_msgs.msg import RobotTrajectory as RobotTrajectoryMsg

        robot_model = self._moveit.get_robot_model()
        start_state = RobotState(robot_model)
        start_state.set_joint_group_positions(group, trajectory.positions[0])
        message = RobotTrajectoryMsg()
        message.joint_trajectory = build_joint_trajectory_msg(trajectory)
        robot_trajectory = RobotTrajectory(robot_model)
        robot_trajectory.set_robot_trajectory_msg(start_state, message)
        robot_trajectory.joint_model_group_name = group
        if self.config.time_parameterization == "totg":
            retimed = robot_trajectory.apply_totg_time_parameterization(
                self.config.velocity_scaling,
                self.config.acceleration_scaling,
                path_tolerance=self.config.path_tolerance,
                resample_dt=self.config.resample_dt,
            )
            if not retimed:
                raise RuntimeError(f"MoveIt TOTG failed to time the chunk for group {group!r}")
        return robot_trajectory

    def _execute(self, robot_trajectory: Any) -> None:
        status = self._moveit.execute(robot_trajectory, controllers=list(self.config.controllers))
        if self.on_execution_done is not None:
            self.on_execution_done(status)

    def _stop_execution(self) -> None:
        if self._moveit is None:
            return
        self._moveit.get_trajectory_execution_manager().stop_execution()
        if self._worker is not None:
            self._worker.join(timeout=1.0)
            self._worker = None
