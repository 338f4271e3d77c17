"""Property tests: under random and adversarial input no command ever leaves the limits, and
every bad trajectory is refused with a reason."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wav_ros.execution import (
    ExecutionSession,
    FollowerConfig,
    IdealArmBackend,
    JointTrajectoryData,
    RefusalCode,
    SafetyLimits,
    validate_trajectory,
)
from wav_ros.robot_description import JOINT_NAMES

LIMITS = SafetyLimits()
HOME = (LIMITS.lower + LIMITS.upper) / 2
DT = 0.02
J = len(JOINT_NAMES)


def plausible_chunk(rng: np.random.Generator, start: np.ndarray, stamp: float) -> np.ndarray:
    """Waypoints of a random walk from near `start`, inside the limits, below velocity limits."""
    steps = int(rng.integers(1, 60))
    offset = rng.uniform(-0.5, 0.5, J) * LIMITS.max_start_deviation
    increments = rng.uniform(-0.9, 0.9, (steps, J)) * LIMITS.velocity * DT
    increments[0] = offset
    walk = start + np.cumsum(increments, axis=0)
    # Clipping a walk into the box keeps every step at most as long as before.
    return np.clip(walk, LIMITS.lower, LIMITS.upper)


def times_for(count: int) -> np.ndarray:
    return np.arange(count) * DT


CORRUPTIONS = {
    "nan": RefusalCode.NOT_FINITE,
    "inf": RefusalCode.NOT_FINITE,
    "huge_jump": RefusalCode.VELOCITY_LIMIT,
    "outside_limits": RefusalCode.POSITION_LIMIT,
    "renamed_joint": RefusalCode.JOINT_NAMES,
    "dropped_joint": RefusalCode.JOINT_NAMES,
    "swapped_joints": RefusalCode.JOINT_NAMES,
    "missing_column": RefusalCode.SHAPE,
    "extra_waypoint": RefusalCode.SHAPE,
    "time_backwards": RefusalCode.TIMES,
    "repeated_time": RefusalCode.TIMES,
    "negative_time": RefusalCode.TIMES,
    "stale": RefusalCode.STALE,
    "future": RefusalCode.FUTURE_STAMP,
    "far_start": RefusalCode.START_DEVIATION,
}


def corrupt(kind: str, rng: np.random.Generator, now: float, start: np.ndarray):
    """A trajectory broken in one way, and the refusal code it must get."""
    positions = plausible_chunk(rng, start, now)
    if kind in ("huge_jump", "time_backwards", "repeated_time", "extra_waypoint"):
        positions = np.vstack([positions, positions[-1:]]) if len(positions) < 2 else positions
    times = times_for(len(positions))
    names = list(JOINT_NAMES)
    stamp = now
    row = int(rng.integers(len(positions)))
    column = int(rng.integers(J))
    if kind == "nan":
        positions[row, column] = np.nan
    elif kind == "inf":
        positions[row, column] = rng.choice([np.inf, -np.inf])
    elif kind == "huge_jump":
        row = max(row, 1)
        span = LIMITS.upper[column] - LIMITS.lower[column]
        positions[row:, column] = np.where(
            positions[row - 1, column] > HOME[column],
            LIMITS.lower[column] + 0.01 * span,
            LIMITS.upper[column] - 0.01 * span,
        )
    elif kind == "outside_limits":
        positions[row, column] = LIMITS.upper[column] + rng.uniform(1e-3, 10.0)
    elif kind == "renamed_joint":
        names[column] = names[column] + "_typo"
    elif kind == "dropped_joint":
        del names[column]
        positions = np.delete(positions, column, axis=1)
    elif kind == "swapped_joints":
        other = (column + 1 + int(rng.integers(J - 1))) % J
        names[column], names[other] = names[other], names[column]
    elif kind == "missing_column":
        positions = np.delete(positions, column, axis=1)
    elif kind == "extra_waypoint":
        times = times[:-1]
    elif kind == "time_backwards":
        row = max(row, 1)
        times[row] = times[row - 1] - rng.uniform(1e-3, 1.0)
    elif kind == "repeated_time":
        row = max(row, 1)
        times[row] = times[row - 1]
    elif kind == "negative_time":
        times = times - rng.uniform(1e-3, 1.0)
    elif kind == "stale":
        stamp = now - LIMITS.max_plan_age - rng.uniform(1e-3, 100.0)
    elif kind == "future":
        stamp = now + LIMITS.max_future_stamp + rng.uniform(1e-3, 100.0)
    elif kind == "far_start":
        positions = positions.copy()
        current = start.copy()
        current[column] = np.clip(
            positions[0, column] + np.sign(HOME[column] - positions[0, column]) * 0.3,
            LIMITS.lower[column],
            LIMITS.upper[column],
        )
        return JointTrajectoryData(names, times[:1], positions[:1], stamp), current
    return JointTrajectoryData(names, times, positions, stamp), start


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(sorted(CORRUPTIONS)))
def test_every_corrupted_trajectory_is_refused_with_its_reason(seed, kind):
    rng = np.random.default_rng(seed)
    now = float(rng.uniform(0, 1000))
    start = rng.uniform(LIMITS.lower + 0.2, LIMITS.upper - 0.2)
    trajectory, current = corrupt(kind, rng, now, start)
    refusals = validate_trajectory(trajectory, current, now, LIMITS)
    assert CORRUPTIONS[kind] in {r.code for r in refusals}, (kind, refusals)
    assert all(r.message for r in refusals)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_plausible_trajectories_are_accepted(seed):
    rng = np.random.default_rng(seed)
    start = rng.uniform(LIMITS.lower, LIMITS.upper)
    positions = plausible_chunk(rng, start, 0.0)
    trajectory = JointTrajectoryData(JOINT_NAMES, times_for(len(positions)), positions, 5.0)
    assert validate_trajectory(trajectory, start, 5.0, LIMITS) == []


class RecordingArm(IdealArmBackend):
    """An ideal arm that keeps every command it received with its time."""

    def __init__(self) -> None:
        super().__init__(JOINT_NAMES, HOME)
        self.sent: list[tuple[float, np.ndarray]] = []
        self.clock = 0.0

    def send(self, positions, joint_names) -> None:
        super().send(positions, joint_names)
        self.sent.append((self.clock, np.array(positions)))


EVENTS = st.sampled_from(
    ["tick"] * 20
    + ["submit_good"] * 4
    + ["release"] * 2
    + ["reset"] * 3
    + ["submit_bad", "estop", "cancel", "clock_back", "long_gap"]
)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), events=st.lists(EVENTS, min_size=20, max_size=150))
def test_no_command_ever_leaves_the_limits(seed, events):
    """Random interleavings of plans (good and bad), jittery ticks (mostly with a heartbeat),
    long silences, the clock going backwards, e-stops, resets and cancels: every command sent
    is finite, inside the position limits, and reachable from the previous one at the velocity
    limits."""
    rng = np.random.default_rng(seed)
    arm = RecordingArm()
    session = ExecutionSession(arm, LIMITS, FollowerConfig(deadman_timeout=0.3))
    now = 0.0
    for event in events:
        if event == "tick":
            now += float(rng.uniform(0.2, 1.8)) * DT
            if rng.uniform() < 0.9:
                session.heartbeat(now)
        elif event == "long_gap":
            now += float(rng.uniform(0.1, 1.0))
        elif event == "clock_back":
            now -= float(rng.uniform(0.001, 0.5))
        arm.clock = now
        if event in ("tick", "long_gap", "clock_back"):
            report = session.tick(now)
            if report.command is not None:
                assert np.all(np.isfinite(report.command))
        elif event == "submit_good":
            base = session.last_command if session.last_command is not None else HOME
            positions = plausible_chunk(rng, base, now)
            stamp = now - float(rng.uniform(0, 0.03))
            plan = JointTrajectoryData(JOINT_NAMES, times_for(len(positions)), positions, stamp)
            result = session.submit(plan, now)
            assert result.verdict.accepted or result.verdict.reason
        elif event == "submit_bad":
            kind = str(rng.choice(sorted(CORRUPTIONS)))
            base = session.last_command if session.last_command is not None else HOME
            plan, _ = corrupt(kind, rng, now, base)
            result = session.submit(plan, now)
            if kind != "far_start":  # its corruption is in the state it is checked against
                assert not result.verdict.accepted and result.verdict.reason, kind
        elif event in ("estop", "release"):
            session.set_estop(event == "estop")
        elif event == "reset":
            session.reset_estop()
        elif event == "cancel":
            session.cancel(now)

    times = np.array([t for t, _ in arm.sent])
    commands = np.array([c for _, c in arm.sent]).reshape(-1, J)
    assert np.all(np.isfinite(commands))
    assert np.all(commands >= LIMITS.lower - LIMITS.tolerance)
    assert np.all(commands <= LIMITS.upper + LIMITS.tolerance)
    # Velocity between consecutive commands, over the time since the previous command (clock
    # jumps backwards give no budget, so only an identical command may follow).
    elapsed = np.maximum.accumulate(times) if len(times) else times
    for k in range(1, len(commands)):
        budget = LIMITS.velocity * max(times[k] - elapsed[k - 1], 0.0) + 1e-9
        assert np.all(np.abs(commands[k] - commands[k - 1]) <= budget), k
