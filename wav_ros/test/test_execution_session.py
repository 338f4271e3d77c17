"""The execution session: following, e-stop, deadman, cancel, chunk blending, faults → hold."""

from __future__ import annotations

import numpy as np
import pytest

from wav_ros.execution import (
    ExecutionSession,
    FollowerConfig,
    IdealArmBackend,
    JointTrajectoryData,
    OutcomeStatus,
    RefusalCode,
    SafetyLimits,
    SessionState,
    blend_chunks,
)
from wav_ros.execution.safety import RefusedError
from wav_ros.robot_description import JOINT_NAMES

LIMITS = SafetyLimits()
HOME = (LIMITS.lower + LIMITS.upper) / 2
DT = 0.02


class RecordingArm(IdealArmBackend):
    """An ideal arm that keeps every command it received, and every hold request."""

    def __init__(self, initial=HOME) -> None:
        super().__init__(JOINT_NAMES, initial)
        self.sent: list[np.ndarray] = []
        self.holds: list[np.ndarray] = []
        self.fail_on_send: int | None = None

    def send(self, positions, joint_names) -> None:
        if self.fail_on_send is not None and len(self.sent) >= self.fail_on_send:
            raise OSError("bus error")
        super().send(positions, joint_names)
        self.sent.append(np.array(positions))

    def hold(self, positions) -> None:
        super().hold(positions)
        self.holds.append(np.array(positions))


def joint_speeds(speed: float) -> np.ndarray:
    """`speed` for every arm joint, a quarter of it for the grippers (whose range is [0, 1])."""
    speeds = np.full(14, speed)
    speeds[[6, 13]] /= 4
    return speeds


def moving_chunk(start, velocity, stamp, steps=40) -> JointTrajectoryData:
    times = np.arange(steps) * DT
    positions = np.asarray(start) + np.outer(times, velocity)
    return JointTrajectoryData(JOINT_NAMES, times, positions, stamp)


def session_with(arm: RecordingArm, **config) -> ExecutionSession:
    config.setdefault("deadman_timeout", None)
    return ExecutionSession(arm, LIMITS, FollowerConfig(**config))


def run(session: ExecutionSession, start: float, ticks: int):
    return [session.tick(start + k * DT) for k in range(ticks)]


def assert_velocity_bounded(commands: list[np.ndarray], dt: float = DT) -> None:
    steps = np.abs(np.diff(np.asarray(commands), axis=0))
    assert np.all(steps <= LIMITS.velocity * dt + 1e-9), steps.max(axis=0) / dt


def test_follows_a_trajectory_to_completion():
    arm = RecordingArm()
    session = session_with(arm)
    velocity = joint_speeds(0.5)
    plan = moving_chunk(HOME, velocity, stamp=0.0)
    result = session.submit(plan, 0.0)
    assert result.verdict.accepted and result.trajectory_id == 1
    reports = run(session, 0.0, 60)
    assert [r.progress for r in reports[:39]] == sorted(r.progress for r in reports[:39])
    np.testing.assert_allclose(arm.sent[30], plan.sample(30 * DT), atol=1e-12)
    assert session.outcome(1).status is OutcomeStatus.SUCCEEDED
    assert session.state is SessionState.IDLE
    np.testing.assert_allclose(arm.sent[-1], plan.positions[-1])
    assert_velocity_bounded(arm.sent)


def test_estop_mid_trajectory_holds_and_needs_explicit_reset():
    arm = RecordingArm()
    session = session_with(arm)
    session.submit(moving_chunk(HOME, joint_speeds(0.5), 0.0), 0.0)
    run(session, 0.0, 10)
    held = arm.sent[-1].copy()
    session.set_estop(True, "operator pressed e-stop")
    assert session.state is SessionState.FAULTED
    np.testing.assert_array_equal(arm.holds[-1], held)
    reports = run(session, 10 * DT, 20)
    assert all(np.array_equal(command, held) for command in arm.sent[10:])
    assert all(r.state is SessionState.FAULTED for r in reports)
    outcome = session.outcome(1)
    assert outcome.status is OutcomeStatus.ABORTED and "operator pressed e-stop" in outcome.reason

    session.set_estop(False)
    refused = session.submit(moving_chunk(held, np.zeros(14), 0.6), 0.6)
    assert refused.verdict.codes == {RefusalCode.ESTOP}
    assert "reset required" in refused.verdict.reason
    session.set_estop(True)
    assert not session.reset_estop().accepted
    session.set_estop(False)
    assert session.reset_estop().accepted
    assert session.submit(moving_chunk(held, np.zeros(14), 0.6), 0.6).verdict.accepted


