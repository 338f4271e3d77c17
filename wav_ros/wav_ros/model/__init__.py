"""The World-Value-Action model (no rclpy): configuration, experts, inference API, checkpoints."""

from wav_ros.model.configuration_wav import (
    ActionExpertConfig,
    TextEncoderConfig,
    TokenizerConfig,
    ValueExpertConfig,
    VideoExpertConfig,
    WAVConfig,
)
from wav_ros.model.modeling_wav import (
    ObservationContext,
    PlanResult,
    ValueFeatures,
    ValueScores,
    VideoFeatures,
    WAVPolicy,
    resize_images,
)

__all__ = [
    "ActionExpertConfig",
    "ObservationContext",
    "PlanResult",
    "TextEncoderConfig",
    "TokenizerConfig",
    "ValueExpertConfig",
    "ValueFeatures",
    "ValueScores",
    "VideoExpertConfig",
    "VideoFeatures",
    "WAVConfig",
    "WAVPolicy",
    "resize_images",
]
