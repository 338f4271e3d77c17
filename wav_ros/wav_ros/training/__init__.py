"""Training of WAV's stages and the baselines on LeRobot datasets, with accelerate. No rclpy."""

from wav_ros.training.config import WAV_STAGES, TrainConfig
from wav_ros.training.data import DataConfig, WindowStore

__all__ = ["WAV_STAGES", "DataConfig", "TrainConfig", "Trainer", "WindowStore"]


def __getattr__(name: str):  # the trainer imports accelerate: load it only when asked for
    if name == "Trainer":
        from wav_ros.training.trainer import Trainer

        return Trainer
    raise AttributeError(name)
