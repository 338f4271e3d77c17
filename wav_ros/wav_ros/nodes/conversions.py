"""Conversions between ROS messages and the numpy arrays the ML core works on.

Imports message packages only (no rclpy), so every conversion is unit-testable. Each one
validates what it receives and raises ValueError naming what was wrong: a corrupt tensor or a
non-finite trajectory never reaches the model or the arms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from wav_interfaces.msg import ImaginedRollout, LatentTrajectoryFeatures, Observation, Tensor
from wav_ros.nodes.image_codec import array_to_image, image_to_array

NANOSECONDS = 1_000_000_000


def seconds_to_time(seconds: float) -> Time:
    nanoseconds = round(seconds * NANOSECONDS)
    return Time(sec=nanoseconds // NANOSECONDS, nanosec=nanoseconds % NANOSECONDS)


def time_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec / NANOSECONDS


def seconds_to_duration(seconds: float) -> Duration:
    nanoseconds = round(seconds * NANOSECONDS)
    return Duration(sec=nanoseconds // NANOSECONDS, nanosec=nanoseconds % NANOSECONDS)


def duration_to_seconds(duration: Duration) -> float:
    return duration.sec + duration.nanosec / NANOSECONDS


def array_to_tensor(name: str, array: np.ndarray) -> Tensor:
    """Pack an array as a float32 Tensor message (row-major)."""
    values = np.ascontiguousarray(array, dtype=np.float32)
    message = Tensor(name=name, shape=[int(size) for size in values.shape])
    message.data = values.ravel()
    return message


def tensor_to_array(message: Tensor, *, name: str | None = None) -> np.ndarray:
    """Unpack a Tensor message; refuse a wrong name, a shape/data mismatch or non-finite data."""
    if name is not None and message.name != name:
        raise ValueError(f"expected tensor {name!r}, got {message.name!r}")
    shape = tuple(int(size) for size in message.shape)
    data = np.asarray(message.data, dtype=np.float32)
    if int(np.prod(shape, dtype=np.int64)) != data.size:
        raise ValueError(
            f"tensor {message.name!r}: shape {shape} needs {int(np.prod(shape))} values, "
            f"got {data.size}"
        )
    if not np.all(np.isfinite(data)):
        raise ValueError(f"tensor {message.name!r} contains NaN or inf")
    return data.reshape(shape)


def arrays_to_features(
    header: Header, context_id: str, tensors: dict[str, np.ndarray]
) -> LatentTrajectoryFeatures:
    """Pack named arrays that share a leading batch dimension as LatentTrajectoryFeatures."""
    batch_sizes = {array.shape[0] for array in tensors.values()}
    if len(batch_sizes) != 1:
        raise ValueError(f"feature tensors disagree on the batch size: {sorted(batch_sizes)}")
    return LatentTrajectoryFeatures(
        header=header,
        context_id=context_id,
        batch_size=batch_sizes.pop(),
        tensors=[array_to_tensor(name, array) for name, array in tensors.items()],
    )


def features_to_arrays(message: LatentTrajectoryFeatures) -> dict[str, np.ndarray]:
    """Unpack LatentTrajectoryFeatures; every tensor must carry batch_size rows."""
    arrays = {tensor.name: tensor_to_array(tensor) for tensor in message.tensors}
    for name, array in arrays.items():
        if array.ndim == 0 or array.shape[0] != message.batch_size:
            raise ValueError(
                f"feature tensor {name!r} has shape {array.shape}, "
                f"expected a leading batch of {message.batch_size}"
            )
    return arrays


def actions_to_trajectory(
    actions: np.ndarray,
    joint_names: Sequence[str],
    *,
    header: Header,
    dt: float,
    times_from_start: np.ndarray | None = None,
) -> JointTrajectory:
    """A chunk of absolute joint positions (T, J) → JointTrajectory, one point every dt seconds
    unless `times_from_start` (T,) gives each point's time (a chunk slowed to the velocity
    limits, see `wav_ros.execution.time_within_velocity_limits`).

    The first point is at dt (the current state is at 0), as a joint_trajectory_controller
    expects for a trajectory that starts from where the arms are.
    """
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != len(joint_names):
        raise ValueError(
            f"actions must have shape (steps, {len(joint_names)}), got {actions.shape}"
        )
    if not np.all(np.isfinite(actions)):
        raise ValueError("actions contain NaN or inf")
    if dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    if times_from_start is None:
        times_from_start = dt * np.arange(1, len(actions) + 1)
    times = np.asarray(times_from_start, dtype=np.float64)
    increasing = np.all(np.diff(times) > 0) and np.all(times > 0)
    if times.shape != (len(actions),) or not increasing:
        raise ValueError(
            f"times_from_start must be {len(actions)} increasing times > 0, got {times}"
        )
    points = [
        JointTrajectoryPoint(positions=row.tolist(), time_from_start=seconds_to_duration(time))
        for row, time in zip(actions, times, strict=True)
    ]
    return JointTrajectory(header=header, joint_names=list(joint_names), points=points)


def trajectory_to_arrays(trajectory: JointTrajectory) -> tuple[np.ndarray, np.ndarray]:
    """JointTrajectory → (times_from_start (T,), positions (T, J)); shapes checked, not values."""
    joints = len(trajectory.joint_names)
    rows = [list(point.positions) for point in trajectory.points]
    bad = [index for index, row in enumerate(rows) if len(row) != joints]
    if bad:
        raise ValueError(
            f"trajectory points {bad[:5]} do not have one position per joint ({joints})"
        )
    times = np.array(
        [duration_to_seconds(point.time_from_start) for point in trajectory.points], np.float64
    )
    positions = np.array(rows, dtype=np.float64).reshape(len(rows), joints)
    return times, positions


def observation_to_arrays(
    observation: Observation, camera_names: Sequence[str], joint_names: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Observation → ({camera: uint8 (H, W, 3) RGB}, joint positions (J,) in joint_names order).

    Refuses a missing camera, an unsupported encoding, missing joints or non-finite positions.
    """
    by_name = dict(zip(observation.camera_names, observation.images, strict=False))
    if len(observation.camera_names) != len(observation.images):
        raise ValueError(
            f"observation names {len(observation.camera_names)} cameras but carries "
            f"{len(observation.images)} images"
        )
    missing = [name for name in camera_names if name not in by_name]
    if missing:
        raise ValueError(
            f"observation lacks camera(s) {missing}; it has {list(observation.camera_names)}"
        )
    images = {name: image_to_array(by_name[name], source=name) for name in camera_names}
    positions = dict(
        zip(observation.joint_state.name, observation.joint_state.position, strict=False)
    )
    missing_joints = [name for name in joint_names if name not in positions]
    if missing_joints:
        raise ValueError(f"joint state lacks joint(s) {missing_joints}")
    state = np.array([positions[name] for name in joint_names], dtype=np.float32)
    if not np.all(np.isfinite(state)):
        raise ValueError("joint state contains NaN or inf")
    return images, state


def rollout_message(
    header: Header,
    instruction: str,
    camera_names: list[str],
    frames: np.ndarray | None,
    values: np.ndarray,
    snr: float,
) -> ImaginedRollout:
    """An ImaginedRollout from decoded frames (future_frames, views, H, W, 3) and step values."""
    message = ImaginedRollout(
        header=header, instruction=instruction, camera_names=camera_names, snr=float(snr)
    )
    message.values = np.asarray(values, dtype=np.float32)
    if frames is not None:
        message.num_future_frames = int(frames.shape[0])
        message.frames = [array_to_image(view, header=header) for step in frames for view in step]
    return message
