"""The safety gate refuses bad trajectories with reasons; e-stop latches; deadman expires."""

from __future__ import annotations

import numpy as np
import pytest

from wav_ros.execution import (
    Deadman,
    EStop,
    JointTrajectoryData,
    RefusalCode,
    RefusedError,
    SafetyGate,
    SafetyLimits,
    enforce_limits,
    validate_trajectory,
)
from wav_ros.robot_description import DEFAULT_JOINT_LIMITS, JOINT_NAMES

LIMITS = SafetyLimits()
HOME = (LIMITS.lower + LIMITS.upper) / 2
DT = 0.02


def chunk(steps: int = 20, stamp: float = 0.0, speed: float = 0.5) -> JointTrajectoryData:
    """A valid chunk from HOME moving every joint at `speed` units/s."""
    times = np.arange(steps) * DT
    positions = HOME + np.outer(times, np.full(len(JOINT_NAMES), speed))
    return JointTrajectoryData(JOINT_NAMES, times, positions, stamp)


def codes(trajectory: JointTrajectoryData, now: float = 0.0, current=HOME) -> set[RefusalCode]:
    return {r.code for r in validate_trajectory(trajectory, current, now, LIMITS)}


def replace(trajectory: JointTrajectoryData, **changes) -> JointTrajectoryData:
    fields = {
        "joint_names": trajectory.joint_names,
        "times_from_start": trajectory.times_from_start,
        "positions": trajectory.positions,
        "stamp": trajectory.stamp,
    }
    fields.update(changes)
    return JointTrajectoryData(**fields)


def test_valid_chunk_is_accepted():
    assert validate_trajectory(chunk(), HOME, 0.0, LIMITS) == []


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (JOINT_NAMES[:-1], "missing ['right_gripper']"),
        ((*JOINT_NAMES[:-1], "right_pinky"), "unknown ['right_pinky']"),
        ((*JOINT_NAMES[:-1], JOINT_NAMES[0]), "duplicated ['left_waist']"),
        ((JOINT_NAMES[1], JOINT_NAMES[0], *JOINT_NAMES[2:]), "wrong order"),
    ],
)
def test_wrong_joint_names_are_refused_naming_the_problem(names, fragment):
    refusals = validate_trajectory(replace(chunk(), joint_names=names), HOME, 0.0, LIMITS)
    assert [r.code for r in refusals] == [RefusalCode.JOINT_NAMES]
    assert fragment in refusals[0].message


def test_wrong_lengths_are_refused():
    base = chunk()
    assert codes(replace(base, positions=base.positions[:, :13])) == {RefusalCode.SHAPE}
    assert codes(replace(base, times_from_start=base.times_from_start[:-1])) == {RefusalCode.SHAPE}
    assert codes(replace(base, times_from_start=[], positions=np.zeros((0, 14)))) == {
        RefusalCode.SHAPE
    }


def test_non_finite_values_are_refused():
    base = chunk()
    positions = base.positions.copy()
    positions[3, 5] = np.nan
    refusals = validate_trajectory(replace(base, positions=positions), HOME, 0.0, LIMITS)
    assert [r.code for r in refusals] == [RefusalCode.NOT_FINITE]
    assert "waypoint 3" in refusals[0].message and "left_wrist_rotate" in refusals[0].message
    times = base.times_from_start.copy()
    times[-1] = np.inf
    assert codes(replace(base, times_from_start=times)) == {RefusalCode.NOT_FINITE}
    assert RefusalCode.NOT_FINITE in codes(replace(base, stamp=np.nan))


def test_time_going_backwards_is_refused():
    base = chunk()
    times = base.times_from_start.copy()
    times[[4, 5]] = times[[5, 4]]
    refusals = validate_trajectory(replace(base, times_from_start=times), HOME, 0.0, LIMITS)
    assert RefusalCode.TIMES in {r.code for r in refusals}
    assert "strictly increase" in str(refusals[0])
    assert RefusalCode.TIMES in codes(replace(base, times_from_start=base.times_from_start - 0.1))


def test_positions_outside_limits_are_refused_not_clamped():
    base = chunk()
    positions = base.positions.copy()
    positions[-1, 6] = DEFAULT_JOINT_LIMITS["left_gripper"].upper + 0.01
    refusals = validate_trajectory(replace(base, positions=positions), HOME, 0.0, LIMITS)
    position_refusals = [r for r in refusals if r.code is RefusalCode.POSITION_LIMIT]
    assert len(position_refusals) == 1 and "left_gripper" in position_refusals[0].message


