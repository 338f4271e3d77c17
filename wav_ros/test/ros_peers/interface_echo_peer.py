"""Peer process for the interface round-trip test.

Echoes every message type back on a reply topic, serves Plan/Imagine/Score answering the
sample response only when the request arrived intact, and runs an ExecuteTrajectory action
server that checks the goal, sends the sample feedback and the sample result.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import rclpy
from rclpy.action import ActionServer
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interface_samples as samples
from peer_runtime import spin_until_shutdown  # this folder: peers run as scripts

from wav_interfaces.action import ExecuteTrajectory
from wav_interfaces.srv import Imagine, Plan, Score

FEEDBACK_TOPIC = "/roundtrip/execute/_action/feedback"
DISCOVERY_TIMEOUT_S = 10.0
RELIABLE_LATCHED = QoSProfile(
    depth=1,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
)


class EchoPeer(Node):
    def __init__(self) -> None:
        super().__init__("interface_echo_peer")
        self._echo_publishers = {}
        for key, message_type in samples.MESSAGE_TYPES.items():
            self._echo_publishers[key] = self.create_publisher(
                message_type, f"/roundtrip/{key}/reply", RELIABLE_LATCHED
            )
            self.create_subscription(
                message_type,
                f"/roundtrip/{key}/request",
                lambda message, key=key: self._echo_publishers[key].publish(message),
                RELIABLE_LATCHED,
            )
        self.create_service(
            Plan, "/roundtrip/plan", self._serve(samples.plan_request, samples.plan_response)
        )
        self.create_service(
            Imagine,
            "/roundtrip/imagine",
            self._serve(samples.imagine_request, samples.imagine_response),
        )
        self.create_service(
            Score, "/roundtrip/score", self._serve(samples.score_request, samples.score_response)
        )
        self._action_server = ActionServer(
            self, ExecuteTrajectory, "/roundtrip/execute", self._execute
        )

    @staticmethod
    def _serve(expected_request, sample_response):
        def callback(request, response):
            if request != expected_request():
                response.success = False
                response.message = f"request corrupted in transit: {request}"
                return response
            return sample_response()

        return callback

    def _execute(self, goal_handle):
        if goal_handle.request != samples.execute_goal():
            goal_handle.abort()
            return ExecuteTrajectory.Result(
                error_code=ExecuteTrajectory.Result.ABORTED, message="goal corrupted in transit"
            )
        # Feedback is a plain topic: published before this process has discovered the client's
        # feedback subscription, it is lost (CI saw it once), so wait for that match first.
        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        while not self.count_subscribers(FEEDBACK_TOPIC) and time.monotonic() < deadline:
            time.sleep(0.02)
        goal_handle.publish_feedback(samples.execute_feedback())
        goal_handle.succeed()
        return samples.execute_result()


def main() -> None:
    rclpy.init()
    node = EchoPeer()
    spin_until_shutdown(node, "interface_echo_peer ready")


if __name__ == "__main__":
    main()
