"""A joint-space trajectory as plain arrays, independent of ROS messages.

The executor's safety code works on this type so that it can be tested without ROS, and so
that every backend (simulation, ros2_control, MoveIt) receives exactly what was checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _frozen_copy(values: object) -> np.ndarray:
    array = np.array(values, dtype=np.float64, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class JointTrajectoryData:
    """Waypoints of a joint-space trajectory, linearly interpolated between waypoints.

    Construction does not judge the content: a trajectory with NaNs, wrong lengths or times
    going backwards can be represented, so that the safety gate can refuse it with reasons
    instead of the converter crashing. The arrays are copied and made read-only, so that a
    trajectory cannot change after it was validated.
    """

    joint_names: tuple[str, ...]
    """Name of each column of `positions`."""
    times_from_start: np.ndarray
    """(T,) seconds from `stamp` at which each waypoint is reached."""
    positions: np.ndarray
    """(T, J) joint positions (rad; grippers normalised to [0, 1])."""
    stamp: float
    """Executor-clock time (s) at which `times_from_start` is zero; when the plan was made."""

    def __post_init__(self) -> None:
        if isinstance(self.joint_names, str) or not isinstance(self.joint_names, Sequence):
            raise TypeError(f"joint_names must be a sequence of str, got {self.joint_names!r}")
        names = tuple(self.joint_names)
        if not all(isinstance(name, str) for name in names):
            raise TypeError(f"joint_names must all be str, got {names!r}")
        object.__setattr__(self, "joint_names", names)
        object.__setattr__(self, "times_from_start", _frozen_copy(self.times_from_start))
        object.__setattr__(self, "positions", _frozen_copy(self.positions))
        object.__setattr__(self, "stamp", float(self.stamp))

    @property
    def num_waypoints(self) -> int:
        return int(self.times_from_start.shape[0]) if self.times_from_start.ndim == 1 else 0

    @property
    def duration(self) -> float:
        """Time from `stamp` to the last waypoint (assumes a validated trajectory)."""
        return float(self.times_from_start[-1])

    @property
    def end_time(self) -> float:
        return self.stamp + self.duration

    def sample(self, time_from_start: float) -> np.ndarray:
        """Positions at `time_from_start`, held at the first/last waypoint outside the range.

        Linear interpolation keeps every sample on a segment whose velocity the gate checked,
        so sampling at any rate never moves a joint faster than its limit.
        """
        times = self.times_from_start
        if time_from_start <= times[0]:
            return self.positions[0].copy()
        if time_from_start >= times[-1]:
            return self.positions[-1].copy()
        upper = int(np.searchsorted(times, time_from_start, side="right"))
        lower = upper - 1
        fraction = (time_from_start - times[lower]) / (times[upper] - times[lower])
        return self.positions[lower] + fraction * (self.positions[upper] - self.positions[lower])

    def remaining(self, from_time: float) -> JointTrajectoryData:
        """The part of this trajectory after executor time `from_time`, restamped to start then.

        Its first waypoint is the sample at `from_time`, so a controller given it starts from
        where the executor's setpoint is.
        """
        offset = from_time - self.stamp
        later = self.times_from_start > offset
        times = np.concatenate([[0.0], self.times_from_start[later] - offset])
        positions = np.vstack([self.sample(offset)[None, :], self.positions[later]])
        return JointTrajectoryData(self.joint_names, times, positions, from_time)
