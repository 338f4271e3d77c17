"""Latent trajectory planning over the WAV model's noise spaces (no model or ROS imports)."""

from wav_ros.planning.planner import (
    LatentTrajectoryPlanner,
    PlannerConfig,
    PlanOutcome,
    signal_to_noise,
)

__all__ = ["LatentTrajectoryPlanner", "PlanOutcome", "PlannerConfig", "signal_to_noise"]
