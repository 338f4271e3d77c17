"""Every wav_interfaces type crosses a process boundary intact (published, served or executed)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

PEERS = Path(__file__).resolve().parent / "ros_peers"
TIMEOUT_S = 30.0


@pytest.fixture
def peer_node(ros_context, spawn_peer):
    import rclpy
    from rclpy.node import Node

    sys.path.insert(0, str(PEERS))
    spawn_peer(str(PEERS / "interface_echo_peer.py"))
    node = Node("roundtrip_test")
    yield node
    node.destroy_node()
    del rclpy


def spin_until(node, predicate, timeout: float = TIMEOUT_S) -> bool:
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def test_every_message_type_round_trips(peer_node):
    import interface_samples as samples
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    qos = QoSProfile(
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
    received: dict[str, object] = {}
    publishers = {}
    for key, message_type in samples.MESSAGE_TYPES.items():
        publishers[key] = peer_node.create_publisher(message_type, f"/roundtrip/{key}/request", qos)
        peer_node.create_subscription(
            message_type,
            f"/roundtrip/{key}/reply",
            lambda message, key=key: received.__setitem__(key, message),
            qos,
        )
    assert spin_until(
        peer_node,
        lambda: all(p.get_subscription_count() > 0 for p in publishers.values()),
    ), "the peer's subscriptions never matched"
    for key, publisher in publishers.items():
        publisher.publish(samples.MESSAGES[key]())
    assert spin_until(peer_node, lambda: len(received) == len(publishers)), (
        f"no echo for {sorted(set(publishers) - set(received))}"
    )
    for key, make_sample in samples.MESSAGES.items():
        assert received[key] == make_sample(), f"{key} changed on the way"


@pytest.mark.parametrize("name", ["plan", "imagine", "score"])
def test_every_service_round_trips(peer_node, name):
    import interface_samples as samples
    import rclpy

    from wav_interfaces.srv import Imagine, Plan, Score

    service_type = {"plan": Plan, "imagine": Imagine, "score": Score}[name]
    client = peer_node.create_client(service_type, f"/roundtrip/{name}")
    assert client.wait_for_service(timeout_sec=TIMEOUT_S), f"/roundtrip/{name} never appeared"
    future = client.call_async(getattr(samples, f"{name}_request")())
    rclpy.spin_until_future_complete(peer_node, future, timeout_sec=TIMEOUT_S)
    response = future.result()
    assert response is not None, "no response"
    assert response.success, response.message
    assert response == getattr(samples, f"{name}_response")()


def test_execute_trajectory_action_round_trips(peer_node):
    import interface_samples as samples
    import rclpy
    from rclpy.action import ActionClient

    from wav_interfaces.action import ExecuteTrajectory

    client = ActionClient(peer_node, ExecuteTrajectory, "/roundtrip/execute")
    assert client.wait_for_server(timeout_sec=TIMEOUT_S), "action server never appeared"
    feedback: list[ExecuteTrajectory.Feedback] = []
    goal_future = client.send_goal_async(
        samples.execute_goal(), feedback_callback=lambda message: feedback.append(message.feedback)
    )
    rclpy.spin_until_future_complete(peer_node, goal_future, timeout_sec=TIMEOUT_S)
    goal_handle = goal_future.result()
    assert goal_handle is not None and goal_handle.accepted
    result_future = goal_handle.get_result_async()
    rclpy.spin_until_future_complete(peer_node, result_future, timeout_sec=TIMEOUT_S)
    result = result_future.result().result
    assert result == samples.execute_result(), result.message
    assert spin_until(peer_node, lambda: len(feedback) > 0), "no feedback arrived"
    assert feedback[0] == samples.execute_feedback()
