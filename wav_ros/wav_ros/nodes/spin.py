"""Running one or several nodes in a process: init, autostart lifecycle nodes, spin, clean exit.

Every console script (and so every node bringup starts) goes through `run_nodes`, so they handle
arguments, signals and shutdown the same way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node


def spin_in_background(executor: Executor, name: str) -> threading.Thread:
    """Spin `executor` on a daemon thread until it is shut down; the context shutting down
    (Ctrl-C, bringup's SIGINT) ends the thread the same quiet way instead of a traceback."""

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):
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
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal shuts the context down while a callback may be taking a message; what that
        # raises (e.g. "Unable to convert call argument") is the shutdown itself, not a fault.
        if rclpy.ok():
            raise
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