def test_deadman_expiry_mid_trajectory_holds():
    arm = RecordingArm()
    session = session_with(arm, deadman_timeout=0.1)
    refused = session.submit(moving_chunk(HOME, joint_speeds(0.5), 0.0), 0.0)
    assert refused.verdict.codes == {RefusalCode.DEADMAN}
    session.heartbeat(0.0)
    assert session.submit(moving_chunk(HOME, joint_speeds(0.5), 0.0), 0.0).verdict.accepted
    reports = run(session, 0.0, 20)  # heartbeat at 0.0 only: expires after 0.1 s
    faulted = [r for r in reports if r.fault is not None]
    assert faulted and faulted[0].fault.code is RefusalCode.DEADMAN
    assert faulted[0].now == pytest.approx(6 * DT)
    index = reports.index(faulted[0])
    assert all(np.array_equal(c, arm.sent[index - 1]) for c in arm.sent[index:])
    assert session.outcome(1).status is OutcomeStatus.ABORTED


def test_cancel_mid_trajectory_stops_at_the_last_command():
    arm = RecordingArm()
    session = session_with(arm)
    session.submit(moving_chunk(HOME, joint_speeds(-0.5), 0.0), 0.0)
    run(session, 0.0, 15)
    assert session.cancel(15 * DT)
    stopped = arm.sent[-1].copy()
    np.testing.assert_array_equal(arm.holds[-1], stopped)
    run(session, 15 * DT, 10)
    assert all(np.array_equal(c, stopped) for c in arm.sent[15:])
    assert session.outcome(1).status is OutcomeStatus.CANCELED
    assert session.state is SessionState.IDLE
    assert not session.cancel(1.0), "nothing left to cancel"


def test_new_chunk_blends_across_the_seam_without_a_jump():
    arm = RecordingArm()
    session = session_with(arm, blend_window=0.2)
    assert session.submit(moving_chunk(HOME, joint_speeds(1.5), 0.0), 0.0).verdict.accepted
    run(session, 0.0, 20)
    # The next chunk was planned from an older state: it starts 0.12 off and turns back.
    now = 20 * DT
    second = moving_chunk(session.last_command + 0.12, joint_speeds(-1.0), now, steps=30)
    result = session.submit(second, now)
    assert result.verdict.accepted, result.verdict.reason
    assert session.outcome(1).status is OutcomeStatus.SUPERSEDED
    run(session, now, 40)
    assert_velocity_bounded(arm.sent)
    # A hard switch would have moved 0.12 in one tick (6 rad/s).
    assert np.max(np.abs(arm.sent[20] - arm.sent[19])) < 0.12
    # After the blending window the command is the new plan itself.
    np.testing.assert_allclose(arm.sent[20 + 25], second.sample(25 * DT), atol=1e-9)


def test_blend_follows_the_previous_path_when_it_can():
    start = HOME.copy()
    ahead = moving_chunk(start, joint_speeds(1.0), 0.0)
    stop_nearby = moving_chunk(start + 0.05, np.zeros(14), 0.0)
    blended = blend_chunks(
        ahead, stop_nearby, 0.0, start, LIMITS, window=0.2, dt=DT, max_window=1.0
    )
    # The first step keeps (nearly) the previous path's velocity instead of stopping dead:
    # velocity is continuous at the seam.
    first_step = blended.positions[1] - blended.positions[0]
    np.testing.assert_allclose(first_step, ahead.positions[1] - ahead.positions[0], atol=2e-3)


