"""world_model: serves /wav/imagine, the video expert's latent trajectory features.

For a batch of video noises and an observation + instruction it runs `WAVPolicy.imagine` per
noise (one video-expert pass at the noisiest timestep, or a few Euler steps first when the
checkpoint's feature_noise_level is below 1) and returns the per-layer hidden states (the
latent trajectory features the value and action experts read). The observation encoding is cached
per (stamp, instruction), so the K iterations of one plan encode it once. On request it also
denoises the first candidate's future, decodes it to images and, with `visualize`, publishes
it on /wav/imagined_rollout for RViz.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from std_msgs.msg import Header

from wav_interfaces.msg import Observation
from wav_interfaces.srv import Imagine
from wav_ros.nodes import conversions
from wav_ros.nodes.model_host import ModelNode
from wav_ros.nodes.rollout_publisher import RolloutPublisher
from wav_ros.robot_description import JOINT_NAMES


def context_id(observation: Observation, instruction: str) -> str:
    """Identifies an observation + instruction pair across nodes."""
    stamp = observation.header.stamp
    digest = hashlib.sha1(instruction.encode()).hexdigest()[:12]
    return f"{stamp.sec}.{stamp.nanosec:09d}/{digest}"


class WorldModelNode(ModelNode):
    """The /wav/imagine service; see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("world_model", **kwargs)
        self.declare_parameter("observation_topic", "/wav/observation")
        self.declare_parameter("visualize", True)
        self.declare_parameter("max_batch", 256)
        self._latest: Observation | None = None
        self._cache_key: str | None = None
        self._cache_context = None
        self.create_subscription(
            Observation, self.get_parameter("observation_topic").value, self._on_observation, 5
        )
        self._rollout_publisher = RolloutPublisher(self)
        self.create_model_service(Imagine, "/wav/imagine", self._imagine)

    def _on_observation(self, message: Observation) -> None:
        self._latest = message

    def _imagine(self, request: Imagine.Request, response: Imagine.Response) -> None:
        instruction = request.instruction.strip()
        if not instruction:
            raise ValueError("empty instruction")
        observation = request.observation if request.observation.images else self._latest
        if observation is None:
            raise ValueError("no observation in the request and none received yet")
        key = context_id(observation, instruction)
        context = self._observation_context(key, observation, instruction)
        noise = self._noise(request)
        if noise.shape[0] > self.get_parameter("max_batch").value:
            raise ValueError(f"batch of {noise.shape[0]} noises exceeds max_batch")
        features = self.policy.imagine(context, noise)
        response.features = conversions.arrays_to_features(
            observation.header, key, {"hidden_states": features.to_tensor().numpy()}
        )
        if request.decode_rollout:
            frames = self.policy.decode_frames(context, noise[0])
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id="world")
            response.rollout = conversions.rollout_message(
                header, instruction, list(self.policy.config.camera_names), frames, [], 0.0
            )
            if self.get_parameter("visualize").value:
                self._rollout_publisher.publish(response.rollout)
        response.success = True
        response.message = f"imagined {noise.shape[0]} futures"

    def _observation_context(self, key: str, observation: Observation, instruction: str):
        if key != self._cache_key:
            from wav_ros.model import resize_images

            images, state = conversions.observation_to_arrays(
                observation, self.policy.config.camera_names, JOINT_NAMES
            )
            size = self.policy.config.tokenizer.image_size
            if any(image.shape[:2] != (size, size) for image in images.values()):
                images = resize_images(images, size)
            self._cache_context = self.policy.encode_observation(images, state, instruction)
            self._cache_key = key
        return self._cache_context

    def _noise(self, request: Imagine.Request) -> torch.Tensor:
        shape = tuple(self.policy.config.video_noise_shape)
        if request.video_noise.shape:
            noise = conversions.tensor_to_array(request.video_noise, name="video_noise")
            if noise.shape[1:] != shape:
                raise ValueError(f"video_noise must have shape (M, {shape}), got {noise.shape}")
            return torch.from_numpy(np.ascontiguousarray(noise))
        if request.num_samples == 0:
            raise ValueError("give video_noise or num_samples > 0")
        generator = torch.Generator().manual_seed(int(request.seed)) if request.use_seed else None
        return torch.randn((int(request.num_samples), *shape), generator=generator)


def main(args: list[str] | None = None) -> None:
    from wav_ros.nodes.spin import run_nodes

    run_nodes([WorldModelNode], args=args, threads=1)


if __name__ == "__main__":
    main()
