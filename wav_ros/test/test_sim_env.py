"""The bimanual simulation: observations, action checks, seeding, and gym-aloha's own rewards."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np
import pytest

from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES
from wav_ros.sim import TASKS, make_env
from wav_ros.sim.experts import make_expert
from wav_ros.sim.scene import gym_aloha_assets_dir


@pytest.fixture(scope="module")
def cube_env():
    env = make_env("transfer_cube", image_size=(64, 48))
    yield env
    env.close()


def test_observation_has_three_cameras_at_the_requested_size(cube_env):
    obs = cube_env.reset(seed=3)
    assert list(obs.images) == list(CAMERA_NAMES)
    for image in obs.images.values():
        assert image.shape == (64, 48, 3) and image.dtype == np.uint8
        assert image.std() > 5.0  # a rendered scene, not a blank buffer
    assert not np.array_equal(obs.images["cam_high"], obs.images["cam_left_wrist"])
    assert not np.array_equal(obs.images["cam_left_wrist"], obs.images["cam_right_wrist"])
    assert obs.qpos.shape == (len(JOINT_NAMES),) and obs.qpos.dtype == np.float32
    assert obs.qvel.shape == (14,)
    assert 0.0 <= obs.qpos[6] <= 1.0 and 0.0 <= obs.qpos[13] <= 1.0


def test_step_advances_time_and_skips_rendering_on_request(cube_env):
    obs = cube_env.reset(seed=0)
    result = cube_env.step(obs.qpos, render=False)
    assert result.observation.images == {}
    assert result.observation.time == pytest.approx(0.02)
    assert set(result.info) >= {"success", "progress", "stage_reward"}


def test_settling_lets_gravity_act_at_rest_without_spending_episode_steps(cube_env):
    reset = cube_env.reset(seed=2)
    settled = cube_env.settle(50)
    assert cube_env.step_count == 0 and settled.time == pytest.approx(1.0)
    sag = np.abs(settled.qpos - reset.qpos).max()
    assert 1e-4 < sag < 0.02  # the arms hold their pose, and gravity pulls them a little
    later = cube_env.settle(50)
    assert np.abs(later.qpos - settled.qpos).max() < sag / 10  # at rest
    with pytest.raises(ValueError, match="steps"):
        cube_env.settle(-1)


def test_a_copy_of_the_state_renders_as_the_state_did_when_copied(cube_env):
    """What lets sim_bridge render on a thread of its own while the physics steps on."""
    import copy

    obs = cube_env.reset(seed=0, render=False)
    assert obs.images == {}
    target = obs.qpos.copy()
    target[1] -= 0.3  # a shoulder swing, so that the scene visibly changes
    cube_env.step(target, render=False)
    snapshot = copy.copy(cube_env.data)
    then = cube_env.render()
    for _ in range(10):
        cube_env.step(target, render=False)
    now = cube_env.render()
    from_copy = cube_env.render(data=snapshot)
    assert not np.array_equal(now["cam_high"], then["cam_high"])  # the arms moved on
    for camera in CAMERA_NAMES:
        np.testing.assert_array_equal(from_copy[camera], then[camera])


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(13), "shape"),
        (np.full(14, np.nan), "non-finite"),
        (np.r_[np.zeros(6), 1.5, np.zeros(7)], "left_gripper"),
        (np.r_[np.zeros(8), 2.0, np.zeros(5)], "right_shoulder"),
    ],
)
def test_bad_actions_raise_and_leave_the_state_alone(cube_env, action, message):
    cube_env.reset(seed=0)
    before = cube_env.data.qpos.copy()
    with pytest.raises(ValueError, match=message):
        cube_env.step(action)
    np.testing.assert_array_equal(cube_env.data.qpos, before)


def test_string_actions_are_a_type_error(cube_env):
    cube_env.reset(seed=0)
    with pytest.raises(TypeError):
        cube_env.step(np.array(["a"] * 14))


def test_step_before_reset_is_an_error():
    env = make_env("insertion", cameras=())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(14))


def test_unknown_task_camera_and_instruction_are_rejected(cube_env):
    with pytest.raises(ValueError, match="unknown task"):
        make_env("fold_towel")
    with pytest.raises(ValueError, match="unknown cameras"):
        make_env("transfer_cube", cameras=("cam_low",))
    with pytest.raises(ValueError, match="instruction"):
        cube_env.reset(seed=0, instruction="make coffee")


def test_same_seed_same_layout_and_gym_aloha_sampler():
    from numpy.random import RandomState

    env = make_env("transfer_cube", cameras=())
    env.reset(seed=11)
    first = env.object_positions()["red_box_joint"]
    env.reset(seed=12)
    env.reset(seed=11)
    np.testing.assert_array_equal(env.object_positions()["red_box_joint"], first)
    # gym-aloha's sample_box_pose(seed): uniform([0, .4, .05], [.2, .6, .05]) from RandomState(seed)
    expected = RandomState(11).uniform([0.0, 0.4, 0.05], [0.2, 0.6, 0.05])
    np.testing.assert_allclose(first[:3], expected)


def test_a_layout_margin_widens_the_box_and_zero_keeps_gym_alohas():
    from numpy.random import RandomState

    boxes = {"red_peg_joint": (0.1, 0.2), "blue_socket_joint": (-0.2, -0.1)}
    plain = make_env("insertion", cameras=())
    wide = make_env("insertion", cameras=(), layout_margin=0.03)
    outside = 0
    for seed in range(40):
        plain.reset(seed=seed)
        wide.reset(seed=seed)
        # gym-aloha's sample_insertion_pose: peg, then socket, from one RandomState(seed)
        rng_plain, rng_wide = RandomState(seed), RandomState(seed)
        for joint, (x_low, x_high) in boxes.items():
            expected = rng_plain.uniform([x_low, 0.4, 0.05], [x_high, 0.6, 0.05])
            np.testing.assert_allclose(plain.object_positions()[joint][:3], expected)
            expected = rng_wide.uniform([x_low - 0.03, 0.37, 0.05], [x_high + 0.03, 0.63, 0.05])
            position = wide.object_positions()[joint]
            np.testing.assert_allclose(position[:3], expected)
            outside += not (x_low <= position[0] <= x_high and 0.4 <= position[1] <= 0.6)
    assert outside >= 20  # 1 - (0.1 * 0.2) / (0.16 * 0.26) of 80 objects: about 42 expected
    for margin in (-0.01, 0.2):
        with pytest.raises(ValueError, match="layout_margin"):
            make_env("transfer_cube", cameras=(), layout_margin=margin)


def test_language_tasks_take_their_goal_from_the_instruction():
    env = make_env("bin_sequence", cameras=())
    for instruction in TASKS["bin_sequence"].instructions[:3]:
        env.reset(seed=0, instruction=instruction)
        first, second = env.task.order
        assert instruction.index(first) < instruction.index(second)
    assert len(TASKS["color_handover"].instructions) >= 3
    env = make_env("color_handover", cameras=())
    env.reset(seed=0, instruction="hand the green cube to the left arm and put it in the bin")
    assert env.task.target == "green"


@pytest.mark.parametrize("task", ["transfer_cube", "insertion"])
def test_stage_reward_equals_gym_alohas_on_an_expert_episode(task):
    """Our reward reimplementation against gym-aloha's own task class on the same states."""
    pytest.importorskip("gymnasium")  # gym_aloha's __init__ imports it
    from dm_control import mujoco as dm_mujoco
    from gym_aloha.tasks import sim as aloha_sim

    aloha_task = {
        "transfer_cube": aloha_sim.TransferCubeTask,
        "insertion": aloha_sim.InsertionTask,
    }[task]()
    env = make_env(task, cameras=(), terminate_on_success=False)
    xml = {
        "transfer_cube": "bimanual_viperx_transfer_cube.xml",
        "insertion": "bimanual_viperx_insertion.xml",
    }
    physics = dm_mujoco.Physics.from_xml_path(str(gym_aloha_assets_dir() / xml[task]))
    expert = make_expert(task)
    obs = env.reset(seed=4)
    expert.reset(env)
    seen = set()
    for _ in range(env.max_steps):
        result = env.step(expert.select_action(obs), render=False)
        obs = result.observation
        physics.data.qpos[:] = env.data.qpos
        physics.data.qvel[:] = env.data.qvel
        physics.forward()
        theirs = aloha_task.get_reward(physics)
        assert result.info["stage_reward"] == theirs
        assert result.info["success"] == (theirs == 4)
        seen.add(theirs)
    assert 4 in seen and 0 in seen  # the comparison covered failure and success states
