"""Backends: the simulation follows the session; JTC and MoveIt messages are built from
checked trajectories (MoveIt itself is not installable here: its pure parts are tested)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from wav_ros.execution import (
    ExecutionSession,
    FollowerConfig,
    JointTrajectoryData,
    OutcomeStatus,
    RefusalCode,
    SafetyLimits,
)
from wav_ros.execution.backends.joint_state import JointStateCache
from wav_ros.execution.backends.joint_trajectory import (
    JointTrajectoryControllerBackend,
    build_joint_trajectory_msg,
    default_interface,
    duration_parts,
)
from wav_ros.execution.backends.moveit import (
    MoveItBackend,
    MoveItBackendConfig,
    check_retimed,
    default_planning_groups,
    group_trajectory,
    select_planning_group,
)
from wav_ros.execution.backends.sim import SimBackend
from wav_ros.robot_description import JOINT_NAMES

LIMITS = SafetyLimits()
DT = 0.02


def ramp(start: np.ndarray, delta: np.ndarray, stamp: float, steps: int = 50):
    times = np.arange(steps) * DT
    positions = start + np.outer(np.linspace(0.0, 1.0, steps), delta)
    return JointTrajectoryData(JOINT_NAMES, times, positions, stamp)


# -- simulation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_env():
    from wav_ros.sim import make_env

    env = make_env("transfer_cube", cameras=())
    yield env
    env.close()


def test_sim_follows_the_session_and_holds_on_estop(sim_env):
    backend = SimBackend(sim_env, sim_env.reset(seed=0))
    session = ExecutionSession(backend, LIMITS, FollowerConfig(deadman_timeout=None))
    start = backend.read_state(0.0)
    delta = np.zeros(14)
    delta[[0, 7]] = 0.3  # both waists turn 0.3 rad in 1 s
    plan = ramp(start, delta, 0.0)
    assert session.submit(plan, 0.0).verdict.accepted
    reports = [session.tick(k * DT) for k in range(70)]
    assert session.outcome(1).status is OutcomeStatus.SUCCEEDED
    assert max(r.tracking_error for r in reports[1:]) < 0.1
    measured = backend.read_state(0.0)
    assert measured[0] == pytest.approx(start[0] + 0.3, abs=0.03)

    back = ramp(session.last_command, -delta, 70 * DT)
    session.submit(back, 70 * DT)
    for k in range(70, 80):
        session.tick(k * DT)
    session.set_estop(True)
    held = session.last_command
    for k in range(80, 110):
        session.tick(k * DT)
    assert np.max(np.abs(backend.read_state(0.0)[[0, 7]] - held[[0, 7]])) < 0.05
    assert session.outcome(2).status is OutcomeStatus.ABORTED


# -- ros2_control joint_trajectory_controller --------------------------------------------------


def test_duration_parts_round_and_carry():
    assert duration_parts(1.25) == (1, 250_000_000)
    assert duration_parts(0.9999999999) == (1, 0)
    with pytest.raises(ValueError, match="duration"):
        duration_parts(-0.1)


def test_joint_trajectory_message_carries_the_checked_waypoints():
    start = (LIMITS.lower + LIMITS.upper) / 2
    plan = ramp(start, np.full(14, 0.1), 0.0, steps=5)
    message = build_joint_trajectory_msg(plan)
    assert list(message.joint_names) == list(JOINT_NAMES)
    assert len(message.points) == 5
    np.testing.assert_allclose(message.points[3].positions, plan.positions[3])
    assert (message.points[3].time_from_start.sec, message.points[3].time_from_start.nanosec) == (
        0,
        60_000_000,
    )
    assert len(message.points[3].velocities) == 0, "positions only: linear interpolation"
    assert message.header.stamp.sec == 0 and message.header.stamp.nanosec == 0


def test_joint_state_cache_assembles_by_name_and_ages_out():
    cache = JointStateCache(JOINT_NAMES, max_age=0.1)
    assert cache.read(0.0) is None
    cache.update(list(reversed(JOINT_NAMES[:7])), list(range(7))[::-1], 0.0)
    assert cache.read(0.0) is None, "right arm missing"
    cache.update([*JOINT_NAMES[7:], "head_pan"], [*range(7, 14), 99], 0.05)
    np.testing.assert_array_equal(cache.read(0.1), np.arange(14))
    assert cache.read(0.11) is None, "left arm state is too old"
    with pytest.raises(ValueError, match="names"):
        cache.update(JOINT_NAMES, [0.0], 0.0)


def test_jtc_backend_publishes_the_blend_and_a_hold_point():
    published = []
    backend = JointTrajectoryControllerBackend(JOINT_NAMES, published.append, interface="topic")
    session = ExecutionSession(backend, LIMITS, FollowerConfig(deadman_timeout=None))
    start = (LIMITS.lower + LIMITS.upper) / 2
    backend.update_joint_state(list(JOINT_NAMES), list(start), 0.0)
    assert session.submit(ramp(start, np.full(14, 0.2), 0.0), 0.0).verdict.accepted
    message = published[-1]
    np.testing.assert_allclose(message.points[0].positions, start)
    positions = np.array([p.positions for p in message.points])
    times = np.array(
        [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in message.points]
    )
    speeds = np.abs(np.diff(positions, axis=0)) / np.diff(times)[:, None]
    assert np.all(speeds <= LIMITS.velocity + 1e-6)

    backend.update_joint_state(list(JOINT_NAMES), list(start), 0.1)
    for k in range(6):
        session.tick(k * DT)
    assert session.cancel(0.1)
    hold = published[-1]
    assert len(hold.points) == 1
    np.testing.assert_allclose(hold.points[0].positions, session.last_command)


def test_jtc_stale_joint_state_stops_motion():
    published = []
    backend = JointTrajectoryControllerBackend(JOINT_NAMES, published.append, interface="topic")
    session = ExecutionSession(backend, LIMITS, FollowerConfig(deadman_timeout=None))
    start = (LIMITS.lower + LIMITS.upper) / 2
    backend.update_joint_state(list(JOINT_NAMES), list(start), 0.0)
    session.submit(ramp(start, np.full(14, 0.2), 0.0), 0.0)
    report = session.tick(0.5)  # no joint_states for 0.5 s
    assert report.fault.code is RefusalCode.STATE
    assert len(published[-1].points) == 1, "a hold point was sent"


def test_jtc_interface_follows_control_msgs_availability():
    has_control_msgs = importlib.util.find_spec("control_msgs") is not None
    assert default_interface() == ("action" if has_control_msgs else "topic")
    if not has_control_msgs:
        backend = JointTrajectoryControllerBackend(JOINT_NAMES, print, interface="action")
        plan = ramp((LIMITS.lower + LIMITS.upper) / 2, np.zeros(14), 0.0, steps=2)
        with pytest.raises(ImportError, match="control_msgs"):
            backend.build_message(plan)


# -- MoveIt (pure parts) -----------------------------------------------------------------------


def test_default_planning_groups_split_the_arms():
    groups = default_planning_groups()
    assert groups["left_arm"] == JOINT_NAMES[:7]
    assert groups["right_arm"] == JOINT_NAMES[7:]
    assert groups["both_arms"] == JOINT_NAMES


def test_planning_group_is_the_smallest_covering_the_moving_joints():
    config = MoveItBackendConfig()
    start = (LIMITS.lower + LIMITS.upper) / 2
    left_only = np.zeros(14)
    left_only[2] = 0.1
    assert select_planning_group(ramp(start, left_only, 0.0), config) == "left_arm"
    right_only = np.zeros(14)
    right_only[13] = 0.1
    assert select_planning_group(ramp(start, right_only, 0.0), config) == "right_arm"
    assert select_planning_group(ramp(start, left_only + right_only, 0.0), config) == "both_arms"
    only_arms = MoveItBackendConfig(planning_groups={"left_arm": JOINT_NAMES[:7]})
    with pytest.raises(ValueError, match="no planning group"):
        select_planning_group(ramp(start, right_only, 0.0), only_arms)


def test_group_trajectory_maps_to_urdf_names():
    config = MoveItBackendConfig(urdf_joint_names={"right_waist": "vx300s_right/waist"})
    start = (LIMITS.lower + LIMITS.upper) / 2
    plan = ramp(start, np.full(14, 0.1), 0.0, steps=3)
    right = group_trajectory(plan, "right_arm", config)
    assert right.joint_names[0] == "vx300s_right/waist" and len(right.joint_names) == 7
    np.testing.assert_array_equal(right.positions, plan.positions[:, 7:])


def test_retimed_trajectory_is_rechecked_against_executor_limits():
    config = MoveItBackendConfig(urdf_joint_names={"left_waist": "vx300s_left/waist"})
    start = (LIMITS.lower + LIMITS.upper) / 2
    plan = ramp(start, np.full(14, 0.1), 0.0, steps=4)
    message = build_joint_trajectory_msg(group_trajectory(plan, "left_arm", config))
    assert check_retimed(message, "left_arm", config, LIMITS) == []
    # A retiming that squeezed the motion into 1 ms would exceed the velocity limits.
    for point in message.points:
        point.time_from_start.nanosec //= 20
    refusals = check_retimed(message, "left_arm", config, LIMITS)
    assert {r.code for r in refusals} == {RefusalCode.VELOCITY_LIMIT}
    assert "left_waist" in refusals[0].message


def test_moveit_config_and_missing_moveit_py_are_reported_clearly():
    with pytest.raises(ValueError, match="velocity_scaling"):
        MoveItBackendConfig(velocity_scaling=1.5)
    with pytest.raises(ValueError, match="lacks"):
        MoveItBackend(LIMITS, MoveItBackendConfig(planning_groups={"arm": ("left_pinky",)}))
    if importlib.util.find_spec("moveit") is None:
        with pytest.raises(ImportError, match="moveit_py"):
            MoveItBackend(LIMITS).connect()
