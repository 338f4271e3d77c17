"""Facts about the bimanual ALOHA-style robot shared by the model, the simulation and the nodes.

One place for joint names, camera names and default joint limits, so that a trajectory built
by the planner, checked by the executor and applied by the simulation all agree on the order.
"""

from __future__ import annotations

from dataclasses import dataclass

ARM_SIDES: tuple[str, ...] = ("left", "right")
ARM_JOINTS: tuple[str, ...] = (
    "waist",
    "shoulder",
    "elbow",
    "forearm_roll",
    "wrist_angle",
    "wrist_rotate",
    "gripper",
)
#: The 14 joints of an action or state vector, in order: left arm then right arm.
JOINT_NAMES: tuple[str, ...] = tuple(
    f"{side}_{joint}" for side in ARM_SIDES for joint in ARM_JOINTS
)
ACTION_DIM: int = len(JOINT_NAMES)
#: The real ALOHA's camera names (topics /<name>/image_raw).
CAMERA_NAMES: tuple[str, ...] = ("cam_high", "cam_left_wrist", "cam_right_wrist")
#: Control rate of the arms and of the simulation.
CONTROL_HZ: float = 50.0


@dataclass(frozen=True)
class JointLimit:
    """Position and velocity limits of one joint, URDF-style (rad, rad/s).

    The gripper is normalised to [0, 1] (0 closed, 1 open), as in ALOHA's joint-space actions.
    """

    lower: float
    upper: float
    velocity: float


# Ranges of the Interbotix vx300s joints in ALOHA's MJCF; velocity limits are conservative.
_ARM_LIMITS: dict[str, JointLimit] = {
    "waist": JointLimit(-3.14158, 3.14158, 3.0),
    "shoulder": JointLimit(-1.85005, 1.25664, 3.0),
    "elbow": JointLimit(-1.76278, 1.6057, 3.0),
    "forearm_roll": JointLimit(-3.14158, 3.14158, 3.0),
    "wrist_angle": JointLimit(-1.8675, 2.23402, 3.0),
    "wrist_rotate": JointLimit(-3.14158, 3.14158, 3.0),
    "gripper": JointLimit(0.0, 1.0, 5.0),
}
DEFAULT_JOINT_LIMITS: dict[str, JointLimit] = {
    f"{side}_{joint}": _ARM_LIMITS[joint] for side in ARM_SIDES for joint in ARM_JOINTS
}
