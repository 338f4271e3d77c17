"""Baselines trained on the same data and loop as WAV. No rclpy."""

from wav_ros.baselines.direct_policy import DirectActionPolicy, DirectPolicyConfig

__all__ = ["DirectActionPolicy", "DirectPolicyConfig"]
