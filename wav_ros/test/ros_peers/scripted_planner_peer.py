"""A SCRIPTED STAND-IN for latent_planner, for the end-to-end execution test only.

It serves /wav/plan by replaying the sim's scripted expert: it rolls the expert out once in its
own copy of the simulation (same task and episode seed as sim_bridge, so the same layout) and
answers each call with the chunk of those joint targets that follows where the arms are
commanded now (the recorded target nearest to the executor's latest setpoint on
/sim/joint_commands, searching forward; the measured state lags it). It stands in for
the model so the test exercises sim_bridge, camera_sync, action_executor and the task runner
for real and deterministically; the README's main command uses the real model.
"""

from __future__ import annotations

import argparse

import numpy as np
import rclpy
from peer_runtime import spin_until_shutdown  # this folder: peers run as scripts
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from wav_interfaces.srv import Plan
from wav_ros.nodes.conversions import actions_to_trajectory
from wav_ros.robot_description import CONTROL_HZ, JOINT_NAMES
from wav_ros.sim import make_env
from wav_ros.sim.experts import make_expert


def expert_actions(task: str, seed: int) -> np.ndarray:
    env = make_env(task, cameras=())
    env.reset(seed=seed)
    expert = make_expert(task)
    expert.reset(env)
    actions = []
    for _ in range(env.max_steps):
        action = expert.select_action()
        actions.append(action)
        if env.step(action, render=False).terminated:
            break
    env.close()
    return np.array(actions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="transfer_cube")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--search", type=int, default=24, help="steps searched ahead")
    arguments, ros_args = parser.parse_known_args()
    actions = expert_actions(arguments.task, arguments.seed)
    rclpy.init(args=ros_args)
    node = Node("scripted_planner")
    cursor = [0]
    state: list[np.ndarray] = []  # the latest setpoint
    arm_joints = [index for index, name in enumerate(JOINT_NAMES) if "gripper" not in name]

    def on_joint_state(message: JointState) -> None:
        positions = dict(zip(message.name, message.position, strict=True))
        state[:] = [np.array([positions[name] for name in JOINT_NAMES])]

    node.create_subscription(JointState, "/sim/joint_commands", on_joint_state, 10)

    def serve(request: Plan.Request, response: Plan.Response) -> Plan.Response:
        if state:
            window = actions[cursor[0] : cursor[0] + arguments.search, arm_joints]
            distance = np.abs(window - state[0][arm_joints]).max(axis=1)
            cursor[0] += int(np.argmin(distance))
        chunk = actions[cursor[0] + 1 : cursor[0] + 1 + arguments.chunk]
        if len(chunk) == 0:
            chunk = actions[-1:]
        header = Header(stamp=node.get_clock().now().to_msg(), frame_id="world")
        response.trajectory = actions_to_trajectory(
            chunk, JOINT_NAMES, header=header, dt=1.0 / CONTROL_HZ
        )
        response.success, response.message = True, "scripted stand-in"
        response.predicted_value = 1.0
        return response

    node.create_service(Plan, "/wav/plan", serve)
    spin_until_shutdown(node, f"scripted_planner ready ({len(actions)} expert steps)")


if __name__ == "__main__":
    main()
