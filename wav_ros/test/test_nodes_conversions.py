"""Message ↔ array conversions: lossless where they should be, refusing what is malformed."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.ros  # needs the message packages, not a running graph


def test_tensor_round_trip_is_exact_and_keeps_the_shape():
    from wav_ros.nodes.conversions import array_to_tensor, tensor_to_array

    array = np.random.default_rng(0).normal(size=(3, 2, 5)).astype(np.float32)
    message = array_to_tensor("video_noise", array)
    assert list(message.shape) == [3, 2, 5]
    np.testing.assert_array_equal(tensor_to_array(message, name="video_noise"), array)


@pytest.mark.parametrize(
    ("shape", "data", "fragment"),
    [([2, 3], [0.0] * 5, "needs 6 values"), ([2], [0.0, math.nan], "NaN")],
)
def test_malformed_tensors_are_refused(shape, data, fragment):
    from wav_interfaces.msg import Tensor
    from wav_ros.nodes.conversions import tensor_to_array

    with pytest.raises(ValueError, match=fragment):
        tensor_to_array(Tensor(name="x", shape=shape, data=data))


def test_a_tensor_with_the_wrong_name_is_refused():
    from wav_ros.nodes.conversions import array_to_tensor, tensor_to_array

    with pytest.raises(ValueError, match="expected tensor 'values'"):
        tensor_to_array(array_to_tensor("snr", np.zeros(2)), name="values")


def test_features_must_share_their_batch():
    from std_msgs.msg import Header

    from wav_ros.nodes.conversions import arrays_to_features, features_to_arrays

    header = Header(frame_id="world")
    good = {"hidden_states": np.ones((4, 2, 3), np.float32), "extra": np.zeros((4, 1), np.float32)}
    arrays = features_to_arrays(arrays_to_features(header, "ctx", good))
    assert set(arrays) == set(good) and arrays["hidden_states"].shape == (4, 2, 3)
    with pytest.raises(ValueError, match="batch size"):
        arrays_to_features(header, "ctx", {"a": np.zeros((4, 1)), "b": np.zeros((3, 1))})
    message = arrays_to_features(header, "ctx", good)
    message.batch_size = 5
    with pytest.raises(ValueError, match="leading batch of 5"):
        features_to_arrays(message)


def test_actions_become_a_time_stamped_trajectory_and_back():
    from std_msgs.msg import Header

    from wav_ros.nodes.conversions import actions_to_trajectory, trajectory_to_arrays
    from wav_ros.robot_description import JOINT_NAMES

    actions = np.linspace(0, 1, 16 * 14).reshape(16, 14)
    trajectory = actions_to_trajectory(actions, JOINT_NAMES, header=Header(), dt=0.02)
    times, positions = trajectory_to_arrays(trajectory)
    np.testing.assert_allclose(times, 0.02 * np.arange(1, 17))
    np.testing.assert_array_equal(positions, actions)
    with pytest.raises(ValueError, match="NaN"):
        actions_to_trajectory(np.full((2, 14), np.nan), JOINT_NAMES, header=Header(), dt=0.02)
    with pytest.raises(ValueError, match="shape"):
        actions_to_trajectory(np.zeros((2, 13)), JOINT_NAMES, header=Header(), dt=0.02)
    slowed = actions_to_trajectory(
        actions, JOINT_NAMES, header=Header(), dt=0.02, times_from_start=0.03 * np.arange(1, 17)
    )
    np.testing.assert_allclose(trajectory_to_arrays(slowed)[0], 0.03 * np.arange(1, 17))
    for times in (0.03 * np.arange(16), np.ones(16), 0.03 * np.arange(1, 16)):
        with pytest.raises(ValueError, match="increasing times"):
            actions_to_trajectory(
                actions, JOINT_NAMES, header=Header(), dt=0.02, times_from_start=times
            )
    trajectory.points[1].positions = [0.0] * 13
    with pytest.raises(ValueError, match="one position per joint"):
        trajectory_to_arrays(trajectory)


def test_observation_arrays_follow_the_model_order_and_refuse_gaps():
    from sensor_msgs.msg import JointState

    from wav_interfaces.msg import Observation
    from wav_ros.nodes.conversions import observation_to_arrays
    from wav_ros.nodes.image_codec import array_to_image
    from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES

    rng = np.random.default_rng(1)
    images = {name: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for name in CAMERA_NAMES}
    message = Observation(camera_names=list(reversed(CAMERA_NAMES)))
    message.images = [array_to_image(images[name]) for name in reversed(CAMERA_NAMES)]
    message.joint_state = JointState(name=list(reversed(JOINT_NAMES)))
    message.joint_state.position = [float(i) for i in range(len(JOINT_NAMES))]
    arrays, state = observation_to_arrays(message, CAMERA_NAMES, JOINT_NAMES)
    for name in CAMERA_NAMES:
        np.testing.assert_array_equal(arrays[name], images[name])
    np.testing.assert_array_equal(state, np.arange(len(JOINT_NAMES))[::-1])
    with pytest.raises(ValueError, match="cam_wrist_3"):
        observation_to_arrays(message, [*CAMERA_NAMES, "cam_wrist_3"], JOINT_NAMES)
    message.joint_state.name[0] = "left_hip"
    with pytest.raises(ValueError, match="lacks joint"):
        observation_to_arrays(message, CAMERA_NAMES, JOINT_NAMES)
    message.images[0].encoding = "16UC1"
    with pytest.raises(ValueError, match="16UC1"):
        observation_to_arrays(message, CAMERA_NAMES, JOINT_NAMES)
