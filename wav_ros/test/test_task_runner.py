"""The task runner's rules that need no graph: what counts as start-up, the chunk it executes,
its configuration checks."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ros  # imports rclpy message types


@pytest.mark.parametrize(
    "error",
    [
        "no observation received yet on /wav/observation",
        "stale observation: the latest on /wav/observation is 0.516 s old",
        "the executor refused the plan: refused: [deadman] no heartbeat for 0.6 s",
        "the executor refused the plan: refused: [state] no joint state received",
    ],
)
def test_start_up_refusals_are_retried_only_within_the_grace(error):
    from wav_ros.nodes.task_runner import TaskRunner, TaskRunnerConfig

    config = TaskRunnerConfig(instruction="x", startup_grace=10.0)
    assert TaskRunner._warming_up(error, time.monotonic(), config)
    assert not TaskRunner._warming_up(error, time.monotonic() - 11.0, config)


@pytest.mark.parametrize(
    "error",
    [
        "the executor refused the plan: refused: [position] right_elbow beyond its upper limit",
        "the executor refused the plan: refused: [stale] plan is 1.2 s old",
        "plan refused: decoded actions far outside the joint limits",
    ],
)
def test_real_refusals_are_never_start_up(error):
    from wav_ros.nodes.task_runner import TaskRunner, TaskRunnerConfig

    config = TaskRunnerConfig(instruction="x")
    assert not TaskRunner._warming_up(error, time.monotonic(), config)


def test_truncate_keeps_the_first_steps_header_and_joints():
    from std_msgs.msg import Header
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from wav_ros.nodes.task_runner import truncate

    points = [JointTrajectoryPoint(positions=[float(i)]) for i in range(16)]
    trajectory = JointTrajectory(header=Header(frame_id="world"), joint_names=["a"], points=points)
    chunk = truncate(trajectory, 8)
    assert [p.positions[0] for p in chunk.points] == list(range(8))
    assert chunk.header.frame_id == "world" and list(chunk.joint_names) == ["a"]


@pytest.mark.parametrize("field", ["steps_per_plan", "max_steps"])
def test_config_refuses_non_positive_budgets(field):
    from wav_ros.nodes.task_runner import TaskRunnerConfig

    with pytest.raises(ValueError, match=field):
        TaskRunnerConfig(instruction="x", **{field: 0})