def test_velocity_between_waypoints_above_limit_is_refused():
    assert codes(chunk(steps=5, speed=3.5)) == {RefusalCode.VELOCITY_LIMIT}
    jump = chunk()
    positions = jump.positions.copy()
    positions[10:, 0] += 0.2  # 0.2 rad in 20 ms = 10 rad/s
    refusals = validate_trajectory(replace(jump, positions=positions), HOME, 0.0, LIMITS)
    assert [r.code for r in refusals] == [RefusalCode.VELOCITY_LIMIT]
    assert "between waypoints 9 and 10" in refusals[0].message


def test_a_chunk_too_fast_for_the_limits_is_slowed_on_its_path_and_then_passes_the_gate():
    from wav_ros.execution import time_within_velocity_limits

    slow = chunk(steps=12, speed=2.0).positions
    np.testing.assert_allclose(
        time_within_velocity_limits(slow, 0.02, LIMITS), 0.02 * np.arange(1, 13)
    )
    fast = chunk(steps=12, speed=6.0).positions.copy()  # twice the arms' 3 rad/s limit
    grippers = [JOINT_NAMES.index("left_gripper"), JOINT_NAMES.index("right_gripper")]
    fast[:, grippers] = 0.2
    fast[6:, grippers[0]] = 0.7  # a gripper opening by 0.5 in one step (limit 5/s)
    times = time_within_velocity_limits(fast, 0.02, LIMITS)
    assert times[0] == pytest.approx(0.02)
    segments = np.diff(times)
    np.testing.assert_allclose(
        np.delete(segments, 5), 0.04, rtol=1e-5
    )  # arm segments: twice as long
    assert segments[5] == pytest.approx(0.5 / 5.0, rel=1e-5)  # the gripper's jump: 0.1 s
    original = JointTrajectoryData(JOINT_NAMES, 0.02 * np.arange(1, 13), fast, stamp=0.0)
    assert codes(original, current=fast[0]) == {RefusalCode.VELOCITY_LIMIT}
    slowed = JointTrajectoryData(JOINT_NAMES, times, fast, stamp=0.0)
    assert codes(slowed, current=fast[0]) == set()
    # A random chunk up to twice too fast, its times as a ROS message carries them (whole
    # nanoseconds): still within the limits.
    rng = np.random.default_rng(0)
    steps = rng.uniform(-2, 2, (200, len(JOINT_NAMES))) * LIMITS.velocity * DT
    walk = np.clip(HOME + np.cumsum(steps, axis=0), LIMITS.lower, LIMITS.upper)
    times = np.round(time_within_velocity_limits(walk, DT, LIMITS), 9)
    assert codes(JointTrajectoryData(JOINT_NAMES, times, walk, 0.0), current=walk[0]) == set()
    with pytest.raises(ValueError, match="shape"):
        time_within_velocity_limits(fast[:, :13], 0.02, LIMITS)


def test_a_first_target_out_of_one_steps_reach_is_reached_from_the_measured_state():
    from wav_ros.execution import start_from_state, time_within_velocity_limits

    limits = SafetyLimits(force_limited_joints=("left_gripper", "right_gripper"))
    wrist = JOINT_NAMES.index("right_wrist_angle")
    gripper = JOINT_NAMES.index("left_gripper")
    state = HOME.copy()
    state[gripper] = 0.4  # pressing on an object: measured away from its command
    targets = chunk(steps=16, speed=0.5).positions.copy()
    targets[:, gripper] = 0.0
    targets[:, wrist] += 0.05  # within one step's reach (3 rad/s × 20 ms = 0.06)

    within, jump = start_from_state(targets, state, DT, limits)
    np.testing.assert_array_equal(within, targets)
    assert jump == pytest.approx(0.05)

    targets[:, wrist] += 0.14  # 0.19 rad: a jump the gate refuses (max_start_deviation 0.15)
    times = DT * np.arange(1, 17)
    unanchored = JointTrajectoryData(JOINT_NAMES, times, targets, 0.0)
    assert {r.code for r in validate_trajectory(unanchored, state, 0.0, limits)} == {
        RefusalCode.START_DEVIATION
    }

    anchored, jump = start_from_state(targets, state, DT, limits)
    assert jump == pytest.approx(0.19)
    assert anchored.shape == (17, len(JOINT_NAMES))
    np.testing.assert_array_equal(anchored[1:], targets)
    expected_anchor = state.copy()
    expected_anchor[gripper] = 0.0  # the gripper keeps its command: no loosening of a grasp
    np.testing.assert_array_equal(anchored[0], expected_anchor)
    timed = time_within_velocity_limits(anchored, DT, limits)
    assert timed[1] - timed[0] == pytest.approx(0.19 / 3.0, rel=1e-5)
    trajectory = JointTrajectoryData(JOINT_NAMES, timed, anchored, 0.0)
    assert validate_trajectory(trajectory, state, 0.0, limits) == []

    # A joint measured past its limit (as the simulated forearm_roll is, by 0.015 rad, after
    # contact) starts from the limit: a plan never commands outside one.
    roll = JOINT_NAMES.index("left_forearm_roll")
    state[roll] = limits.lower[roll] - 0.015
    targets[:, roll] = limits.lower[roll] + 0.1
    anchored, _ = start_from_state(targets, state, DT, limits)
    assert anchored[0, roll] == limits.lower[roll]
    timed = time_within_velocity_limits(anchored, DT, limits)
    trajectory = JointTrajectoryData(JOINT_NAMES, timed, anchored, 0.0)
    assert validate_trajectory(trajectory, state, 0.0, limits) == []

    with pytest.raises(ValueError, match="state"):
        start_from_state(targets, state[:13], DT, limits)
    with pytest.raises(ValueError, match="state"):
        start_from_state(targets, np.full(len(JOINT_NAMES), np.nan), DT, limits)


