"""Peer for planning-graph tests: publishes synchronised Observations on /wav/observation.

--age S stamps every observation S seconds in the past (to test stale refusals);
--rate is the publishing rate. Images are a fixed deterministic pattern, rgb8.
"""

from __future__ import annotations

import argparse

import numpy as np
import rclpy
from peer_runtime import spin_until_shutdown  # this folder: peers run as scripts
from rclpy.node import Node
from rclpy.time import Duration
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from wav_interfaces.msg import Observation
from wav_ros.nodes.image_codec import array_to_image
from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--age", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=64)
    arguments, ros_args = parser.parse_known_args()
    rclpy.init(args=ros_args)
    node = Node("observation_peer")
    publisher = node.create_publisher(Observation, "/wav/observation", 5)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (arguments.size, arguments.size, 3), dtype=np.uint8)
        for _ in CAMERA_NAMES
    ]
    state = np.zeros(len(JOINT_NAMES))
    state[[6, 13]] = 0.5

    def publish() -> None:
        stamp = (node.get_clock().now() - Duration(seconds=arguments.age)).to_msg()
        header = Header(stamp=stamp, frame_id="world")
        message = Observation(header=header, camera_names=list(CAMERA_NAMES))
        message.images = [array_to_image(image, header=header) for image in images]
        message.joint_state = JointState(header=header, name=list(JOINT_NAMES))
        message.joint_state.position = state.tolist()
        publisher.publish(message)

    node.create_timer(1.0 / arguments.rate, publish)
    spin_until_shutdown(node, "observation_peer ready")


if __name__ == "__main__":
    main()