def test_diverging_paths_fall_back_to_an_offset_blend():
    start = HOME.copy()
    away = moving_chunk(start, joint_speeds(2.9), 0.0, steps=20)
    back = moving_chunk(start + 0.1, joint_speeds(-2.0), 0.0, steps=20)
    # Within 0.2 s the path blend cannot turn a 2.9 rad/s motion into a -2 rad/s one.
    with pytest.raises(RefusedError):
        blend_chunks(None, back, 0.0, away.sample(0.1), LIMITS, window=0.2, dt=DT, max_window=0.2)
    blended = blend_chunks(away, back, 0.0, start, LIMITS, window=0.2, dt=DT, max_window=0.2)
    speeds = np.abs(np.diff(blended.positions, axis=0)) / np.diff(blended.times_from_start)[:, None]
    assert np.all(speeds <= LIMITS.velocity + 1e-9)
    np.testing.assert_allclose(blended.sample(0.2), back.sample(0.2), atol=1e-9)


def test_blend_that_would_need_too_fast_a_seam_is_refused_with_a_reason():
    start = HOME.copy()
    fast_away = moving_chunk(start, joint_speeds(2.9), 0.0, steps=10)
    back = moving_chunk(start - 0.14, joint_speeds(-2.9), 0.0, steps=10)
    with pytest.raises(RefusedError) as raised:
        blend_chunks(fast_away, back, 0.0, start, LIMITS, window=0.04, dt=DT, max_window=0.08)
    assert raised.value.refusals[0].code is RefusalCode.BLEND
    assert "would move at" in str(raised.value)


def test_backend_exception_holds_still():
    arm = RecordingArm()
    session = session_with(arm)
    session.submit(moving_chunk(HOME, joint_speeds(0.5), 0.0), 0.0)
    arm.fail_on_send = 5
    reports = run(session, 0.0, 8)
    assert reports[5].fault.code is RefusalCode.INTERNAL and "bus error" in reports[5].fault.message
    np.testing.assert_array_equal(arm.holds[-1], arm.sent[4])
    assert session.outcome(1).status is OutcomeStatus.ABORTED
    np.testing.assert_array_equal(reports[7].command, arm.sent[4])


def test_tracking_error_stops_the_motion():
    class StuckArm(RecordingArm):
        def read_state(self, now):
            return HOME.copy()

    arm = StuckArm()
    session = session_with(arm, max_tracking_error=0.05)
    session.submit(moving_chunk(HOME, joint_speeds(1.0), 0.0), 0.0)
    reports = run(session, 0.0, 20)
    fault = next(r.fault for r in reports if r.fault is not None)
    assert fault.code is RefusalCode.TRACKING and "0.05" in fault.message


def test_clock_jumping_backwards_cannot_move_the_arms():
    arm = RecordingArm()
    session = session_with(arm)
    session.submit(moving_chunk(HOME, joint_speeds(0.5), 0.0), 0.0)
    run(session, 0.0, 10)
    report = session.tick(0.05)
    assert report.fault.code is RefusalCode.VELOCITY_LIMIT
    assert_velocity_bounded(arm.sent)


def test_submit_without_joint_state_is_refused():
    class BlindArm(RecordingArm):
        def read_state(self, now):
            return None

    session = session_with(BlindArm())
    verdict = session.submit(moving_chunk(HOME, np.zeros(14), 0.0), 0.0).verdict
    assert verdict.codes == {RefusalCode.STATE}
    assert session.tick(0.0).command is None


def test_arms_outside_limits_are_never_commanded():
    outside = HOME.copy()
    outside[6] = 1.2  # gripper beyond its [0, 1] range
    arm = RecordingArm(outside)
    session = session_with(arm)
    report = session.tick(0.0)
    assert report.fault.code is RefusalCode.POSITION_LIMIT and report.command is None
    assert arm.sent == []
    assert session.submit(moving_chunk(outside, np.zeros(14), 0.0), 0.0).verdict.codes == {
        RefusalCode.POSITION_LIMIT
    }


