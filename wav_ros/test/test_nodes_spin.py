"""run_nodes: the one way every node process spins and exits."""

from __future__ import annotations

import pytest


def _node_whose_timer(action):
    """A factory of a node whose first timer callback calls `action` (then never again)."""
    from rclpy.node import Node

    def factory() -> Node:
        node = Node("spin_probe")
        timer = node.create_timer(0.01, lambda: (timer.cancel(), action()))
        return node

    return factory


@pytest.mark.ros
def test_an_error_raised_while_the_context_shuts_down_is_a_clean_exit():
    """What a signal does mid-callback: the context goes down, then taking a message raises."""
    import rclpy

    from wav_ros.nodes.spin import run_nodes

    def shut_down_then_fail() -> None:
        rclpy.shutdown()
        raise RuntimeError("Unable to convert call argument '0'")

    run_nodes([_node_whose_timer(shut_down_then_fail)], threads=1)
    assert not rclpy.ok()


@pytest.mark.ros
def test_an_error_raised_while_running_still_surfaces_and_shuts_down():
    import rclpy

    from wav_ros.nodes.spin import run_nodes

    def fail() -> None:
        raise RuntimeError("a real fault")

    with pytest.raises(RuntimeError, match="a real fault"):
        run_nodes([_node_whose_timer(fail)], threads=1)
    assert not rclpy.ok()
