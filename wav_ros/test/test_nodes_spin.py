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


def _spin_in_background_until_it_ends(action) -> list[BaseException]:
    """Spin a node whose first timer calls `action` on `spin_in_background`, in a context of its
    own, until the thread ends; return what escaped the thread."""
    import threading

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from wav_ros.nodes.spin import spin_in_background

    context = Context()
    rclpy.init(context=context)
    node = Node("background_probe", context=context)
    timer = node.create_timer(0.01, lambda: (timer.cancel(), action(context)))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    escaped: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: escaped.append(args.exc_value)
    try:
        thread = spin_in_background(executor, "background_probe")
        thread.join(timeout=10)
        assert not thread.is_alive()
    finally:
        threading.excepthook = previous_hook
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return escaped


@pytest.mark.ros
def test_a_background_spin_ends_quietly_when_the_context_shuts_down_under_it():
    """CI's bringup race: SIGINT shut the context down between the executor's ok() check and
    its wait, and the wait raised RCLError "context is not valid" as a thread traceback."""
    import rclpy

    def shut_down_then_fail(context) -> None:
        rclpy.shutdown(context=context)
        raise RuntimeError("failed to initialize wait set: the given context is not valid")

    assert _spin_in_background_until_it_ends(shut_down_then_fail) == []


@pytest.mark.ros
def test_a_background_spin_still_surfaces_a_real_fault():
    def fail(context) -> None:
        raise RuntimeError("a real fault")

    escaped = _spin_in_background_until_it_ends(fail)
    assert [str(error) for error in escaped] == ["a real fault"]
