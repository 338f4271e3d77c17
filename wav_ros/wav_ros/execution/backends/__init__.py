"""Backends that move the arms: simulation, ros2_control's joint_trajectory_controller, MoveIt.

Each imports its heavy or ROS dependencies lazily, so importing this package needs neither.
"""

from wav_ros.execution.backends.base import ExecutionBackend, IdealArmBackend

__all__ = ["ExecutionBackend", "IdealArmBackend"]
