"""Build the MuJoCo models of the bimanual ALOHA scene from the assets shipped in `gym-aloha`.

The stock assets render three 640×480 cameras with a 4096² shadow map; here shadows are switched
off and wrist cameras like the real ALOHA's are added, so rendering at 128 px on a CPU is cheap.
The physics (bodies, geoms, joints, actuators, contacts) of TransferCube and Insertion is left
exactly as gym-aloha ships it. The coloured-cube scene adds two cubes and a bin to the
TransferCube model. A "mocap twin" of each scene replaces the arm actuators by mocap welds: the
scripted experts plan end-effector waypoints in it and replay the resulting joints.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from wav_ros.robot_description import ARM_JOINTS, ARM_SIDES

#: The six revolute joints of each arm (robot_description's joints less the gripper).
ARM_REVOLUTE_JOINTS: tuple[str, ...] = tuple(j for j in ARM_JOINTS if j != "gripper")


def mjcf_joint(side: str, joint: str) -> str:
    """The MJCF joint of one of robot_description's joints (the gripper is its left finger)."""
    return f"vx300s_{side}/{'left_finger' if joint == 'gripper' else joint}"


#: Cube half size (m), as gym-aloha's red box.
CUBE_HALF_SIZE = 0.02
#: Bin of the coloured-cube scene: centre on the table (m), inner half width (m), wall height (m).
BIN_CENTER: tuple[float, float] = (0.0, 0.64)
BIN_INNER_HALF = 0.065
BIN_WALL_HEIGHT = 0.04
CUBE_COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (1.0, 0.0, 0.0, 1.0),
    "green": (0.0, 0.8, 0.0, 1.0),
    "blue": (0.0, 0.2, 1.0, 1.0),
}
#: Weld impedance of the mocap twin: gym-aloha's [.25 .25 .001] is too soft under MuJoCo 3.x.
MOCAP_WELD_SOLIMP: tuple[float, float, float] = (0.9, 0.95, 0.001)


#: Gripper link relative to its mocap body (position, quaternion): the mocap point sits 13.5 cm
#: ahead of the link, between the fingertips.
MOCAP_WELD_RELPOSE: dict[str, tuple[float, ...]] = {
    "left": (-0.134706, 0.0, 0.00205, 1.0, 0.0, 0.0, 0.0),
    "right": (0.134706, 0.0, 0.00205, 0.0, 0.0, 0.0, 1.0),
}


def gym_aloha_assets_dir() -> Path:
    """Folder of the ALOHA MJCF and meshes inside the installed gym-aloha package.

    Found without importing gym_aloha (its __init__ needs gymnasium, which the sim does not).
    """
    spec = importlib.util.find_spec("gym_aloha")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("gym-aloha is not installed: pip install --no-deps gym-aloha==0.1.5")
    assets = Path(next(iter(spec.submodule_search_locations))) / "assets"
    if not (assets / "bimanual_viperx_transfer_cube.xml").is_file():
        raise FileNotFoundError(f"gym-aloha assets missing under {assets}")
    return assets


@dataclass(frozen=True)
class SceneLayout:
    """Which gym-aloha model a scene starts from and what it adds."""

    base_xml: str
    """File name of the gym-aloha joint-space model."""
    extra_cubes: tuple[str, ...] = ()
    """Colours of cubes added beside gym-aloha's red box (keys of CUBE_COLORS)."""
    with_bin: bool = False
    """Add an open bin on the table at BIN_CENTER."""


SCENES: dict[str, SceneLayout] = {
    "transfer_cube": SceneLayout("bimanual_viperx_transfer_cube.xml"),
    "insertion": SceneLayout("bimanual_viperx_insertion.xml"),
    "cubes_bin": SceneLayout(
        "bimanual_viperx_transfer_cube.xml", extra_cubes=("green", "blue"), with_bin=True
    ),
}


