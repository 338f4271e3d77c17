"""The shipped tiny checkpoint: small, loads like the embedded default does, and its plans on
simulated observations pass the executor's safety gate (start deviation, limits, velocity).

Grippers: the demonstrations command 0 (closed) or 1 (open) while the measured gripper reads
about 0.1 when closed, so even the scripted expert's chunks start ~0.1 from the measured gripper
and a flow-matching sample lands slightly outside [0, 1]. The gate is therefore run as on the
robot with grippers force-limited (their measured position may stay away from the command) and
gripper targets clipped to [0, 1] first, as any caller commanding grippers must."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

from pathlib import Path

import numpy as np
import pytest

import wav_ros
from wav_ros.execution.limits import SafetyLimits
from wav_ros.execution.safety import validate_trajectory
from wav_ros.execution.trajectory import JointTrajectoryData
from wav_ros.model import WAVPolicy, resize_images
from wav_ros.planning import PlannerConfig
from wav_ros.robot_description import CONTROL_HZ, JOINT_NAMES
from wav_ros.sim import make_env

GRIPPERS = [JOINT_NAMES.index("left_gripper"), JOINT_NAMES.index("right_gripper")]
SHIPPED = Path(wav_ros.__file__).resolve().parent / "checkpoints" / "wav_tiny"


def test_shipped_checkpoint_is_small_safetensors():
    files = sorted(p.name for p in SHIPPED.iterdir())
    assert files == ["config.json", "model.safetensors"]
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) <= 25 * 2**20


@pytest.mark.parametrize(
    ("task", "planner"),
    [
        ("transfer_cube", PlannerConfig(iterations=0)),
        ("insertion", PlannerConfig(iterations=1, num_video_samples=4, num_value_samples=2)),
    ],
)
def test_shipped_plans_pass_the_safety_gate(task, planner):
    policy = WAVPolicy.from_pretrained(SHIPPED)
    stats = policy.normalizer.get_stats()
    assert stats["latent"]["std"] != [1.0] * 4  # trained: data statistics, not the defaults
    env = make_env(task, image_size=(128, 128))  # what the ROS camera topics carry
    try:
        for seed in (0, 1, 2, 3):
            obs = env.reset(seed=seed)
            images = resize_images(obs.images, policy.config.tokenizer.image_size)
            result = policy.plan(
                images, obs.qpos, env.instruction, planner_config=planner, seed=seed
            )
            actions = result.actions
            assert actions.shape == (policy.config.chunk_size, 14)
            actions[:, GRIPPERS] = np.clip(actions[:, GRIPPERS], 0.0, 1.0)
            times = np.arange(1, len(actions) + 1) / CONTROL_HZ
            trajectory = JointTrajectoryData(JOINT_NAMES, times, actions, stamp=10.0)
            limits = SafetyLimits(force_limited_joints=tuple(JOINT_NAMES[g] for g in GRIPPERS))
            refusals = validate_trajectory(trajectory, obs.qpos, 10.0, limits)
            assert refusals == [], [str(r) for r in refusals]
    finally:
        env.close()
