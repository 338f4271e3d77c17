"""Peer process for the camera_sync tests: N camera streams + joint_states, like a robot.

Every tick publishes one frame per camera and one joint state, in a shuffled order, each with
its own stamp jitter. The frame number is written into the data, so a test can tell whether a
synchronised set mixed frames: every pixel of frame k is k % 256, and joint JOINT_NAMES[j] is at
position k + j / 100 (the joint state lists the joints in a shuffled order). Prints "ready"
once every publisher is matched, then "done <frames>" after the last frame.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import rclpy
from peer_runtime import spin_until_shutdown  # this folder: peers run as scripts
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState

from wav_ros.nodes.image_codec import array_to_image
from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES

NANOSECONDS = 1_000_000_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", default="", help="namespace of every topic")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second")
    parser.add_argument("--jitter", type=float, default=0.003, help="±s of stamp jitter")
    parser.add_argument("--stamp-offset", type=float, default=0.0, help="s added to stamps")
    parser.add_argument("--encodings", default="rgb8,bgr8,mono8", help="one per camera")
    parser.add_argument("--height", type=int, default=24)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--skip-camera", type=int, default=-1, help="camera index to skip ...")
    parser.add_argument("--skip-every", type=int, default=0, help="... on frames k % n == n-1")
    parser.add_argument("--omit-joint", default="", help="a joint left out of joint_states")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def frame_image(frame: int, encoding: str, height: int, width: int, stamp_ns: int) -> Image:
    """An image whose every byte is frame % 256, in any encoding (unsupported ones included)."""
    value = frame % 256
    if encoding in ("rgb8", "bgr8"):
        image = array_to_image(np.full((height, width, 3), value, np.uint8), encoding)
    elif encoding == "mono8":
        image = array_to_image(np.full((height, width), value, np.uint8), encoding)
    else:  # e.g. 16UC1: valid for ROS, refused by camera_sync
        image = Image(height=height, width=width, encoding=encoding, step=2 * width)
        image.data = bytes([value]) * (2 * width * height)
    image.header.stamp = Time(nanoseconds=stamp_ns).to_msg()
    return image


class CameraStreamPeer(Node):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("camera_stream_peer")
        self.args = args
        self.encodings = args.encodings.split(",")
        self.random = random.Random(args.seed)
        self.camera_publishers = [
            self.create_publisher(Image, f"{args.prefix}/{name}/image_raw", qos_profile_sensor_data)
            for name in CAMERA_NAMES[: len(self.encodings)]
        ]
        self.joint_publisher = self.create_publisher(
            JointState, f"{args.prefix}/joint_states", qos_profile_sensor_data
        )
        self.frame = 0
        self.start_ns = 0
        self.timer = None
        self.match_timer = self.create_timer(0.01, self.start_when_matched)

    def all_matched(self) -> bool:
        publishers = [*self.camera_publishers, self.joint_publisher]
        return all(publisher.get_subscription_count() > 0 for publisher in publishers)

    def start_when_matched(self) -> None:
        if not self.all_matched():
            return
        self.match_timer.cancel()
        print("camera_stream_peer ready", flush=True)
        self.start_ns = self.get_clock().now().nanoseconds + round(NANOSECONDS / self.args.rate)
        self.timer = self.create_timer(1.0 / self.args.rate, self.publish_frame)

    def stamp_ns(self, base_ns: int) -> int:
        """A stamp between 2·jitter before the grid time and the grid time: a sensor stamps at
        capture, before it sends, and a stamp after the grid time (which the timer may hit
        exactly) would read as a negative synchronisation lag."""
        jitter = self.random.uniform(-self.args.jitter, self.args.jitter) - self.args.jitter
        return base_ns + round((self.args.stamp_offset + jitter) * NANOSECONDS)

    def publish_frame(self) -> None:
        args, frame = self.args, self.frame
        # Stamps on the frame grid: a period apart even when a starved timer fires late and
        # back to back (so sets of different frames never fall within the slop), and never
        # in the future, since the timer cannot fire before its grid time.
        base_ns = self.start_ns + round(frame * NANOSECONDS / args.rate)
        sends = []
        for index, (publisher, encoding) in enumerate(
            zip(self.camera_publishers, self.encodings, strict=True)
        ):
            if (
                index == args.skip_camera
                and args.skip_every
                and frame % args.skip_every == (args.skip_every - 1)
            ):
                continue
            image = frame_image(frame, encoding, args.height, args.width, self.stamp_ns(base_ns))
            sends.append((publisher, image))
        names = [name for name in JOINT_NAMES if name != args.omit_joint]
        self.random.shuffle(names)
        joints = JointState(
            name=names, position=[frame + JOINT_NAMES.index(name) / 100 for name in names]
        )
        joints.header.stamp = Time(nanoseconds=self.stamp_ns(base_ns)).to_msg()
        sends.append((self.joint_publisher, joints))
        self.random.shuffle(sends)
        for publisher, message in sends:
            publisher.publish(message)
        self.frame += 1
        if self.frame == args.frames:
            self.timer.cancel()
            print(f"done {self.frame}", flush=True)


def main() -> None:
    args = parse_args()
    rclpy.init()
    node = CameraStreamPeer(args)
    spin_until_shutdown(node)


if __name__ == "__main__":
    main()
