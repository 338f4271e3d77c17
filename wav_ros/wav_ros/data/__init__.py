"""LeRobot-format datasets (write, read, windows) and scripted demo recording. No rclpy."""

from wav_ros.data.lerobot_format import (
    Episode,
    LeRobotDataset,
    LeRobotDatasetWriter,
    Window,
    WriterConfig,
    discounted_value_labels,
)

__all__ = [
    "Episode",
    "LeRobotDataset",
    "LeRobotDatasetWriter",
    "Window",
    "WriterConfig",
    "discounted_value_labels",
]