def test_stale_and_future_plans_are_refused():
    assert codes(chunk(stamp=0.0), now=LIMITS.max_plan_age + 0.01) >= {RefusalCode.STALE}
    assert codes(chunk(stamp=1.0), now=1.0 - LIMITS.max_future_stamp - 0.01) == {
        RefusalCode.FUTURE_STAMP
    }


def test_plan_far_from_the_current_state_is_refused():
    far = HOME.copy()
    far[9] += LIMITS.max_start_deviation + 0.05
    refusals = validate_trajectory(chunk(), far, 0.0, LIMITS)
    assert [r.code for r in refusals] == [RefusalCode.START_DEVIATION]
    assert "right_elbow" in refusals[0].message


def test_a_plan_may_start_at_the_measured_arms_when_they_are_off_their_setpoint():
    setpoint, measured = HOME.copy(), HOME.copy()
    measured[4] += 0.16  # a loaded wrist, off its setpoint beyond max_start_deviation
    from_measured = replace(chunk(), positions=chunk().positions + (measured - HOME))
    assert codes(from_measured, current=setpoint) == {RefusalCode.START_DEVIATION}
    assert validate_trajectory(from_measured, setpoint, 0.0, LIMITS, measured) == []
    assert validate_trajectory(chunk(), setpoint, 0.0, LIMITS, measured) == []  # or the setpoint
    between = replace(chunk(), positions=chunk().positions + (measured - HOME) / 2)
    assert validate_trajectory(between, setpoint, 0.0, LIMITS, measured) == []
    beyond = replace(chunk(), positions=chunk().positions + 2 * (measured - HOME))
    (refusal,) = validate_trajectory(beyond, setpoint, 0.0, LIMITS, measured)
    assert refusal.code is RefusalCode.START_DEVIATION
    assert "setpoint" in refusal.message and "measured" in refusal.message
    nan = np.full(len(JOINT_NAMES), np.nan)
    assert [r.code for r in validate_trajectory(chunk(), setpoint, 0.0, LIMITS, nan)] == [
        RefusalCode.STATE
    ]


def test_start_deviation_is_measured_where_the_plan_is_now():
    # 0.2 s into a 1 rad/s plan the plan is 0.2 rad from its first waypoint.
    moving = chunk(steps=20, speed=1.0)
    assert RefusalCode.START_DEVIATION in codes(moving, now=0.2, current=HOME)
    assert codes(moving, now=0.2, current=moving.sample(0.2)) == set()


def test_force_limited_gripper_may_stay_away_from_its_command_but_arms_may_not():
    grippers = SafetyLimits(force_limited_joints=("left_gripper", "right_gripper"))
    blocked = HOME.copy()
    blocked[JOINT_NAMES.index("right_gripper")] += 0.4  # closing on a cube, stopped by it
    assert validate_trajectory(chunk(), blocked, 0.0, grippers) == []
    assert RefusalCode.START_DEVIATION in codes(chunk(), current=blocked)  # default limits
    far_arm = blocked.copy()
    far_arm[JOINT_NAMES.index("right_elbow")] += 0.3
    refusals = validate_trajectory(chunk(), far_arm, 0.0, grippers)
    assert [r.code for r in refusals] == [RefusalCode.START_DEVIATION]
    with pytest.raises(ValueError, match="left_hand"):
        SafetyLimits(force_limited_joints=("left_hand",))


