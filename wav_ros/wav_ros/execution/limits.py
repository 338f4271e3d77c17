"""Safety limits of the executor, loaded from YAML or a dict (URDF-style limits per joint)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from wav_ros.robot_description import DEFAULT_JOINT_LIMITS, JOINT_NAMES, JointLimit

_JOINT_LIMIT_KEYS = frozenset({"lower", "upper", "velocity"})
#: Relative time added to a segment slowed to a velocity limit, so that its times, rounded to
#: whole nanoseconds in a ROS message, still keep the joint at or below the limit.
_TIMING_SLACK = 1e-6


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class SafetyLimits:
    """What a trajectory must satisfy before any of it may reach the arms.

    Every check refuses rather than clamps: a plan outside these limits is a planner bug or a
    stale/garbled message, and moving a clamped version of it would hide that.
    """

    joint_names: tuple[str, ...] = JOINT_NAMES
    """Joints the executor commands, in the order every trajectory must use."""
    joint_limits: Mapping[str, JointLimit] = field(
        default_factory=lambda: dict(DEFAULT_JOINT_LIMITS)
    )
    """Position (lower, upper) and velocity limit of each joint, URDF-style."""
    max_plan_age: float = 1.0
    """Seconds after its stamp beyond which a plan is refused as stale."""
    max_future_stamp: float = 0.05
    """Seconds a plan's stamp may lie ahead of the executor clock (clock skew allowance)."""
    max_start_deviation: float = 0.15
    """Largest per-joint distance (rad) between the plan at acceptance and the arms: their
    setpoint or, where it is nearer, their measured position."""
    force_limited_joints: tuple[str, ...] = ()
    """Joints whose measured position may stay away from the command because they press on
    objects (grippers closing on a cube): their commands are still checked against every
    limit, but the distance to their measured position counts for neither the start deviation
    nor the tracking error."""
    max_duration: float = 30.0
    """Longest trajectory (s) accepted; longer ones are refused as implausible."""
    max_waypoints: int = 10_000
    """Most waypoints accepted in one trajectory."""
    tolerance: float = 1e-9
    """Absolute slack on every comparison, so float rounding of in-limit values is not a fault."""

    def __post_init__(self) -> None:
        names = tuple(self.joint_names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"joint_names must be non-empty and unique, got {names!r}")
        missing = [name for name in names if name not in self.joint_limits]
        if missing:
            raise ValueError(f"joint_limits has no entry for joints {missing}")
        for name in names:
            limit = self.joint_limits[name]
            if not (math.isfinite(limit.lower) and math.isfinite(limit.upper)):
                raise ValueError(f"joint {name!r}: lower/upper must be finite, got {limit}")
            if limit.lower >= limit.upper:
                raise ValueError(f"joint {name!r}: lower must be < upper, got {limit}")
            _check_positive(f"joint {name!r} velocity", limit.velocity)
        for name in ("max_plan_age", "max_start_deviation", "max_duration"):
            _check_positive(name, getattr(self, name))
        if not (math.isfinite(self.max_future_stamp) and self.max_future_stamp >= 0):
            raise ValueError(
                f"max_future_stamp must be finite and >= 0, got {self.max_future_stamp}"
            )
        if not (math.isfinite(self.tolerance) and 0 <= self.tolerance < 1e-3):
            raise ValueError(f"tolerance must be in [0, 1e-3), got {self.tolerance}")
        if int(self.max_waypoints) != self.max_waypoints or self.max_waypoints < 1:
            raise ValueError(f"max_waypoints must be an integer >= 1, got {self.max_waypoints}")
        force_limited = tuple(self.force_limited_joints)
        unknown = [name for name in force_limited if name not in names]
        if unknown:
            raise ValueError(f"force_limited_joints names joints not commanded: {unknown}")
        object.__setattr__(self, "force_limited_joints", force_limited)
        mask = np.array([name not in force_limited for name in names])
        mask.setflags(write=False)
        object.__setattr__(self, "_position_tracked", mask)
        object.__setattr__(self, "joint_names", names)
        object.__setattr__(self, "joint_limits", {name: self.joint_limits[name] for name in names})
        for attribute, values in (
            ("lower", [self.joint_limits[n].lower for n in names]),
            ("upper", [self.joint_limits[n].upper for n in names]),
            ("velocity", [self.joint_limits[n].velocity for n in names]),
        ):
            array = np.asarray(values, dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, f"_{attribute}", array)

    @property
    def position_tracked(self) -> np.ndarray:
        """(J,) bool: joints whose measured position must follow the command."""
        return self._position_tracked  # type: ignore[attr-defined]

    @property
    def lower(self) -> np.ndarray:
        """(J,) lower position limits in `joint_names` order."""
        return self._lower  # type: ignore[attr-defined]

    @property
    def upper(self) -> np.ndarray:
        """(J,) upper position limits in `joint_names` order."""
        return self._upper  # type: ignore[attr-defined]

    @property
    def velocity(self) -> np.ndarray:
        """(J,) velocity limits (units/s) in `joint_names` order."""
        return self._velocity  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SafetyLimits:
        """Build limits from a dict such as a parsed YAML file.

        `joints` maps a joint name to any of lower/upper/velocity; unspecified values come
        from `wav_ros.robot_description.DEFAULT_JOINT_LIMITS`. Unknown keys are errors, so a
        typo cannot silently leave a default limit in place.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"safety limits must be a mapping, got {type(data).__name__}")
        scalar_names = {f.name for f in fields(cls)} - {"joint_limits", "joint_names"}
        unknown = set(data) - scalar_names - {"joints", "joint_names"}
        if unknown:
            raise ValueError(f"unknown safety limit keys {sorted(unknown)}")
        joint_names = tuple(data.get("joint_names", JOINT_NAMES))
        overrides = data.get("joints") or {}
        if not isinstance(overrides, Mapping):
            raise TypeError("'joints' must map joint names to {lower, upper, velocity}")
        unknown_joints = set(overrides) - set(joint_names)
        if unknown_joints:
            raise ValueError(f"limits given for joints not commanded: {sorted(unknown_joints)}")
        joint_limits: dict[str, JointLimit] = {}
        for name in joint_names:
            override = overrides.get(name) or {}
            bad_keys = set(override) - _JOINT_LIMIT_KEYS
            if bad_keys:
                raise ValueError(f"joint {name!r}: unknown limit keys {sorted(bad_keys)}")
            default = DEFAULT_JOINT_LIMITS.get(name)
            if default is None and set(override) != _JOINT_LIMIT_KEYS:
                raise ValueError(
                    f"joint {name!r} has no default limit: give lower, upper, velocity"
                )
            values = {key: getattr(default, key) for key in _JOINT_LIMIT_KEYS} if default else {}
            values.update({key: float(value) for key, value in override.items()})
            joint_limits[name] = JointLimit(**values)
        scalars = {key: data[key] for key in scalar_names if key in data}
        if "force_limited_joints" in scalars:
            scalars["force_limited_joints"] = tuple(scalars["force_limited_joints"])
        return cls(joint_names=joint_names, joint_limits=joint_limits, **scalars)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SafetyLimits:
        """Load limits from a YAML file with the layout of `from_dict`."""
        import yaml

        with Path(path).open(encoding="utf-8") as stream:
            data = yaml.safe_load(stream) or {}
        return cls.from_dict(data)


def start_from_state(
    positions: np.ndarray, state: np.ndarray, dt: float, limits: SafetyLimits
) -> tuple[np.ndarray, float]:
    """Waypoints (T or T+1, J) that begin where the arms are, and how far the first target lies.

    A model's chunk of targets (T, J) is meant one every `dt` seconds from the measured `state`
    (J,), but nothing makes its first target reachable in `dt`: an expert that turns the
    wrists at 7 rad/s teaches first targets up to 0.2 rad away. When a position-tracked joint
    could not reach its first target within `dt` at its velocity limit, the state is put in
    front of the chunk, so that `time_within_velocity_limits` times that first move like any
    other; within reach, the chunk is returned unchanged. Force-limited joints (grippers) are
    measured away from their command while they press, so the prepended waypoint keeps their
    first target and their distance counts for neither. A joint measured a little past its
    limit (a wrist pushed by contact) starts from the limit: nothing outside one is commanded.
    Returns (waypoints, largest distance of a position-tracked joint from its first target).
    """
    positions = np.asarray(positions, dtype=np.float64)
    state = np.asarray(state, dtype=np.float64)
    num_joints = len(limits.joint_names)
    if positions.ndim != 2 or positions.shape[1] != num_joints or positions.shape[0] == 0:
        raise ValueError(f"positions must have shape (T>=1, {num_joints}), got {positions.shape}")
    if state.shape != (num_joints,) or not np.all(np.isfinite(state)):
        raise ValueError(f"state must be {num_joints} finite values, got {state}")
    tracked = limits.position_tracked
    distance = np.abs(positions[0] - state) * tracked
    if np.all(distance <= limits.velocity * dt + limits.tolerance):
        return positions, float(distance.max())
    anchor = np.clip(np.where(tracked, state, positions[0]), limits.lower, limits.upper)
    return np.vstack([anchor[None], positions]), float(distance.max())


def time_within_velocity_limits(
    positions: np.ndarray, dt: float, limits: SafetyLimits
) -> np.ndarray:
    """Times from start (T,) for waypoints (T, J) meant to be reached one every `dt` seconds.

    Where a joint would move faster than its velocity limit between two waypoints, that
    segment is given the time the limit needs: the path is kept and only its fast stretches
    slow down, as a time parameterization does. The first waypoint stays at `dt`. Models that
    imitate demonstrations outrunning the limits (the scripted expert turns the wrists at up
    to 7 rad/s) would otherwise have whole plans refused by the executor's gate.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != len(limits.joint_names):
        raise ValueError(
            f"positions must have shape (T, {len(limits.joint_names)}), got {positions.shape}"
        )
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt}")
    needed = np.abs(np.diff(positions, axis=0)) / limits.velocity * (1.0 + _TIMING_SLACK)
    segments = np.maximum(dt, needed.max(axis=1, initial=0.0))
    return dt + np.concatenate([[0.0], np.cumsum(segments)])
