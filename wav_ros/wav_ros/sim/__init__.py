"""Bimanual ALOHA simulation on MuJoCo (gym-aloha assets), tasks and scripted experts. No rclpy."""

from wav_ros.sim.env import (
    BimanualEnv,
    Observation,
    SimConfig,
    StepResult,
    make_env,
)
from wav_ros.sim.tasks import TASKS, TaskSpec

__all__ = ["TASKS", "BimanualEnv", "Observation", "SimConfig", "StepResult", "TaskSpec", "make_env"]
