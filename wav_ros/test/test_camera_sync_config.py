"""camera_sync's parameters (set from config/camera_sync.yaml), joint reorder and counters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES

pytestmark = pytest.mark.ros

CONFIG = Path(__file__).resolve().parents[1] / "config" / "camera_sync.yaml"


def test_yaml_sets_every_declared_parameter(ros_context):
    from wav_ros.nodes.camera_sync import CameraSyncConfig, CameraSyncNode

    node = CameraSyncNode(cli_args=["--ros-args", "--params-file", str(CONFIG)])
    try:
        from_yaml = yaml.safe_load(CONFIG.read_text())["camera_sync"]["ros__parameters"]
        declared = set(node.list_parameters([], 0).names)
        assert set(vars(CameraSyncConfig())) <= declared
        assert set(from_yaml) == set(vars(CameraSyncConfig()))
        for name, value in from_yaml.items():
            expected = tuple(value) if isinstance(value, list) else value
            assert getattr(node.config, name) == expected, name
        assert node.config.camera_names == CAMERA_NAMES
        assert node.config.expected_joint_names == JOINT_NAMES
    finally:
        node.destroy_node()


def test_a_parameter_file_overrides_the_defaults(ros_context, tmp_path):
    from wav_ros.nodes.camera_sync import CameraSyncNode

    parameters = yaml.safe_load(CONFIG.read_text())
    parameters["camera_sync"]["ros__parameters"].update(slop=0.025, queue_size=7, max_age=2.0)
    path = tmp_path / "camera_sync.yaml"
    path.write_text(yaml.safe_dump(parameters))
    node = CameraSyncNode(cli_args=["--ros-args", "--params-file", str(path)])
    try:
        assert (node.config.slop, node.config.queue_size, node.config.max_age) == (0.025, 7, 2.0)
    finally:
        node.destroy_node()


def test_camera_topics_default_to_the_camera_names(ros_context):
    from rclpy.parameter import Parameter

    from wav_ros.nodes.camera_sync import CameraSyncNode

    node = CameraSyncNode(
        parameter_overrides=[Parameter("camera_names", value=["front", "top"])],
    )
    try:
        assert node.config.camera_topics == ("/front/image_raw", "/top/image_raw")
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("slop", -0.01, "slop must be a positive"),
        ("queue_size", 0, "queue_size must be at least 1"),
        ("camera_topics", ["/only_one"], "must be parallel to camera_names"),
        ("camera_names", ["cam", "cam"], "duplicates"),
    ],
)
def test_invalid_parameters_are_refused_by_name(ros_context, name, value, match):
    from rclpy.parameter import Parameter

    from wav_ros.nodes.camera_sync import CameraSyncNode

    with pytest.raises(ValueError, match=match):
        CameraSyncNode(parameter_overrides=[Parameter(name, value=value)])


def joint_state(names, position, velocity=(), effort=()):
    from sensor_msgs.msg import JointState

    message = JointState(
        name=list(names), position=list(position), velocity=list(velocity), effort=list(effort)
    )
    message.header.stamp.sec = 5
    return message


def test_joint_state_is_reordered_with_velocity_and_effort():
    from wav_ros.nodes.camera_sync import reorder_joint_state

    names = ["extra", "b", "a"]
    message = joint_state(names, [9.0, 2.0, 1.0], [-9.0, -2.0, -1.0])
    ordered = reorder_joint_state(message, ("a", "b"))
    assert list(ordered.name) == ["a", "b"]
    assert list(ordered.position) == [1.0, 2.0]
    assert list(ordered.velocity) == [-1.0, -2.0]
    assert list(ordered.effort) == []
    assert ordered.header == message.header


@pytest.mark.parametrize(
    ("names", "position", "velocity", "match"),
    [
        (["a"], [1.0], [], r"lacks joint\(s\) \['b'\]"),
        (["a", "a", "b"], [1.0, 1.0, 2.0], [], "names a joint twice"),
        (["a", "b"], [1.0], [], "2 names but 1 position"),
        (["a", "b"], [1.0, 2.0], [0.0], "2 names but 1 velocity"),
    ],
)
def test_unusable_joint_states_are_refused(names, position, velocity, match):
    from wav_ros.nodes.camera_sync import reorder_joint_state

    with pytest.raises(ValueError, match=match):
        reorder_joint_state(joint_state(names, position, velocity), ("a", "b"))


def test_statistics_keep_totals_and_reset_the_window():
    from wav_ros.nodes.camera_sync import SyncStatistics

    stats = SyncStatistics()
    for name in ("cam_high", "cam_high", "joint_states"):
        stats.receive(name)
    stats.drop("bad_encoding", "cam_high")
    stats.drop("stale")
    stats.publish(0.004)
    stats.publish(0.002)
    window = stats.close_window()
    assert window.received == {"cam_high": 2, "joint_states": 1}
    assert (window.drops, window.published) == (2, 2)
    assert window.lags.tolist() == [0.004, 0.002]
    assert stats.drops_by_reason() == {
        "bad_encoding": 1,
        "missing_joints": 0,
        "incomplete": 0,
        "stale": 1,
    }
    empty = stats.close_window()
    assert (empty.received, empty.drops, empty.published, empty.lags.size) == ({}, 0, 0, 0)
    assert stats.received["cam_high"] == 2 and stats.published == 2  # totals survive
