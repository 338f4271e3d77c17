"""The execution session: accepts checked trajectories and produces each control tick's command.

It is the single place a command comes from, so it is where safety is enforced: trajectories
pass the safety gate and are blended onto the current motion before they are accepted, and
every command passes `enforce_limits` before it reaches a backend. Any fault — e-stop,
deadman, tracking error, a refused command, a backend or internal exception — makes the arms
hold still at the last command that passed the checks. Arms moved far from that command by
something else while at rest are held where they are instead, never driven back in a jump.

Time is always passed in (`now`, seconds on the executor's clock), so tests run without sleeps
and the rclpy node can use its ROS clock.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from wav_ros.execution.backends.base import ExecutionBackend
from wav_ros.execution.blending import blend_chunks
from wav_ros.execution.limits import SafetyLimits
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
from wav_ros.execution.trajectory import JointTrajectoryData
from wav_ros.robot_description import CONTROL_HZ


@dataclass(frozen=True)
class FollowerConfig:
    """How the session follows trajectories."""

    control_hz: float = CONTROL_HZ
    """Rate at which `tick` is called; also the sampling step of chunk blends."""
    blend_window: float = 0.2
    """Seconds over which a new chunk is blended onto the current motion."""
    max_blend_window: float = 1.0
    """Longest blend tried before a chunk is refused for needing too fast a seam."""
    deadman_timeout: float | None = 0.5
    """Seconds without a heartbeat after which motion stops; None disables (simulation only)."""
    max_tracking_error: float | None = 0.5
    """Largest |command - measured| of a position-tracked joint while moving; None disables.
    At rest, arms farther than this from the held command were moved by something else (a
    simulation reset, a hand, a controller switched off): the session then holds them where
    they are, with a fault, instead of driving them back in one jump."""
    max_outcomes: int = 256
    """How many finished trajectories' outcomes are remembered for `outcome()`."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.control_hz) and self.control_hz > 0):
            raise ValueError(f"control_hz must be finite and > 0, got {self.control_hz}")
        if not (1.0 / self.control_hz <= self.blend_window <= self.max_blend_window):
            raise ValueError(
                "need 1/control_hz <= blend_window <= max_blend_window, got "
                f"{1.0 / self.control_hz}, {self.blend_window}, {self.max_blend_window}"
            )
        for name in ("deadman_timeout", "max_tracking_error"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be None or finite and > 0, got {value}")
        if self.max_outcomes < 1:
            raise ValueError(f"max_outcomes must be >= 1, got {self.max_outcomes}")


class SessionState(StrEnum):
    IDLE = "idle"
    """No trajectory: the arms hold the last command."""
    EXECUTING = "executing"
    """Following a trajectory."""
    FAULTED = "faulted"
    """A fault stopped the motion; the arms hold; an accepted trajectory clears it."""


class OutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"
    CANCELED = "canceled"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Outcome:
    """How an accepted trajectory ended, and why when it did not succeed."""

    status: OutcomeStatus
    reason: str = ""


@dataclass(frozen=True)
class SubmitResult:
    """The gate's verdict on a trajectory; its id when accepted."""

    verdict: Verdict
    trajectory_id: int | None = None


@dataclass(frozen=True)
class TickReport:
    """What one control tick did (for action feedback and diagnostics)."""

    now: float
    state: SessionState
    trajectory_id: int | None
    """The trajectory being executed after this tick, or None."""
    command: np.ndarray | None
    """The setpoint that passed the checks this tick (None before any joint state)."""
    measured: np.ndarray | None
    progress: float
    """Fraction of the executed trajectory's duration elapsed (0 when there is none)."""
    tracking_error: float
    """Largest |previous command - measured| over joints; NaN when unknown."""
    fault: Refusal | None
    """The fault raised by this tick, if any."""


class ExecutionSession:
    """Follows trajectories on one backend; thread-safe, so node callbacks may call it directly."""

    def __init__(
        self,
        backend: ExecutionBackend,
        limits: SafetyLimits | None = None,
        config: FollowerConfig | None = None,
    ) -> None:
        self.limits = limits or SafetyLimits()
        self.config = config or FollowerConfig()
        if backend.joint_names != self.limits.joint_names:
            raise ValueError(
                f"backend joints {backend.joint_names} differ from the limits' joints "
                f"{self.limits.joint_names}"
            )
        self.backend = backend
        self.gate = SafetyGate(self.limits, EStop(), Deadman(self.config.deadman_timeout))
        self._lock = threading.RLock()
        self._state = SessionState.IDLE
        self._fault: Refusal | None = None
        self._active: JointTrajectoryData | None = None
        self._active_id: int | None = None
        self._next_id = 1
        self._last_command: np.ndarray | None = None
        self._last_time = -math.inf
        self._outcomes: OrderedDict[int, Outcome] = OrderedDict()

    # -- inputs -----------------------------------------------------------------------------

    def heartbeat(self, now: float) -> None:
        """A deadman heartbeat arrived."""
        with self._lock:
            self.gate.deadman.feed(now)

    def set_estop(self, asserted: bool, reason: str = "e-stop topic asserted") -> None:
        """Feed the e-stop source; asserting latches and stops any motion at once."""
        with self._lock:
            self.gate.estop.update(asserted, reason)
            refusal = self.gate.estop.refusal()
            if refusal is not None and self._state is SessionState.EXECUTING:
                self._enter_fault(refusal)

    def reset_estop(self) -> Verdict:
        """Explicitly clear a latched e-stop (refused while the source still asserts)."""
        with self._lock:
            return self.gate.estop.reset()

    def submit(self, trajectory: JointTrajectoryData, now: float) -> SubmitResult:
        """Check `trajectory`, blend it onto the current motion and start following it."""
        with self._lock:
            try:
                measured = self.backend.read_state(now)
            except Exception as error:  # a broken backend refuses, never crashes the caller
                return _refused(RefusalCode.BACKEND, f"reading the joint state failed: {error!r}")
            if measured is None:
                return _refused(RefusalCode.STATE, "no fresh joint state from the backend")
            # A position-controlled arm lags its setpoint while moving (and stays off it while
            # it carries or presses on something): the plan must start near the setpoint (where
            # the controller drives the arm) or near the measured arm (where a planner sees
            # it), and the arm must be within the tracking tolerance of the setpoint. The blend
            # below joins the setpoint onto the plan within the velocity limits either way.
            if self._last_command is None:  # nothing commanded yet: the arms are the reference
                verdict = self.gate.check(trajectory, measured, now)
            else:
                verdict = self.gate.check(trajectory, self._last_command, now, measured)
            if not verdict.accepted:
                return SubmitResult(verdict)
            tracking = self._tracking_error(measured)
            limit = self.config.max_tracking_error
            if limit is not None and self._last_command is not None and not tracking <= limit:
                return _refused(
                    RefusalCode.TRACKING,
                    f"the arms are {tracking:.4f} from their setpoint (max_tracking_error={limit})",
                )
            if self._last_command is None:
                try:
                    enforce_limits(measured, None, 0.0, self.limits)
                except RefusedError as error:
                    return SubmitResult(Verdict(error.refusals))
                start, start_time = measured, now
            else:
                start, start_time = self._last_command, self._last_time
            previous = self._active if self._state is SessionState.EXECUTING else None
            try:
                blended = blend_chunks(
                    previous,
                    trajectory,
                    start_time,
                    start,
                    self.limits,
                    window=self.config.blend_window,
                    dt=1.0 / self.config.control_hz,
                    max_window=self.config.max_blend_window,
                )
            except RefusedError as error:
                return SubmitResult(Verdict(error.refusals))
            recheck = validate_trajectory(blended, None, blended.stamp, self.limits)
            if recheck:
                return SubmitResult(
                    Verdict(tuple(Refusal(RefusalCode.INTERNAL, f"blend: {r}") for r in recheck))
                )
            if not self.backend.streams_commands:
                try:
                    self.backend.send_trajectory(blended.remaining(max(now, start_time)))
                except Exception as error:
                    refusal = Refusal(
                        RefusalCode.BACKEND, f"sending the trajectory failed: {error!r}"
                    )
                    self._last_command, self._last_time = start, start_time
                    self._enter_fault(refusal)
                    return SubmitResult(Verdict((refusal,)))
            if self._active_id is not None and self._state is SessionState.EXECUTING:
                self._record(self._active_id, Outcome(OutcomeStatus.SUPERSEDED, "a newer chunk"))
            self._last_command, self._last_time = start, start_time
            self._active, self._active_id = blended, self._next_id
            self._next_id += 1
            self._state, self._fault = SessionState.EXECUTING, None
            return SubmitResult(Verdict(), self._active_id)

    def cancel(self, now: float, trajectory_id: int | None = None) -> bool:
        """Stop the trajectory (any, or only `trajectory_id`) and hold; False if none matched."""
        with self._lock:
            if self._state is not SessionState.EXECUTING:
                return False
            if trajectory_id is not None and trajectory_id != self._active_id:
                return False
            self._finish(Outcome(OutcomeStatus.CANCELED, "canceled"), SessionState.IDLE)
            self._hold_backend()
            return True

    # -- the control tick -------------------------------------------------------------------

    def tick(self, now: float) -> TickReport:
        """Compute, check and send this tick's command (call at `config.control_hz`)."""
        with self._lock:
            measured: np.ndarray | None = None
            fault: Refusal | None = None
            command: np.ndarray | None = None
            try:
                measured = self.backend.read_state(now)
                if measured is not None and measured.shape != (len(self.limits.joint_names),):
                    raise RefusedError(
                        Refusal(RefusalCode.STATE, f"joint state has shape {measured.shape}")
                    )
                if self._last_command is None:
                    if measured is None:
                        return self._report(now, None, None, math.nan, None)
                    enforce_limits(measured, None, 0.0, self.limits)
                    self._last_command, self._last_time = measured.copy(), now
                tracking = self._tracking_error(measured)
                if self._state is SessionState.EXECUTING:
                    self._check_motion_allowed(now, measured, tracking)
                    target = self._active.sample(now - self._active.stamp)
                else:
                    self._hold_where_moved(measured, tracking)
                    target = self._last_command
                enforce_limits(target, self._last_command, now - self._last_time, self.limits)
                if self.backend.streams_commands:
                    self.backend.send(target, self.limits.joint_names)
                self._last_command = target
                self._last_time = max(self._last_time, now)
                command = target
                if self._state is SessionState.EXECUTING and now >= self._active.end_time:
                    self._finish(Outcome(OutcomeStatus.SUCCEEDED), SessionState.IDLE)
            except RefusedError as error:
                fault = error.refusals[0]
            except Exception as error:  # any other failure must end in holding still
                fault = Refusal(RefusalCode.INTERNAL, f"{type(error).__name__}: {error}")
            if fault is not None:
                self._enter_fault(fault)
                command = self._last_command
            return self._report(now, command, measured, self._tracking_error(measured), fault)

    # -- queries ----------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def fault(self) -> Refusal | None:
        """Why the session is FAULTED (None otherwise)."""
        return self._fault

    @property
    def active_trajectory_id(self) -> int | None:
        return self._active_id if self._state is SessionState.EXECUTING else None

    @property
    def last_command(self) -> np.ndarray | None:
        return None if self._last_command is None else self._last_command.copy()

    def outcome(self, trajectory_id: int) -> Outcome | None:
        """How trajectory `trajectory_id` ended; None while it runs (or if long forgotten)."""
        with self._lock:
            return self._outcomes.get(trajectory_id)

    # -- internals --------------------------------------------------------------------------

    def _check_motion_allowed(
        self, now: float, measured: np.ndarray | None, tracking: float
    ) -> None:
        refusals = self.gate.motion_refusals(now)
        if measured is None:
            refusals.append(Refusal(RefusalCode.STATE, "joint state lost while moving"))
        limit = self.config.max_tracking_error
        if limit is not None and tracking > limit:
            refusals.append(
                Refusal(
                    RefusalCode.TRACKING,
                    f"tracking error {tracking:.4f} exceeds max_tracking_error={limit}",
                )
            )
        if refusals:
            raise RefusedError(*refusals)

    def _hold_where_moved(self, measured: np.ndarray | None, tracking: float) -> None:
        """At rest, re-anchor the held command where something else moved the arms, and fault.

        The one command that does not follow the previous at the velocity limits: the arms
        are already there. Grippers keep their command (they legitimately stay off it).
        """
        limit = self.config.max_tracking_error
        if measured is None or limit is None or not tracking > limit:
            return
        anchor = np.where(self.limits.position_tracked, measured, self._last_command)
        enforce_limits(anchor, None, 0.0, self.limits)  # never hold outside the limits
        self._last_command = anchor
        raise RefusedError(
            Refusal(
                RefusalCode.TRACKING,
                f"the arms are {tracking:.4f} from the held command (max_tracking_error="
                f"{limit}): moved by something else; holding them where they are",
            )
        )

    def _tracking_error(self, measured: np.ndarray | None) -> float:
        if measured is None or self._last_command is None:
            return math.nan
        if measured.shape != self._last_command.shape:
            return math.inf
        error = np.abs(self._last_command - measured)[self.limits.position_tracked]
        return float(np.max(error)) if np.all(np.isfinite(error)) else math.inf

    def _enter_fault(self, refusal: Refusal) -> None:
        first_fault = self._state is not SessionState.FAULTED
        if self._state is SessionState.EXECUTING:
            self._finish(Outcome(OutcomeStatus.ABORTED, str(refusal)), SessionState.FAULTED)
        self._state = SessionState.FAULTED
        self._fault = refusal
        if first_fault:
            self._hold_backend()

    def _hold_backend(self) -> None:
        if self._last_command is None:
            return
        try:
            self.backend.hold(self._last_command.copy())
        except Exception as error:
            self._state = SessionState.FAULTED
            self._fault = Refusal(RefusalCode.BACKEND, f"backend hold failed: {error!r}")

    def _finish(self, outcome: Outcome, state: SessionState) -> None:
        if self._active_id is not None:
            self._record(self._active_id, outcome)
        self._active, self._active_id = None, None
        self._state = state

    def _record(self, trajectory_id: int, outcome: Outcome) -> None:
        self._outcomes[trajectory_id] = outcome
        while len(self._outcomes) > self.config.max_outcomes:
            self._outcomes.popitem(last=False)

    def _report(
        self,
        now: float,
        command: np.ndarray | None,
        measured: np.ndarray | None,
        tracking: float,
        fault: Refusal | None,
    ) -> TickReport:
        progress = 0.0
        if self._active is not None:
            progress = float(np.clip((now - self._active.stamp) / self._active.duration, 0.0, 1.0))
        return TickReport(
            now=now,
            state=self._state,
            trajectory_id=self.active_trajectory_id,
            command=None if command is None else command.copy(),
            measured=None if measured is None else np.array(measured, copy=True),
            progress=progress,
            tracking_error=tracking,
            fault=fault,
        )


def _refused(code: RefusalCode, message: str) -> SubmitResult:
    return SubmitResult(Verdict((Refusal(code, message),)))
