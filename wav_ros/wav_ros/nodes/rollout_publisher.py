"""Publishing an imagined rollout for RViz: the ImaginedRollout message plus, per camera, one
image tiling its future frames left to right (RViz shows Images, not custom messages)."""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from wav_interfaces.msg import ImaginedRollout
from wav_ros.nodes.image_codec import array_to_image, image_to_array
from wav_ros.nodes.qos import LATCHED


def tile_frames(rollout: ImaginedRollout) -> dict[str, np.ndarray]:
    """{camera: (H, steps*W, 3)} from the step-major frames of a rollout."""
    views = len(rollout.camera_names)
    if not views or len(rollout.frames) != rollout.num_future_frames * views:
        raise ValueError(
            f"rollout has {len(rollout.frames)} frames for {views} cameras × "
            f"{rollout.num_future_frames} steps"
        )
    return {
        camera: np.concatenate(
            [
                image_to_array(rollout.frames[step * views + view])
                for step in range(rollout.num_future_frames)
            ],
            axis=1,
        )
        for view, camera in enumerate(rollout.camera_names)
    }


class RolloutPublisher:
    """/wav/imagined_rollout and /wav/imagined/<camera>/image, latched for late RViz starts."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._rollouts = node.create_publisher(ImaginedRollout, "/wav/imagined_rollout", LATCHED)
        self._images: dict[str, object] = {}

    def publish(self, rollout: ImaginedRollout) -> None:
        self._rollouts.publish(rollout)
        if not rollout.frames:
            return
        for camera, mosaic in tile_frames(rollout).items():
            if camera not in self._images:
                self._images[camera] = self._node.create_publisher(
                    Image, f"/wav/imagined/{camera}/image", LATCHED
                )
            self._images[camera].publish(array_to_image(mosaic, header=rollout.header))