def test_non_finite_current_state_is_refused():
    assert codes(chunk(), current=np.full(14, np.nan)) == {RefusalCode.STATE}


def test_trajectory_arrays_cannot_change_after_construction():
    trajectory = chunk()
    with pytest.raises(ValueError, match="read-only"):
        trajectory.positions[0, 0] = 99.0


def test_enforce_limits_refuses_instead_of_clamping():
    enforce_limits(HOME, HOME, DT, LIMITS)
    with pytest.raises(RefusedError) as raised:
        enforce_limits(HOME + np.r_[0.1, np.zeros(13)], HOME, DT, LIMITS)
    assert raised.value.refusals[0].code is RefusalCode.VELOCITY_LIMIT
    outside = HOME.copy()
    outside[6] = 1.5
    with pytest.raises(RefusedError, match="left_gripper"):
        enforce_limits(outside, None, DT, LIMITS)
    with pytest.raises(RefusedError, match="not finite"):
        enforce_limits(np.full(14, np.nan), None, DT, LIMITS)
    with pytest.raises(RefusedError, match="shape"):
        enforce_limits(HOME[:7], None, DT, LIMITS)
    # A clock going backwards allows no motion at all.
    with pytest.raises(RefusedError):
        enforce_limits(HOME + 1e-3, HOME, -DT, LIMITS)
    enforce_limits(HOME, HOME, -DT, LIMITS)


def test_estop_latches_until_explicit_reset_and_refuses_reset_while_asserted():
    estop = EStop()
    assert not estop.latched and estop.refusal() is None
    estop.update(True, "button pressed")
    estop.update(False)
    assert estop.latched, "releasing the source must not clear the latch"
    estop.update(True, "pressed again")
    verdict = estop.reset()
    assert not verdict.accepted and "still asserts" in verdict.reason
    assert estop.latched and "button pressed" in str(estop.refusal())
    estop.update(False)
    assert estop.reset().accepted
    assert not estop.latched


def test_deadman_starts_expired_and_expires_after_timeout():
    deadman = Deadman(timeout=0.5)
    assert "no heartbeat received yet" in str(deadman.refusal(0.0))
    deadman.feed(10.0)
    assert not deadman.expired(10.5)
    refusal = deadman.refusal(10.6)
    assert refusal is not None and refusal.code is RefusalCode.DEADMAN
    assert "0.600 s" in refusal.message
    assert Deadman(timeout=None).refusal(1e9) is None
    with pytest.raises(ValueError, match="deadman timeout"):
        Deadman(timeout=0.0)


def test_gate_adds_estop_and_deadman_to_trajectory_reasons():
    estop, deadman = EStop(), Deadman(0.5)
    gate = SafetyGate(LIMITS, estop, deadman)
    deadman.feed(0.0)
    assert gate.check(chunk(), HOME, 0.0).accepted
    estop.update(True)
    verdict = gate.check(chunk(stamp=0.0), HOME, 2.0)
    assert verdict.codes >= {RefusalCode.ESTOP, RefusalCode.DEADMAN, RefusalCode.STALE}


def test_limits_from_dict_merge_defaults_and_reject_typos(tmp_path):
    limits = SafetyLimits.from_dict(
        {"max_plan_age": 0.3, "joints": {"left_waist": {"velocity": 1.0, "lower": -1.0}}}
    )
    assert limits.max_plan_age == 0.3
    assert limits.velocity[0] == 1.0 and limits.lower[0] == -1.0
    assert limits.upper[0] == DEFAULT_JOINT_LIMITS["left_waist"].upper
    with pytest.raises(ValueError, match="unknown safety limit keys"):
        SafetyLimits.from_dict({"max_plan_agee": 0.3})
    with pytest.raises(ValueError, match="unknown limit keys"):
        SafetyLimits.from_dict({"joints": {"left_waist": {"effort": 1.0}}})
    with pytest.raises(ValueError, match="not commanded"):
        SafetyLimits.from_dict({"joints": {"head_pan": {"velocity": 1.0}}})
    with pytest.raises(ValueError, match="lower must be < upper"):
        SafetyLimits.from_dict({"joints": {"left_waist": {"lower": 1.0, "upper": 0.0}}})
    path = tmp_path / "limits.yaml"
    path.write_text("max_start_deviation: 0.05\njoints:\n  right_gripper: {upper: 0.8}\n")
    loaded = SafetyLimits.from_yaml(path)
    assert loaded.max_start_deviation == 0.05 and loaded.upper[13] == 0.8
