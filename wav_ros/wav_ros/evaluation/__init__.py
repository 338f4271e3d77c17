"""Closed-loop evaluation of policies on the ALOHA simulation and on LIBERO. No rclpy."""

from wav_ros.evaluation.harness import (
    EpisodeResult,
    EvalConfig,
    EvalResults,
    TaskSummary,
    evaluate,
    run_episode,
    wilson_interval,
)
from wav_ros.evaluation.policies import HoldStillPolicy, Policy, ScriptedExpertPolicy

__all__ = [
    "EpisodeResult",
    "EvalConfig",
    "EvalResults",
    "HoldStillPolicy",
    "Policy",
    "ScriptedExpertPolicy",
    "TaskSummary",
    "evaluate",
    "run_episode",
    "wilson_interval",
]