class ChunkArm(RecordingArm):
    """A controller that takes whole trajectories (as ros2_control or MoveIt do)."""

    streams_commands = False

    def __init__(self) -> None:
        super().__init__()
        self.trajectories: list[JointTrajectoryData] = []

    def send_trajectory(self, trajectory) -> None:
        self.trajectories.append(trajectory)

    def read_state(self, now):
        """The controller follows the last trajectory perfectly."""
        if not self.trajectories:
            return self.positions.copy()
        last = self.trajectories[-1]
        return last.sample(now - last.stamp)


def test_chunk_backends_receive_the_checked_blend_from_the_current_setpoint():
    arm = ChunkArm()
    session = session_with(arm)
    session.submit(moving_chunk(HOME, joint_speeds(1.0), 0.0), 0.0)
    run(session, 0.0, 10)
    setpoint = session.last_command
    second = moving_chunk(setpoint + 0.1, joint_speeds(-1.0), 10 * DT)
    assert session.submit(second, 10 * DT + 0.005).verdict.accepted
    sent = arm.trajectories[-1]
    assert sent.stamp == pytest.approx(10 * DT + 0.005)
    # It starts where the setpoint can reach by now, and the setpoint then follows it.
    last_tick = 9 * DT
    reach = LIMITS.velocity * (sent.stamp - last_tick) + 1e-9
    assert np.all(np.abs(sent.positions[0] - setpoint) <= reach)
    session.tick(11 * DT)
    np.testing.assert_allclose(session.last_command, sent.sample(11 * DT - sent.stamp), atol=1e-9)
    speeds = np.abs(np.diff(sent.positions, axis=0)) / np.diff(sent.times_from_start)[:, None]
    assert np.all(speeds <= LIMITS.velocity + 1e-9)
    assert arm.sent == [], "chunk backends get no per-tick commands"


class LaggingArm(RecordingArm):
    """A position-controlled arm that lags its setpoint by a fixed offset on one joint."""

    def __init__(self, lag: float, joint: int = 2) -> None:
        super().__init__()
        self.lag, self.joint = lag, joint

    def read_state(self, now):
        state = self.positions.copy()
        state[self.joint] -= self.lag
        return state


def test_new_chunk_continues_from_the_setpoint_while_the_arm_lags_within_tolerance():
    arm = LaggingArm(lag=0.0)
    session = session_with(arm)
    first = moving_chunk(HOME, joint_speeds(0.5), stamp=0.0, steps=20)
    assert session.submit(first, 0.0).verdict.accepted  # first plan: from the measured state
    run(session, 0.0, 10)
    arm.lag = 0.3  # beyond max_start_deviation (0.15), within max_tracking_error (0.5)
    setpoint = session.last_command
    follow_on = moving_chunk(setpoint, joint_speeds(0.5), stamp=0.2, steps=20)
    assert session.submit(follow_on, 0.2).verdict.accepted


def test_a_chunk_planned_from_the_measured_arm_is_accepted_while_it_lags_its_setpoint():
    # An arm carrying something sits 0.16 rad off its setpoint (the graph's right wrist at
    # the handover); a planner that plans from the measured state starts its chunk there.
    arm = LaggingArm(lag=0.0)
    session = session_with(arm)
    assert session.submit(moving_chunk(HOME, np.zeros(14), 0.0, steps=5), 0.0).verdict.accepted
    run(session, 0.0, 10)
    arm.lag = 0.16
    setpoint, measured = session.last_command, arm.read_state(0.2)
    verdict = session.submit(moving_chunk(measured, joint_speeds(0.5), 0.2, steps=20), 0.2).verdict
    assert verdict.accepted, verdict.reason
    # The setpoint is joined onto the chunk within the velocity limits.
    commands = [report.command for report in run(session, 0.2, 30)]
    assert_velocity_bounded([setpoint, *commands])
    # A chunk that starts far from both the setpoint and the measured arm is still refused,
    # and the refusal names both.
    elsewhere = arm.read_state(0.8)
    elsewhere[2] += 0.4
    verdict = session.submit(moving_chunk(elsewhere, np.zeros(14), 0.8), 0.8).verdict
    assert RefusalCode.START_DEVIATION in verdict.codes
    assert "setpoint" in verdict.reason and "measured" in verdict.reason


