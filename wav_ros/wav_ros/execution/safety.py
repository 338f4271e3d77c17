"""The checks that decide whether a trajectory or a single command may reach the arms.

Nothing here clamps: a trajectory or command outside the limits is refused, and every refusal
carries a code (for programs) and a message (for people) that says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from wav_ros.execution.limits import SafetyLimits
from wav_ros.execution.trajectory import JointTrajectoryData


class RefusalCode(StrEnum):
    """Why a trajectory, a command or a request was refused."""

    JOINT_NAMES = "joint_names"
    SHAPE = "shape"
    NOT_FINITE = "not_finite"
    TIMES = "times"
    TOO_LONG = "too_long"
    POSITION_LIMIT = "position_limit"
    VELOCITY_LIMIT = "velocity_limit"
    START_DEVIATION = "start_deviation"
    STALE = "stale"
    FUTURE_STAMP = "future_stamp"
    STATE = "state"
    ESTOP = "estop"
    DEADMAN = "deadman"
    BLEND = "blend"
    TRACKING = "tracking"
    BACKEND = "backend"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Refusal:
    """One reason something was refused."""

    code: RefusalCode
    message: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


@dataclass(frozen=True)
class Verdict:
    """The answer of a check: accepted when there is no refusal."""

    refusals: tuple[Refusal, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.refusals

    @property
    def reason(self) -> str:
        """All refusals as one human-readable line ('' when accepted)."""
        return "; ".join(str(refusal) for refusal in self.refusals)

    @property
    def codes(self) -> set[RefusalCode]:
        return {refusal.code for refusal in self.refusals}


class RefusedError(RuntimeError):
    """Raised where a refusal must interrupt the caller (a command at the last stage, a blend)."""

    def __init__(self, *refusals: Refusal) -> None:
        super().__init__("; ".join(str(refusal) for refusal in refusals))
        self.refusals = refusals


def _joint_name_refusals(names: tuple[str, ...], expected: tuple[str, ...]) -> list[Refusal]:
    if names == expected:
        return []
    duplicates = sorted({name for name in names if names.count(name) > 1})
    missing = [name for name in expected if name not in names]
    unknown = [name for name in names if name not in expected]
    parts = []
    if duplicates:
        parts.append(f"duplicated {duplicates}")
    if missing:
        parts.append(f"missing {missing}")
    if unknown:
        parts.append(f"unknown {unknown}")
    if not parts:
        parts.append(f"wrong order {list(names)}, expected {list(expected)}")
    return [Refusal(RefusalCode.JOINT_NAMES, "joint names: " + ", ".join(parts))]


def validate_trajectory(
    trajectory: JointTrajectoryData,
    current_positions: np.ndarray | None,
    now: float,
    limits: SafetyLimits,
    measured_positions: np.ndarray | None = None,
) -> list[Refusal]:
    """Every reason `trajectory` may not be executed at executor time `now`; [] if none.

    Structural faults (names, shapes, non-finite values) stop the checks early, since the
    remaining checks cannot interpret such data. `current_positions` (J,) are where the arms
    are commanded; the plan sampled at `now` must lie within `max_start_deviation` of them
    (plans are time-aligned: the part of a plan older than `now` is skipped). None skips that
    check. `measured_positions` (J,), where the arms are measured, may also anchor a joint's
    start: an arm carrying or pressing on something stays up to the tracking tolerance from
    its setpoint, and a planner that plans from the measured state starts its plan there.
    """
    if not math.isfinite(now):
        raise ValueError(f"now must be finite, got {now}")
    refusals = _joint_name_refusals(trajectory.joint_names, limits.joint_names)
    if refusals:
        return refusals
    num_joints = len(limits.joint_names)
    times, positions = trajectory.times_from_start, trajectory.positions
    if times.ndim != 1 or times.shape[0] == 0:
        return [Refusal(RefusalCode.SHAPE, f"times_from_start must be (T>=1,), got {times.shape}")]
    if positions.shape != (times.shape[0], num_joints):
        return [
            Refusal(
                RefusalCode.SHAPE,
                f"positions must be (T={times.shape[0]}, J={num_joints}), got {positions.shape}",
            )
        ]
    if times.shape[0] > limits.max_waypoints:
        return [
            Refusal(
                RefusalCode.TOO_LONG,
                f"{times.shape[0]} waypoints exceed max_waypoints={limits.max_waypoints}",
            )
        ]
    if not math.isfinite(trajectory.stamp):
        refusals.append(Refusal(RefusalCode.NOT_FINITE, f"stamp is {trajectory.stamp}"))
    if not np.all(np.isfinite(times)):
        bad = np.flatnonzero(~np.isfinite(times))
        refusals.append(
            Refusal(
                RefusalCode.NOT_FINITE, f"{bad.size} non-finite times, first at waypoint {bad[0]}"
            )
        )
    if not np.all(np.isfinite(positions)):
        rows, cols = np.nonzero(~np.isfinite(positions))
        refusals.append(
            Refusal(
                RefusalCode.NOT_FINITE,
                f"{rows.size} non-finite positions, first at waypoint {rows[0]} "
                f"joint {limits.joint_names[cols[0]]!r} ({positions[rows[0], cols[0]]})",
            )
        )
    if refusals:
        return refusals

    tol = limits.tolerance
    increasing = True
    if times[0] < 0:
        refusals.append(
            Refusal(RefusalCode.TIMES, f"first time_from_start is negative ({times[0]})")
        )
    steps = np.diff(times)
    if np.any(steps <= 0):
        increasing = False
        index = int(np.flatnonzero(steps <= 0)[0])
        refusals.append(
            Refusal(
                RefusalCode.TIMES,
                f"times must strictly increase: waypoint {index + 1} at {times[index + 1]} s "
                f"follows {times[index]} s",
            )
        )
    if times[-1] > limits.max_duration:
        refusals.append(
            Refusal(
                RefusalCode.TOO_LONG,
                f"duration {times[-1]:.3f} s exceeds max_duration={limits.max_duration} s",
            )
        )

    below = positions < limits.lower - tol
    above = positions > limits.upper + tol
    for column in np.flatnonzero(np.any(below | above, axis=0)):
        name = limits.joint_names[column]
        values = positions[:, column]
        worst = int(
            np.argmax(np.maximum(limits.lower[column] - values, values - limits.upper[column]))
        )
        refusals.append(
            Refusal(
                RefusalCode.POSITION_LIMIT,
                f"joint {name!r} reaches {values[worst]:.4f} at waypoint {worst}, outside "
                f"[{limits.lower[column]}, {limits.upper[column]}]",
            )
        )

    if increasing and times.shape[0] > 1:
        speeds = np.abs(np.diff(positions, axis=0)) / steps[:, None]
        for column in np.flatnonzero(np.any(speeds > limits.velocity + tol, axis=0)):
            segment = int(np.argmax(speeds[:, column]))
            refusals.append(
                Refusal(
                    RefusalCode.VELOCITY_LIMIT,
                    f"joint {limits.joint_names[column]!r} moves at "
                    f"{speeds[segment, column]:.3f}/s between waypoints {segment} and "
                    f"{segment + 1}, limit {limits.velocity[column]}/s",
                )
            )

    age = now - trajectory.stamp
    if age > limits.max_plan_age:
        refusals.append(
            Refusal(
                RefusalCode.STALE,
                f"plan is {age:.3f} s old, older than max_plan_age={limits.max_plan_age} s",
            )
        )
    elif -age > limits.max_future_stamp:
        refusals.append(
            Refusal(
                RefusalCode.FUTURE_STAMP,
                f"plan stamp lies {-age:.3f} s in the future "
                f"(max_future_stamp={limits.max_future_stamp} s): clocks disagree",
            )
        )

    if current_positions is not None and increasing:
        references = [("setpoint", current_positions)]
        if measured_positions is not None:
            references.append(("measured", measured_positions))
        references = [(name, np.asarray(values, dtype=np.float64)) for name, values in references]
        if any(
            values.shape != (num_joints,) or not np.all(np.isfinite(values))
            for _, values in references
        ):
            refusals.append(
                Refusal(RefusalCode.STATE, f"current state is not {num_joints} finite values")
            )
        else:
            start = trajectory.sample(age)
            deviation = np.min([np.abs(start - values) for _, values in references], axis=0)
            deviation *= limits.position_tracked
            worst = int(np.argmax(deviation))
            if deviation[worst] > limits.max_start_deviation + tol:
                against = ", ".join(f"{name} {values[worst]:.4f}" for name, values in references)
                refusals.append(
                    Refusal(
                        RefusalCode.START_DEVIATION,
                        f"plan starts {deviation[worst]:.4f} away from the current state at joint "
                        f"{limits.joint_names[worst]!r} (plan {start[worst]:.4f}; {against}; "
                        f"max_start_deviation={limits.max_start_deviation})",
                    )
                )
    return refusals


def enforce_limits(
    command: np.ndarray, previous: np.ndarray | None, dt: float, limits: SafetyLimits
) -> None:
    """Last stage before a command leaves the executor: raise RefusedError unless it is safe.

    The command must be J finite values within the position limits, and reachable from the
    previous command within `dt` seconds at the velocity limits (with dt <= 0, only the same
    command is allowed, so a clock jumping backwards cannot move the arms).
    """
    num_joints = len(limits.joint_names)
    if command.shape != (num_joints,):
        raise RefusedError(
            Refusal(
                RefusalCode.SHAPE, f"command must have shape ({num_joints},), got {command.shape}"
            )
        )
    if not np.all(np.isfinite(command)):
        raise RefusedError(Refusal(RefusalCode.NOT_FINITE, f"command is not finite: {command}"))
    tol = limits.tolerance
    outside = (command < limits.lower - tol) | (command > limits.upper + tol)
    if np.any(outside):
        column = int(np.flatnonzero(outside)[0])
        raise RefusedError(
            Refusal(
                RefusalCode.POSITION_LIMIT,
                f"command for {limits.joint_names[column]!r} is {command[column]:.4f}, outside "
                f"[{limits.lower[column]}, {limits.upper[column]}]",
            )
        )
    if previous is None:
        return
    allowed = limits.velocity * max(dt, 0.0) + tol
    step = np.abs(command - previous)
    if np.any(step > allowed):
        column = int(np.argmax(step - allowed))
        raise RefusedError(
            Refusal(
                RefusalCode.VELOCITY_LIMIT,
                f"command moves {limits.joint_names[column]!r} by {step[column]:.4f} "
                f"in {dt:.4f} s, above its velocity limit {limits.velocity[column]}/s",
            )
        )


class EStop:
    """A latching emergency stop: once triggered it stays latched until an explicit reset.

    The reset is refused while the source (e.g. the e-stop topic) still asserts it, so a
    stuck button cannot be reset away.
    """

    def __init__(self) -> None:
        self._latched = False
        self._asserted = False
        self._reason = ""

    @property
    def latched(self) -> bool:
        return self._latched

    @property
    def reason(self) -> str:
        return self._reason

    def update(self, asserted: bool, reason: str = "e-stop asserted") -> None:
        """Feed the state of the e-stop source; asserting latches, releasing does not reset."""
        self._asserted = bool(asserted)
        if self._asserted and not self._latched:
            self._latched = True
            self._reason = reason

    def reset(self) -> Verdict:
        """Clear the latch, refused while the source still asserts."""
        if self._asserted:
            return Verdict(
                (
                    Refusal(
                        RefusalCode.ESTOP, "e-stop reset refused: the e-stop source still asserts"
                    ),
                )
            )
        self._latched = False
        self._reason = ""
        return Verdict()

    def refusal(self) -> Refusal | None:
        if not self._latched:
            return None
        return Refusal(RefusalCode.ESTOP, f"e-stop latched ({self._reason}); reset required")


class Deadman:
    """A heartbeat watchdog: motion is allowed only while heartbeats arrive within `timeout`.

    It starts expired (no heartbeat yet). `timeout=None` disables it, for simulation only.
    Times are passed in, so tests need no sleeps.
    """

    def __init__(self, timeout: float | None) -> None:
        if timeout is not None:
            _require_positive("deadman timeout", timeout)
        self.timeout = timeout
        self._last_heartbeat: float | None = None

    def feed(self, now: float) -> None:
        if not math.isfinite(now):
            raise ValueError(f"heartbeat time must be finite, got {now}")
        self._last_heartbeat = now

    def refusal(self, now: float) -> Refusal | None:
        """Why motion is not allowed at `now`, or None if the heartbeat is alive."""
        if self.timeout is None:
            return None
        if self._last_heartbeat is None:
            return Refusal(RefusalCode.DEADMAN, "no heartbeat received yet")
        silence = now - self._last_heartbeat
        if silence > self.timeout:
            return Refusal(
                RefusalCode.DEADMAN,
                f"no heartbeat for {silence:.3f} s (timeout {self.timeout} s)",
            )
        return None

    def expired(self, now: float) -> bool:
        return self.refusal(now) is not None


def _require_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")


class SafetyGate:
    """The trajectory check plus the e-stop and deadman, as one verdict."""

    def __init__(self, limits: SafetyLimits, estop: EStop, deadman: Deadman) -> None:
        self.limits = limits
        self.estop = estop
        self.deadman = deadman

    def motion_refusals(self, now: float) -> list[Refusal]:
        """Why no motion is allowed at all right now (e-stop, deadman)."""
        found = [self.estop.refusal(), self.deadman.refusal(now)]
        return [refusal for refusal in found if refusal is not None]

    def check(
        self,
        trajectory: JointTrajectoryData,
        current_positions: np.ndarray | None,
        now: float,
        measured_positions: np.ndarray | None = None,
    ) -> Verdict:
        """See `validate_trajectory` for the positions."""
        refusals = self.motion_refusals(now)
        refusals += validate_trajectory(
            trajectory, current_positions, now, self.limits, measured_positions
        )
        return Verdict(tuple(refusals))
