"""The planning graph across processes: /wav/plan answered from the real tiny model shipped in
the package, one process per node, in local and distributed mode, and its refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from wav_ros.model import WAVConfig
from wav_ros.robot_description import JOINT_NAMES

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PEERS = Path(__file__).resolve().parent / "ros_peers"
TIMEOUT_S = 120.0
# Small planner settings so a plan takes well under a second on two cores.
PLANNER = {"iterations": 1, "num_video_samples": 6, "num_value_samples": 2}


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    """The shipped tiny checkpoint (the embedded default's)."""
    from wav_ros import SHIPPED_CHECKPOINT

    return SHIPPED_CHECKPOINT


def node_args(module: str, checkpoint: Path, **parameters: object) -> list[str]:
    args = ["-m", module, "--ros-args", "-p", f"checkpoint:={checkpoint}"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return args


def planner_args(checkpoint: Path, mode: str) -> list[str]:
    planner = {f"planner.{name}": value for name, value in PLANNER.items()}
    # The observations here are random pixels, far from anything the model was trained on:
    # these tests check the graph, so decoded actions are projected onto the limits however
    # far out they land, and reached from the measured state however far their first target
    # lies (the projection and start-jump refusals have their own tests below).
    return node_args(
        "wav_ros.nodes.latent_planner",
        checkpoint,
        mode=mode,
        visualize="false",
        max_limit_projection=100.0,
        max_start_jump=100.0,
        **planner,
    )


@pytest.fixture
def client(ros_context):
    from rclpy.node import Node

    from wav_interfaces.srv import Plan

    node = Node("plan_test_client")
    plan = node.create_client(Plan, "/wav/plan")
    yield node, plan
    node.destroy_node()


def call(node, client, instruction: str, **options):
    import rclpy

    from wav_interfaces.msg import PlanOptions
    from wav_interfaces.srv import Plan

    assert client.wait_for_service(timeout_sec=TIMEOUT_S), "/wav/plan never appeared"
    request = Plan.Request(instruction=instruction, options=PlanOptions(**options))
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=TIMEOUT_S)
    assert future.done(), "/wav/plan did not answer"
    return future.result()


def call_once_observed(node, client, instruction: str, **options):
    """Call /wav/plan once the planner has an observation (discovery takes a moment)."""
    import time

    deadline = time.monotonic() + TIMEOUT_S
    while True:
        response = call(node, client, instruction, **options)
        if "no observation" not in response.message or time.monotonic() > deadline:
            return response


def test_local_planner_refuses_bad_requests_then_plans(checkpoint, client, spawn_peer):
    import rclpy

    from wav_interfaces.msg import PlanOptions
    from wav_interfaces.srv import Plan
    from wav_ros.nodes.conversions import seconds_to_time

    node, plan = client
    spawn_peer(*planner_args(checkpoint, "local"))

    response = call(node, plan, "hand the cube over")
    assert not response.success and "no observation" in response.message

    stale = spawn_peer(str(PEERS / "observation_peer.py"), "--age", "5.0")
    response = call_once_observed(node, plan, "hand the cube over")
    assert not response.success and "stale observation" in response.message, response.message
    stale.stop()

    spawn_peer(str(PEERS / "observation_peer.py"))
    response = call(node, plan, "   ")
    assert not response.success and "empty instruction" in response.message

    # A client that has just moved the arms asks for a frame taken after that (here: a minute
    # from now, which no fresh observation can be).
    later = seconds_to_time(node.get_clock().now().nanoseconds * 1e-9 + 60.0)
    response = call(node, plan, "hand the cube over", observation_not_before=later)
    while "stale" in response.message:  # until the fresh peer's observations arrive
        response = call(node, plan, "hand the cube over", observation_not_before=later)
    assert not response.success, response.message
    assert "no observation since observation_not_before" in response.message

    response = call(node, plan, "hand the cube over", use_seed=True, seed=3)
    while "stale" in response.message:  # until the fresh peer's observations arrive
        response = call(node, plan, "hand the cube over", use_seed=True, seed=3)
    assert response.success, response.message
    positions = np.array([point.positions for point in response.trajectory.points])
    assert response.planning_time > 0 and response.stat_names
    stats = dict(zip(response.stat_names, response.stat_values, strict=True))
    # The model's first target on these random pixels lies far from the peer's arms: the plan
    # starts where they are measured (all zeros, grippers half open; a gripper keeps its first
    # target), and the caller executes that extra point too.
    assert stats["start_jump"] > 0.06 and stats["start_anchored"] == 1.0
    assert positions.shape == (17, 14) and np.all(np.isfinite(positions))
    arms = [i for i, name in enumerate(JOINT_NAMES) if not name.endswith("gripper")]
    np.testing.assert_array_equal(positions[0, arms], 0.0)
    np.testing.assert_array_equal(positions[0, [6, 13]], positions[1, [6, 13]])
    saved = json.loads((checkpoint / "config.json").read_text())["config"]
    # The checkpoint's execute_steps, plus the point that starts the plan at the arms.
    assert response.execute_steps == WAVConfig.from_dict(saved).execute_steps + 1

    # The peer's arms have not moved since that plan: the next one draws its action noise at
    # the checkpoint's stall scale, and a reset starts over.
    shipped = WAVConfig.from_dict(saved)
    assert shipped.stall_tolerance is not None
    for reset, stalled, scale in (
        (False, 1.0, shipped.stall_noise_scale),
        (True, 0.0, shipped.action_noise_scale),
    ):
        response = call(node, plan, "hand the cube over", reset_warm_start=reset)
        assert response.success, response.message
        stats = dict(zip(response.stat_names, response.stat_values, strict=True))
        assert (stats["stalled"], stats["action_noise_scale"]) == (stalled, scale)

    # Two calls at once are never interleaved: in local mode the planner spins one thread, so
    # the second waits in its queue and is planned after the first (a busy planner in a
    # multi-threaded process refuses it instead, with a message starting "busy").
    import time

    from wav_ros.nodes.conversions import time_to_seconds

    request = Plan.Request(instruction="hand the cube over", options=PlanOptions())
    futures = [plan.call_async(request) for _ in range(2)]
    finished: dict[int, float] = {}
    for index, future in enumerate(futures):
        future.add_done_callback(lambda _, i=index: finished.setdefault(i, time.monotonic()))
    while len(finished) < 2:
        rclpy.spin_once(node, timeout_sec=0.1)
    first, second = sorted(finished, key=finished.get)
    results = [futures[first].result(), futures[second].result()]
    assert results[0].success, results[0].message
    if results[1].success:
        # Planner-side times (each trajectory is stamped when its planning finished), so a
        # loaded machine delaying the responses to this client cannot blur them.
        stamps = [time_to_seconds(result.trajectory.header.stamp) for result in results]
        gap = stamps[1] - stamps[0]
        assert gap >= 0.9 * results[1].planning_time, "the two plans overlapped"
    else:
        assert results[1].message.startswith("busy"), results[1].message


def test_the_planner_parameter_overrides_the_checkpoints_execute_steps(
    checkpoint, client, spawn_peer
):
    node, plan = client
    misconfigured = spawn_peer(*planner_args(checkpoint, "local"), "-p", "execute_steps:=17")
    response = call(node, plan, "hand the cube over")
    assert not response.success
    assert "execute_steps=17 must be in 0..16" in response.message, response.message
    misconfigured.stop()

    spawn_peer(*planner_args(checkpoint, "local"), "-p", "execute_steps:=4")
    spawn_peer(str(PEERS / "observation_peer.py"))
    response = call_once_observed(node, plan, "hand the cube over")
    while "stale" in response.message or "execute_steps=17" in response.message:
        response = call(node, plan, "hand the cube over")
    assert response.success, response.message
    anchored = int(
        dict(zip(response.stat_names, response.stat_values, strict=True))["start_anchored"]
    )
    assert response.execute_steps == 4 + anchored
    assert len(response.trajectory.points) == 16 + anchored


def test_a_first_target_beyond_max_start_jump_is_refused(checkpoint, client, spawn_peer):
    node, plan = client
    spawn_peer(*planner_args(checkpoint, "local"), "-p", "max_start_jump:=0.01")
    spawn_peer(str(PEERS / "observation_peer.py"))
    response = call_once_observed(node, plan, "hand the cube over")
    while "stale" in response.message:  # until the peer's observations arrive
        response = call(node, plan, "hand the cube over")
    assert not response.success
    assert "from the measured state (max_start_jump=0.01)" in response.message, response.message


def test_distributed_plan_equals_bare_model_api(checkpoint, client, spawn_peer):
    """world_model, value and latent_planner in three processes give the bare API's plan."""
    from wav_ros.model import WAVPolicy
    from wav_ros.planning import PlannerConfig

    sys.path.insert(0, str(PEERS))
    node, plan = client
    spawn_peer(*node_args("wav_ros.nodes.world_model", checkpoint, visualize="false"))
    spawn_peer(*node_args("wav_ros.nodes.value", checkpoint))
    spawn_peer(*planner_args(checkpoint, "distributed"))
    received = []
    from wav_interfaces.msg import Observation

    node.create_subscription(Observation, "/wav/observation", received.append, 5)
    spawn_peer(str(PEERS / "observation_peer.py"))

    response = call_once_observed(node, plan, "put the cube in the bin", use_seed=True, seed=11)
    assert response.success, response.message
    remote = np.array([point.positions for point in response.trajectory.points])

    import rclpy

    while not received:
        rclpy.spin_once(node, timeout_sec=0.1)
    from wav_ros.nodes.conversions import observation_to_arrays

    policy = WAVPolicy.from_pretrained(checkpoint)
    images, state = observation_to_arrays(received[-1], policy.config.camera_names, JOINT_NAMES)
    local = policy.plan(
        images,
        state,
        "put the cube in the bin",
        PlannerConfig(**PLANNER, seed=0),
        seed=11,
    )
    from wav_ros.nodes.graph import load_joint_limits

    limits = load_joint_limits()
    expected = np.clip(local.actions, limits.lower, limits.upper)  # the planner's projection
    anchored = int(
        dict(zip(response.stat_names, response.stat_values, strict=True))["start_anchored"]
    )
    np.testing.assert_allclose(remote[anchored:], expected, rtol=1e-5, atol=1e-5)
    assert response.predicted_value == pytest.approx(local.predicted_value, abs=1e-5)


def test_plan_markers_chart_a_plan_that_starts_at_the_measured_arms():
    from std_msgs.msg import Header

    from wav_ros.nodes.latent_planner import plan_markers

    values = np.linspace(0.0, 1.0, 16)
    candidates = np.random.default_rng(0).random((4, 2, 16))  # (M, N, L)
    waypoints = np.linspace(0.0, 1.0, 17)[:, None] * np.ones((17, len(JOINT_NAMES)))
    markers = plan_markers(Header(frame_id="world"), candidates, values, waypoints).markers
    by_namespace = {}
    for marker in markers[1:]:
        by_namespace.setdefault(marker.ns, []).append(marker)
    assert [len(by_namespace[ns]) for ns in ("wav_candidates", "wav_chosen", "wav_plan")] == [
        4,
        1,
        len(JOINT_NAMES),
    ]
    assert all(len(marker.points) == 16 for marker in by_namespace["wav_candidates"])
    plan = by_namespace["wav_plan"][0]
    assert len(plan.points) == 17
    assert plan.points[-1].z == pytest.approx(0.1) and plan.points[-1].x == pytest.approx(0.5)


def test_decoded_actions_are_projected_onto_limits_or_refused_when_far_out():
    from wav_ros.nodes.graph import load_joint_limits
    from wav_ros.nodes.latent_planner import PlanRefusedError, project_onto_limits
    from wav_ros.robot_description import JOINT_NAMES

    limits = load_joint_limits()
    actions = np.tile((limits.lower + limits.upper) / 2, (4, 1))
    gripper, elbow = JOINT_NAMES.index("left_gripper"), JOINT_NAMES.index("right_elbow")
    actions[1, gripper] = -0.4  # a gripper past closed: projected, whatever the distance
    actions[2, elbow] = limits.upper[elbow] + 0.05  # slightly past an arm limit: projected
    projected, largest = project_onto_limits(actions, limits, max_projection=0.1)
    assert np.all(projected >= limits.lower) and np.all(projected <= limits.upper)
    assert projected[1, gripper] == 0.0 and largest == pytest.approx(0.05)
    actions[2, elbow] = limits.upper[elbow] + 0.3  # far past: the model is wrong, refuse
    with pytest.raises(PlanRefusedError, match="right_elbow"):
        project_onto_limits(actions, limits, max_projection=0.1)


def test_the_planner_times_its_chunk_within_the_velocity_limits(
    checkpoint, client, spawn_peer, tmp_path
):
    import yaml

    from wav_ros.execution import JointTrajectoryData, SafetyLimits, validate_trajectory
    from wav_ros.nodes.conversions import trajectory_to_arrays
    from wav_ros.nodes.graph import default_config_dir

    # Limits 50 times slower than the robot's: any decoded chunk moves too fast for them.
    document = yaml.safe_load((default_config_dir() / "joint_limits.yaml").read_text())
    for joint in document["joints"].values():
        joint["velocity"] = joint["velocity"] / 50
    slow_file = tmp_path / "slow_limits.yaml"
    slow_file.write_text(yaml.safe_dump(document))
    node, plan = client
    spawn_peer(*planner_args(checkpoint, "local"), "-p", f"limits_file:={slow_file}")
    spawn_peer(str(PEERS / "observation_peer.py"))
    response = call_once_observed(node, plan, "hand the cube over", use_seed=True, seed=3)
    while "stale" in response.message:  # until the peer's observations arrive
        response = call(node, plan, "hand the cube over", use_seed=True, seed=3)
    assert response.success, response.message
    times, positions = trajectory_to_arrays(response.trajectory)
    slowdown = dict(zip(response.stat_names, response.stat_values, strict=True))
    uniform_times = 0.02 * np.arange(1, len(times) + 1)
    assert times[-1] > uniform_times[-1] and slowdown["velocity_limit_slowdown"] > 0
    assert times[-1] - uniform_times[-1] == pytest.approx(
        slowdown["velocity_limit_slowdown"], rel=1e-4
    )
    chunk = JointTrajectoryData(response.trajectory.joint_names, times, positions, stamp=0.0)
    assert validate_trajectory(chunk, None, 0.0, SafetyLimits.from_yaml(slow_file)) == []
    uniform = JointTrajectoryData(chunk.joint_names, uniform_times, positions, 0.0)
    assert validate_trajectory(uniform, None, 0.0, SafetyLimits.from_yaml(slow_file)) != []


def test_planner_parameters_are_validated_at_start_and_when_set(ros_context, checkpoint):
    from rclpy.parameter import Parameter

    from wav_ros.nodes.latent_planner import LatentPlannerNode
    from wav_ros.planning import PlannerConfig

    with pytest.raises(ValueError, match="temperature must be > 0"):
        LatentPlannerNode(parameter_overrides=[Parameter("planner.temperature", value=-1.0)])
    node = LatentPlannerNode(parameter_overrides=[Parameter("checkpoint", value=str(checkpoint))])
    try:
        node.trigger_configure()
        chunk = node.policy.config.chunk_size
        for name, value, match in [
            ("planner.iterations", -1, "iterations must be an int >= 0"),
            ("planner.method", "greedy", "method must be one of"),
            ("execute_steps", chunk + 1, f"must be in 0..{chunk}"),
            ("max_start_jump", 0.0, "max_start_jump must be > 0 rad"),
        ]:
            (result,) = node.set_parameters([Parameter(name, value=value)])
            assert not result.successful and match in result.reason, (name, result.reason)
        assert node._configured_planner == PlannerConfig()  # the refused values never landed
        assert node.get_parameter("execute_steps").value == 0
        accepted = node.set_parameters(
            [Parameter("planner.iterations", value=3), Parameter("execute_steps", value=chunk)]
        )
        assert all(result.successful for result in accepted)
        assert node._configured_planner.iterations == 3 and node.execute_steps == chunk
    finally:
        node.destroy_node()