def test_arm_far_from_its_setpoint_refuses_new_chunks():
    arm = LaggingArm(lag=0.0)
    session = session_with(arm)
    assert session.submit(
        moving_chunk(HOME, joint_speeds(0.5), 0.0, steps=20), 0.0
    ).verdict.accepted
    run(session, 0.0, 10)
    arm.lag = 0.6  # pushed away: beyond max_tracking_error
    setpoint = session.last_command
    verdict = session.submit(moving_chunk(setpoint, joint_speeds(0.5), 0.2), 0.2).verdict
    assert not verdict.accepted and RefusalCode.TRACKING in verdict.codes


def test_blend_from_rest_stays_inside_position_limits_where_an_offset_fade_would_not():
    """Gripper held closed (0.0); the new chunk starts at 0.2 and closes to 0.0 again.
    Fading the seam offset (-0.2) onto it would command -0.2 + ...: below the limit."""
    gripper = JOINT_NAMES.index("right_gripper")
    start = HOME.copy()
    start[gripper] = 0.0
    positions = np.repeat(start[None], 20, axis=0)
    positions[:, gripper] = np.linspace(0.2, 0.0, 20)
    new = JointTrajectoryData(JOINT_NAMES, np.arange(20) * DT, positions, 0.0)
    blended = blend_chunks(None, new, 0.0, start, LIMITS, window=0.2, dt=DT, max_window=1.0)
    assert blended.positions[:, gripper].min() >= 0.0
    assert np.allclose(blended.positions[0], start)
    assert np.allclose(blended.positions[-1], new.positions[-1])


def test_arms_moved_at_rest_are_held_where_they_are_not_driven_back():
    arm = RecordingArm()
    grippers = ("left_gripper", "right_gripper")  # as config/joint_limits.yaml has them
    limits = SafetyLimits(force_limited_joints=grippers)
    session = ExecutionSession(arm, limits, FollowerConfig(deadman_timeout=None))
    run(session, 0.0, 3)
    gripper = JOINT_NAMES.index("left_gripper")
    moved = np.minimum(HOME + 0.8, limits.upper)  # a simulation reset, or a hand: far beyond
    moved[gripper] = 0.9  # max_tracking_error (0.5)
    arm.positions = moved.copy()
    report = session.tick(3 * DT)
    assert report.fault.code is RefusalCode.TRACKING and "held command" in report.fault.message
    assert session.state is SessionState.FAULTED
    held = run(session, 4 * DT, 3)
    expected = moved.copy()
    sides = [JOINT_NAMES.index(name) for name in grippers]
    expected[sides] = HOME[sides]  # grippers keep their command: they may sit off it
    for tick in held:
        assert tick.fault is None
        np.testing.assert_allclose(tick.command, expected)
    assert not any(np.allclose(command, HOME) for command in arm.sent[3:])  # never driven back
    # A plan from where the arms now are is followed again.
    plan = moving_chunk(expected, joint_speeds(0.5), stamp=7 * DT, steps=10)
    assert session.submit(plan, 7 * DT).verdict.accepted
    assert session.state is SessionState.EXECUTING


def test_an_arm_stuck_off_its_path_is_held_where_it_stuck_after_the_fault():
    class StuckArm(RecordingArm):
        def read_state(self, now):
            return HOME.copy()  # blocked: never moves

    arm = StuckArm()
    session = session_with(arm, max_tracking_error=0.05)
    session.submit(moving_chunk(HOME, joint_speeds(1.0), 0.0), 0.0)
    reports = run(session, 0.0, 20)
    faults = [r.fault for r in reports if r.fault is not None]
    assert [fault.code for fault in faults] == [RefusalCode.TRACKING] * 2
    assert "exceeds max_tracking_error" in faults[0].message  # while moving: stop
    assert "held command" in faults[1].message  # at rest: stop pushing into the obstacle
    np.testing.assert_allclose(arm.sent[-1], HOME)
