"""One fully populated example of every wav_interfaces type, for the round-trip tests.

Every field gets a non-default value, so a field dropped or corrupted on the way between
processes makes the received message differ from the sample.
"""

from __future__ import annotations

from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from wav_interfaces.action import ExecuteTrajectory
from wav_interfaces.msg import (
    ImaginedRollout,
    LatentTrajectoryFeatures,
    Observation,
    PlannerStatus,
    PlanOptions,
    TaskStatus,
    Tensor,
)
from wav_interfaces.srv import Imagine, Plan, Score
from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES


def header(frame_id: str = "base") -> Header:
    return Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id=frame_id)


def image(value: int, encoding: str = "rgb8") -> Image:
    height, width, channels = 4, 6, 3
    data = bytes((value + i) % 256 for i in range(height * width * channels))
    return Image(
        header=header("camera"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=data,
    )


def tensor(name: str = "video_hidden_states") -> Tensor:
    return Tensor(name=name, shape=[2, 3], data=[0.5, -1.25, 3.0, 4.5, 1e-3, -7.0])


def observation() -> Observation:
    return Observation(
        header=header(),
        camera_names=list(CAMERA_NAMES),
        images=[image(i) for i in range(len(CAMERA_NAMES))],
        joint_state=JointState(
            header=header(),
            name=list(JOINT_NAMES),
            position=[0.01 * i for i in range(len(JOINT_NAMES))],
            velocity=[-0.02 * i for i in range(len(JOINT_NAMES))],
            effort=[],
        ),
    )


def features() -> LatentTrajectoryFeatures:
    return LatentTrajectoryFeatures(
        header=header(), context_id="ctx-42", batch_size=2, tensors=[tensor(), tensor("memory")]
    )


def rollout() -> ImaginedRollout:
    return ImaginedRollout(
        header=header(),
        instruction="hand the red cube to the left arm",
        camera_names=list(CAMERA_NAMES),
        num_future_frames=2,
        frames=[image(i) for i in range(2 * len(CAMERA_NAMES))],
        values=[0.1, 0.2, 0.3],
        snr=1.5,
    )


def plan_options() -> PlanOptions:
    return PlanOptions(
        iterations=3,
        num_video_samples=30,
        num_value_samples=5,
        use_seed=True,
        seed=7,
        return_rollout=True,
        reset_warm_start=True,
        observation_not_before=Time(sec=1_700_000_001, nanosec=5),
    )


def planner_status() -> PlannerStatus:
    return PlannerStatus(
        header=header(),
        state=PlannerStatus.STATE_PLANNING,
        message="planning",
        model_loaded=True,
        checkpoint="/tmp/ckpt",
        last_instruction="insert the peg",
        last_predicted_value=0.75,
        last_planning_time=0.25,
        plans_completed=3,
        plans_refused=1,
    )


def task_status() -> TaskStatus:
    return TaskStatus(
        header=header(),
        task="transfer_cube",
        instruction="hand the red cube to the left arm",
        episode=2,
        step=150,
        max_steps=400,
        progress=0.5,
        success=True,
        done=True,
    )


def trajectory() -> JointTrajectory:
    points = [
        JointTrajectoryPoint(
            positions=[0.001 * (i + j) for j in range(len(JOINT_NAMES))],
            time_from_start=Duration(sec=0, nanosec=20_000_000 * (i + 1)),
        )
        for i in range(3)
    ]
    return JointTrajectory(header=header(), joint_names=list(JOINT_NAMES), points=points)


MESSAGES = {
    "tensor": tensor,
    "observation": observation,
    "features": features,
    "rollout": rollout,
    "plan_options": plan_options,
    "planner_status": planner_status,
    "task_status": task_status,
}
MESSAGE_TYPES = {
    "tensor": Tensor,
    "observation": Observation,
    "features": LatentTrajectoryFeatures,
    "rollout": ImaginedRollout,
    "plan_options": PlanOptions,
    "planner_status": PlannerStatus,
    "task_status": TaskStatus,
}


def plan_request() -> Plan.Request:
    return Plan.Request(instruction="hand the red cube to the left arm", options=plan_options())


def plan_response() -> Plan.Response:
    return Plan.Response(
        success=True,
        message="planned",
        trajectory=trajectory(),
        predicted_value=0.875,
        planning_time=0.3125,
        observation_stamp=header().stamp,
        best_rollout=rollout(),
        stat_names=["snr_mean_iter_0"],
        stat_values=[1.25],
    )


def imagine_request() -> Imagine.Request:
    return Imagine.Request(
        observation=observation(),
        instruction="insert the peg",
        video_noise=tensor("video_noise"),
        num_samples=2,
        use_seed=True,
        seed=3,
        decode_rollout=True,
    )


def imagine_response() -> Imagine.Response:
    return Imagine.Response(
        success=True, message="imagined", features=features(), rollout=rollout()
    )


def score_request() -> Score.Request:
    return Score.Request(features=features(), value_noise=tensor("value_noise"))


def score_response() -> Score.Response:
    return Score.Response(
        success=True,
        message="scored",
        values=tensor("values"),
        snr=tensor("snr"),
        value_features=features(),
    )


def execute_goal() -> ExecuteTrajectory.Goal:
    return ExecuteTrajectory.Goal(trajectory=trajectory(), blend=False)


def execute_feedback() -> ExecuteTrajectory.Feedback:
    return ExecuteTrajectory.Feedback(progress=0.5, tracking_error=0.01, waypoint_index=1)


def execute_result() -> ExecuteTrajectory.Result:
    return ExecuteTrajectory.Result(
        error_code=ExecuteTrajectory.Result.SUCCEEDED, message="done", max_tracking_error=0.02
    )
