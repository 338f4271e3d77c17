"""Running one or several nodes in a process: init, autostart lifecycle nodes, spin, clean exit.

Every console script (and so every node bringup starts) goes through `run_nodes`, so they handle
arguments, signals and shutdown the same way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

import rclpy
from rclpy.context import Context
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node


@contextlib.contextmanager
def quiet_on_shutdown(context: Context | None = None) -> Iterator[None]:
    """End quietly when the context was shut down (Ctrl-C, bringup's SIGINT) under the code.

    A signal can shut the context down between an executor's `ok()` check and its wait (which
    then raises RCLError "context is not valid"), or while a callback takes a message ("Unable
    to convert call argument"): that is the shutdown itself, not a fault. Anything raised while
    the context is still valid propagates.
    """
    try:
        yield
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok(context=context):
            raise


def spin_in_background(executor: Executor, name: str) -> threading.Thread:
    """Spin `executor` on a daemon thread until it is shut down; the context shutting down
    ends the thread the same quiet way as the main spin instead of a traceback."""

    def spin() -> None:
        with quiet_on_shutdown(executor.context):
            executor.spin()

    thread = threading.Thread(target=spin, name=name, daemon=True)
    thread.start()
    return thread


def run_nodes(
    factories: Sequence[Callable[[], Node]],
    *,
    args: list[str] | None = None,
    threads: int | Callable[[list[Node]], int] = 2,
) -> None:
    """Create the nodes, configure+activate those that hold a model, spin until shutdown.

    `threads` > 1 lets a long service callback (a plan) run while observations keep arriving
    and while other nodes' services answer it; 1 spins everything on this thread. It may be a
    function of the created nodes, to choose from their parameters.
    """
    from wav_ros.nodes.model_host import ModelNode  # torch only in processes that host a model

    rclpy.init(args=args)
    nodes: list[Node] = []
    try:
        with quiet_on_shutdown():
            nodes = [factory() for factory in factories]
            for node in nodes:
                if isinstance(node, ModelNode):
                    node.autostart()
            count = threads(nodes) if callable(threads) else threads
            executor = (
                MultiThreadedExecutor(num_threads=count) if count > 1 else SingleThreadedExecutor()
            )
            for node in nodes:
                executor.add_node(node)
            names = ", ".join(node.get_name() for node in nodes)
            nodes[0].get_logger().info(f"ready: {names}")
            executor.spin()
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
