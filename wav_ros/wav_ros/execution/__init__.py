"""Execution safety core and backends (no rclpy): what decides what may reach the arms.

The rclpy `action_executor` node wraps `ExecutionSession`; everything that checks, blends,
holds and refuses lives here so it can be tested without ROS.
"""

from wav_ros.execution.backends.base import ExecutionBackend, IdealArmBackend
from wav_ros.execution.blending import blend_chunks
from wav_ros.execution.limits import (
    SafetyLimits,
    start_from_state,
    time_within_velocity_limits,
)
from wav_ros.execution.safety import (
    Deadman,
    EStop,
    Refusal,
    RefusalCode,
    RefusedError,
    SafetyGate,
    Verdict,
    enforce_limits,
    validate_trajectory,
)
from wav_ros.execution.session import (
    ExecutionSession,
    FollowerConfig,
    Outcome,
    OutcomeStatus,
    SessionState,
    SubmitResult,
    TickReport,
)
from wav_ros.execution.trajectory import JointTrajectoryData

__all__ = [
    "Deadman",
    "EStop",
    "ExecutionBackend",
    "ExecutionSession",
    "FollowerConfig",
    "IdealArmBackend",
    "JointTrajectoryData",
    "Outcome",
    "OutcomeStatus",
    "Refusal",
    "RefusalCode",
    "RefusedError",
    "SafetyGate",
    "SafetyLimits",
    "SessionState",
    "SubmitResult",
    "TickReport",
    "Verdict",
    "blend_chunks",
    "enforce_limits",
    "start_from_state",
    "time_within_velocity_limits",
    "validate_trajectory",
]