def _look_at_quat(position: np.ndarray, target: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Quaternion of a MuJoCo camera at `position` looking at `target` (camera looks along -z)."""
    back = position - target
    z_axis = back / np.linalg.norm(back)
    x_axis = right - right.dot(z_axis) * z_axis
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.stack([x_axis, y_axis, z_axis], axis=1).flatten())
    return quat


def _add_cameras(spec: mujoco.MjSpec) -> None:
    """cam_high: gym-aloha's top view; wrist cameras above each gripper looking at the fingers."""
    top = spec.camera("top")
    spec.worldbody.add_camera(
        name="cam_high",
        pos=top.pos,
        fovy=top.fovy,
        mode=mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY,
        targetbody="table",
    )
    # Gripper-link frame: x along the fingers, z up when the wrist is level, y across the jaws.
    position = np.array([-0.02, 0.0, 0.075])
    quat = _look_at_quat(position, np.array([0.16, 0.0, 0.0]), right=np.array([0.0, -1.0, 0.0]))
    for side in ARM_SIDES:
        gripper = spec.body(f"vx300s_{side}/gripper_link")
        gripper.add_camera(name=f"cam_{side}_wrist", pos=position, quat=quat, fovy=75.0)


def _add_cube(spec: mujoco.MjSpec, color: str, position: tuple[float, float, float]) -> None:
    """A cube with the same mass, friction and contact settings as gym-aloha's red box."""
    body = spec.worldbody.add_body(name=f"{color}_cube", pos=position)
    joint = body.add_freejoint(name=f"{color}_box_joint")
    joint.frictionloss = 0.01
    body.mass = 0.05
    body.ipos = [0.0, 0.0, 0.0]
    body.iquat = [1.0, 0.0, 0.0, 0.0]
    body.inertia = [0.002, 0.002, 0.002]
    body.explicitinertial = True
    red = spec.geom("red_box")
    body.add_geom(
        name=f"{color}_box",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[CUBE_HALF_SIZE] * 3,
        rgba=CUBE_COLORS[color],
        condim=red.condim,
        solimp=red.solimp,
        solref=red.solref,
        friction=red.friction,
    )


def _add_bin(spec: mujoco.MjSpec) -> None:
    """A static open box: a floor and four walls, each a geom named bin_*."""
    body = spec.worldbody.add_body(name="bin", pos=[*BIN_CENTER, 0.0])
    wall = 0.004
    outer = BIN_INNER_HALF + wall
    rgba = [0.55, 0.4, 0.25, 1.0]
    body.add_geom(
        name="bin_floor",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[outer, outer, wall / 2],
        pos=[0, 0, wall / 2],
        rgba=rgba,
    )
    half_h = BIN_WALL_HEIGHT / 2
    for name, pos, size in (
        ("bin_wall_px", [outer - wall / 2, 0, half_h], [wall / 2, outer, half_h]),
        ("bin_wall_nx", [-outer + wall / 2, 0, half_h], [wall / 2, outer, half_h]),
        ("bin_wall_py", [0, outer - wall / 2, half_h], [outer, wall / 2, half_h]),
        ("bin_wall_ny", [0, -outer + wall / 2, half_h], [outer, wall / 2, half_h]),
    ):
        body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=size, pos=pos, rgba=rgba)


def _make_mocap_twin(spec: mujoco.MjSpec) -> None:
    """Replace the 12 arm actuators by mocap bodies welded to the gripper links.

    The weld keeps the offset of the reference pose, which puts the mocap point 13.5 cm ahead of
    the gripper link, between the fingertips (the tool centre point ACT's waypoints address),
    with a stiff impedance so the grippers do not lag behind the mocap bodies.
    """
    arm_actuators = [
        a for a in spec.actuators if any(a.target.endswith(f"/{j}") for j in ARM_REVOLUTE_JOINTS)
    ]
    for actuator in arm_actuators:
        spec.delete(actuator)
    for side in ARM_SIDES:
        spec.worldbody.add_body(name=f"mocap_{side}", mocap=True)
        spec.add_equality(
            type=mujoco.mjtEq.mjEQ_WELD,
            objtype=mujoco.mjtObj.mjOBJ_BODY,
            name1=f"mocap_{side}",
            name2=f"vx300s_{side}/gripper_link",
            solref=[0.01, 1.0],
            solimp=[*MOCAP_WELD_SOLIMP, 0.5, 2.0],
        )


def build_model(
    scene: str, *, mocap_twin: bool = False, max_image_size: int = 640
) -> mujoco.MjModel:
    """Compile the named scene with shadows off, ALOHA cameras and an offscreen buffer that fits."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; known: {sorted(SCENES)}")
    layout = SCENES[scene]
    spec = mujoco.MjSpec.from_file(str(gym_aloha_assets_dir() / layout.base_xml))
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    for light in spec.lights:
        light.castshadow = False
    spec.visual.global_.offwidth = max(640, max_image_size)
    spec.visual.global_.offheight = max(480, max_image_size)
    _add_cameras(spec)
    for i, color in enumerate(layout.extra_cubes):
        _add_cube(spec, color, (-0.2 + 0.1 * i, 0.3, CUBE_HALF_SIZE))
    if layout.with_bin:
        _add_bin(spec)
    if layout.extra_cubes:
        # The keyframe of the base file does not cover the added free joints.
        for key in list(spec.keys):
            spec.delete(key)
    if mocap_twin:
        _make_mocap_twin(spec)
    model = spec.compile()
    if mocap_twin:
        # Anchor, relative position, relative quaternion, torque scale: the relpose that MuJoCo
        # computes for gym-aloha's own end-effector models from their reference pose.
        for eq, side in enumerate(ARM_SIDES):
            model.eq_data[eq, :11] = [0, 0, 0, *MOCAP_WELD_RELPOSE[side], 1.0]
    return model
