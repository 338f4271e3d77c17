"""What every test peer does after building its node: say it is ready, spin, exit cleanly on
SIGTERM (the test fixture's stop) or Ctrl-C."""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def spin_until_shutdown(node: Node, ready_message: str | None = None) -> None:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    if ready_message:
        print(ready_message, flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
