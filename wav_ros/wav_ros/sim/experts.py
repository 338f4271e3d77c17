"""Scripted experts: ACT-style end-effector waypoints, solved in a mocap twin, replayed as joints.

For each episode the expert reads the object poses (privileged state) from the env, builds
gripper waypoints for both arms, and runs them once in a "mocap twin" of the scene (the same
model with the arm actuators replaced by stiff mocap welds). The twin's joint trajectory becomes
the 14-D absolute joint targets the expert replays, as ACT recorded its scripted demos.

Noise and perturbations make realistic failures so that value labels see both outcomes:
smoothed joint noise (tracking error), a wrong belief of where objects are (missed grasps), and
grippers that open too early while carrying (drops).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import mujoco
import numpy as np

from wav_ros.robot_description import ACTION_DIM, ARM_SIDES
from wav_ros.sim.env import (
    ACTION_LOWER,
    ACTION_UPPER,
    BimanualEnv,
    Observation,
    unnormalize_gripper,
)
from wav_ros.sim.scene import ARM_REVOLUTE_JOINTS, BIN_CENTER, build_model, mjcf_joint
from wav_ros.sim.tasks import (
    ALOHA_SPAWN_HEIGHT,
    START_ARM_QPOS,
    TASKS,
    BinSequenceTask,
    ColorHandoverTask,
)

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def axis_angle_quat(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, np.asarray(axis, dtype=np.float64), np.deg2rad(degrees))
    return quat


#: Grasp orientations: pitched 60° down towards the table (ACT's pick quaternions).
PICK_QUAT = {"right": axis_angle_quat((0, 1, 0), -60), "left": axis_angle_quat((0, 1, 0), 60)}
#: The left gripper rolled 90° to take a cube from the right gripper (ACT's meet_left_quat).
MEET_LEFT_QUAT = axis_angle_quat((1, 0, 0), 90)
MEET_XYZ = np.array([0.0, 0.5, 0.25])


@dataclass(frozen=True)
class Waypoint:
    """Gripper-link pose and normalised gripper opening at control step t."""

    t: int
    xyz: np.ndarray
    quat: np.ndarray
    gripper: float


@dataclass
class Plan:
    """Waypoints of both arms, and the intervals in which an arm carries an object."""

    waypoints: dict[str, list[Waypoint]]
    carries: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return max(w[-1].t for w in self.waypoints.values())


def interpolate(waypoints: list[Waypoint], t: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Linear interpolation between the waypoints around t (held after the last one)."""
    if t >= waypoints[-1].t:
        last = waypoints[-1]
        return last.xyz, last.quat, last.gripper
    for start, end in itertools.pairwise(waypoints):
        if start.t <= t < end.t:
            frac = (t - start.t) / (end.t - start.t)
            quat = start.quat + frac * (end.quat - start.quat)
            return (
                start.xyz + frac * (end.xyz - start.xyz),
                quat / np.linalg.norm(quat),
                start.gripper + frac * (end.gripper - start.gripper),
            )
    raise ValueError(f"t={t} is before the first waypoint")


def _v(x: float, y: float, z: float) -> np.ndarray:
    """An offset vector (m)."""
    return np.array([x, y, z], dtype=np.float64)


def _wp(t: int, xyz: np.ndarray, quat: np.ndarray, gripper: float) -> Waypoint:
    return Waypoint(
        t, np.asarray(xyz, dtype=np.float64), np.asarray(quat, dtype=np.float64), gripper
    )


#: Tool-centre-point pose (xyz, quat) of each gripper at the start arm pose; set from the twin.
Home = dict[str, tuple[np.ndarray, np.ndarray]]


def _home(home: Home, t: int, side: str, gripper: float = 0.0) -> Waypoint:
    return _wp(t, home[side][0], home[side][1], gripper)


#: Arm base positions (x, y) in the world, for turning grasps towards the object.
ARM_BASE_XY = {"left": np.array([-0.469, 0.5]), "right": np.array([0.469, 0.5])}


def facing(side: str, target: np.ndarray, quat: np.ndarray, fraction: float = 1.0) -> np.ndarray:
    """`quat` turned about the vertical so the gripper points (`fraction` of the way) from its
    arm's base to target: far off the arm's axis, an unturned pitched grasp is out of reach."""
    dx, dy = target[:2] - ARM_BASE_XY[side]
    yaw = fraction * np.angle(
        np.exp(1j * (np.arctan2(dy, dx) - (np.pi if side == "right" else 0.0)))
    )
    turned = np.zeros(4)
    mujoco.mju_mulQuat(turned, axis_angle_quat((0, 0, 1), np.rad2deg(yaw)), quat)
    return turned


def plan_transfer_cube(home: Home, cube: np.ndarray) -> Plan:
    """ACT's PickAndTransferPolicy, with the grasp turned towards the cube."""
    pick = facing("right", cube, PICK_QUAT["right"])
    left = [
        _home(home, 0, "left"),
        _wp(100, MEET_XYZ + _v(-0.1, 0, -0.02), MEET_LEFT_QUAT, 1),
        _wp(260, MEET_XYZ + _v(0.02, 0, -0.02), MEET_LEFT_QUAT, 1),
        _wp(310, MEET_XYZ + _v(0.02, 0, -0.02), MEET_LEFT_QUAT, 0),
        _wp(360, MEET_XYZ + _v(-0.1, 0, -0.02), IDENTITY, 0),
        _wp(400, MEET_XYZ + _v(-0.1, 0, -0.02), IDENTITY, 0),
    ]
    right = [
        _home(home, 0, "right"),
        _wp(90, cube + _v(0, 0, 0.08), pick, 1),
        _wp(130, cube + _v(0, 0, -0.015), pick, 1),
        _wp(170, cube + _v(0, 0, -0.015), pick, 0),
        _wp(200, MEET_XYZ + _v(0.05, 0, 0), pick, 0),
        _wp(220, MEET_XYZ, pick, 0),
        _wp(310, MEET_XYZ, pick, 1),
        _wp(360, MEET_XYZ + _v(0.1, 0, 0), pick, 1),
        _wp(400, MEET_XYZ + _v(0.1, 0, 0), pick, 1),
    ]
    return Plan({"left": left, "right": right}, carries=[("right", 175, 300), ("left", 330, 400)])


#: How far the insertion grasps turn towards peg and socket (the rest the jaws absorb).
INSERTION_YAW_FRACTION = 1.0


def plan_insertion(home: Home, peg: np.ndarray, socket: np.ndarray) -> Plan:
    """ACT's InsertionPolicy; the peg grasp is turned towards the peg and kept to the end, so
    the peg stays parallel to the socket."""
    meet = np.array([0.0, 0.5, 0.15])
    lift_right = 0.00715
    ql = PICK_QUAT["left"]
    grasp_left = facing("left", socket, ql, INSERTION_YAW_FRACTION)
    grasp_right = facing("right", peg, PICK_QUAT["right"], INSERTION_YAW_FRACTION)
    left = [
        _home(home, 0, "left"),
        _wp(120, socket + _v(0, 0, 0.08), grasp_left, 1),
        _wp(170, socket + _v(0, 0, -0.03), grasp_left, 1),
        _wp(220, socket + _v(0, 0, -0.03), grasp_left, 0),
        _wp(285, meet + _v(-0.1, 0, 0), ql, 0),
        _wp(340, meet + _v(-0.05, 0, 0), ql, 0),
        _wp(400, meet + _v(-0.05, 0, 0), ql, 0),
    ]
    right = [
        _home(home, 0, "right"),
        _wp(120, peg + _v(0, 0, 0.08), grasp_right, 1),
        _wp(170, peg + _v(0, 0, -0.03), grasp_right, 1),
        _wp(220, peg + _v(0, 0, -0.03), grasp_right, 0),
        _wp(285, meet + _v(0.1, 0, lift_right), PICK_QUAT["right"], 0),
        _wp(340, meet + _v(0.05, 0, lift_right), PICK_QUAT["right"], 0),
        _wp(400, meet + _v(0.05, 0, lift_right), PICK_QUAT["right"], 0),
    ]
    return Plan({"left": left, "right": right}, carries=[("right", 225, 330), ("left", 225, 330)])


#: Pitch (deg) and tool-centre-point height relative to the cube centre (m) of top grasps.
TOP_GRASP_PITCH = 90.0
TOP_GRASP_DEPTH = -0.01
#: Where the right arm sets a cube down for the left arm in the hand-over task.
RELAY_XY = np.array([0.0, 0.47])


def top_grasp_quat(side: str) -> np.ndarray:
    return axis_angle_quat((0, 1, 0), TOP_GRASP_PITCH if side == "left" else -TOP_GRASP_PITCH)


def _pick(t: int, side: str, cube: np.ndarray) -> list[Waypoint]:
    """Waypoints of a top grasp starting at t: above, down, close, lift (130 steps)."""
    quat = top_grasp_quat(side)
    grasp = cube + _v(0, 0, TOP_GRASP_DEPTH)
    return [
        _wp(t + 70, cube + _v(0, 0, 0.08), quat, 1),
        _wp(t + 95, grasp, quat, 1),
        _wp(t + 115, grasp, quat, 0),
        _wp(t + 135, cube + _v(0, 0, 0.1), quat, 0),
    ]


def _place(t: int, side: str, xyz: np.ndarray) -> list[Waypoint]:
    """Carry a held cube above xyz, open, and rise (from t, 95 steps)."""
    quat = top_grasp_quat(side)
    return [
        _wp(t + 50, xyz + _v(0, 0, 0.03), quat, 0),
        _wp(t + 65, xyz, quat, 0),
        _wp(t + 80, xyz, quat, 1),
        _wp(t + 95, xyz + _v(0, 0, 0.08), quat, 1),
    ]


def plan_color_handover(home: Home, cube: np.ndarray) -> Plan:
    """The right arm sets the cube down in the middle; the left arm takes it to the bin."""
    relay = np.array([*RELAY_XY, cube[2]])
    right = [_home(home, 0, "right"), *_pick(0, "right", cube), *_place(135, "right", relay)]
    right.append(_home(home, 290, "right"))
    left = [_home(home, 0, "left"), _home(home, 200, "left")]
    left += _pick(200, "left", relay)
    left += _place(335, "left", np.array([BIN_CENTER[0] - BIN_DROP_OFFSET, BIN_CENTER[1], 0.12]))
    left.append(_home(home, 480, "left"))
    return Plan({"left": left, "right": right}, carries=[("right", 120, 200), ("left", 320, 400)])


#: Each arm drops its cubes this far (m) from the bin centre on its own side, so two cubes fit.
BIN_DROP_OFFSET = 0.03


def plan_bin_sequence(home: Home, cubes: list[np.ndarray]) -> Plan:
    """Each cube, in order, is picked by the arm on its side and dropped into the bin."""
    waypoints = {side: [_home(home, 0, side)] for side in ARM_SIDES}
    carries = []
    t = 0
    for cube in cubes:
        side = "right" if cube[0] > 0 else "left"
        other = "left" if side == "right" else "right"
        sign = 1 if side == "right" else -1
        drop = np.array([BIN_CENTER[0] + sign * BIN_DROP_OFFSET, BIN_CENTER[1], 0.12])
        waypoints[side] += [*_pick(t, side, cube), *_place(t + 135, side, drop)]
        waypoints[side].append(_home(home, t + 260, side))
        waypoints[other].append(_home(home, t + 260, other))
        carries.append((side, t + 120, t + 200))
        t += 260
    return Plan(waypoints, carries)


def at_spawn_height(xyz: np.ndarray) -> np.ndarray:
    """ACT's plans read each object where gym-aloha places it at reset, in the air: their
    grasp heights are relative to that. An object already resting on the table (a settled
    start) is planned for as if at the spawn height, so the plan is the same either way;
    from its resting height the insertion grasps would reach into the table."""
    return np.array([xyz[0], xyz[1], ALOHA_SPAWN_HEIGHT])


def plan_for(env: BimanualEnv, home: Home, believed: dict[str, np.ndarray]) -> Plan:
    """The task's plan from the believed object positions (free-joint name → xyz)."""
    name = env.spec.name
    if name == "transfer_cube":
        return plan_transfer_cube(home, at_spawn_height(believed["red_box_joint"]))
    if name == "insertion":
        return plan_insertion(
            home,
            at_spawn_height(believed["red_peg_joint"]),
            at_spawn_height(believed["blue_socket_joint"]),
        )
    if name == "color_handover":
        assert isinstance(env.task, ColorHandoverTask)
        return plan_color_handover(home, believed[f"{env.task.target}_box_joint"])
    if name == "bin_sequence":
        assert isinstance(env.task, BinSequenceTask)
        return plan_bin_sequence(home, [believed[f"{c}_box_joint"] for c in env.task.order])
    raise ValueError(f"no scripted expert for task {name!r}")


class MocapTwin:
    """The scene with mocap-welded grippers; turns a waypoint plan into joint targets."""

    def __init__(self, scene: str) -> None:
        self.model = build_model(scene, mocap_twin=True)
        self.data = mujoco.MjData(self.model)
        self.n_substeps = round(0.02 / self.model.opt.timestep)
        self._arm_qpos = [
            self.model.joint(mjcf_joint(side, joint)).qposadr[0]
            for side in ARM_SIDES
            for joint in ARM_REVOLUTE_JOINTS
        ]

        self.home = self._home_poses()

    def _home_poses(self) -> Home:
        """Mocap poses that the welds hold without moving the arms from the start pose."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:16] = START_ARM_QPOS
        mujoco.mj_forward(self.model, self.data)
        home = {}
        for i, side in enumerate(ARM_SIDES):
            gripper = self.data.body(f"vx300s_{side}/gripper_link")
            rel_pos, rel_quat = self.model.eq_data[i, 3:6], self.model.eq_data[i, 6:10]
            inverse = np.zeros(4)
            mujoco.mju_negQuat(inverse, rel_quat)
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, gripper.xquat, inverse)
            offset = np.zeros(3)
            mujoco.mju_rotVecQuat(offset, rel_pos, quat)
            home[side] = (gripper.xpos - offset, quat)
        return home

    def rollout(self, qpos: np.ndarray, plan: Plan) -> np.ndarray:
        """Joint targets (plan.length, 14) reached by following the plan from qpos."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        targets = np.zeros((plan.length, ACTION_DIM))
        for t in range(plan.length):
            for i, side in enumerate(ARM_SIDES):
                xyz, quat, gripper = interpolate(plan.waypoints[side], t)
                self.data.mocap_pos[i] = xyz
                self.data.mocap_quat[i] = quat
                finger = unnormalize_gripper(gripper)
                self.data.ctrl[2 * i : 2 * i + 2] = (finger, -finger)
                targets[t, 7 * i + 6] = gripper
            for _ in range(self.n_substeps):
                mujoco.mj_step(self.model, self.data)
            arm = self.data.qpos[self._arm_qpos]
            targets[t, 0:6] = arm[:6]
            targets[t, 7:13] = arm[6:]
        return targets


@dataclass(frozen=True)
class Perturbation:
    """Ways a scripted demonstration goes wrong, like a human's would."""

    object_position_noise: float = 0.0
    """Std (m) of the error in the expert's belief of each object's x and y."""
    drop_probability: float = 0.0
    """Chance per episode that one carrying gripper opens early."""

    def __post_init__(self) -> None:
        if self.object_position_noise < 0:
            raise ValueError(
                f"object_position_noise must be >= 0, got {self.object_position_noise}"
            )
        if not 0.0 <= self.drop_probability <= 1.0:
            raise ValueError(f"drop_probability must be in [0, 1], got {self.drop_probability}")


PERTURBATIONS: dict[str, Perturbation] = {
    "none": Perturbation(),
    "mild": Perturbation(object_position_noise=0.01, drop_probability=0.05),
    "strong": Perturbation(object_position_noise=0.02, drop_probability=0.2),
}


@dataclass
class ExpertConfig:
    """Settings of a scripted expert."""

    task: str
    """Task name, a key of wav_ros.sim.TASKS."""
    noise_std: float = 0.0
    """Std (rad) of the smoothed noise added to arm joint targets."""
    noise_smoothing: float = 0.9
    """AR(1) coefficient of that noise (0 = white; near 1 = slow drifts like tracking error)."""
    perturbation: Perturbation | str = "none"
    """A Perturbation or a preset name: none, mild, strong."""
    seed: int | None = None
    """Seed of the noise and perturbation draws."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known tasks: {sorted(TASKS)}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if not 0.0 <= self.noise_smoothing < 1.0:
            raise ValueError(f"noise_smoothing must be in [0, 1), got {self.noise_smoothing}")
        if isinstance(self.perturbation, str):
            if self.perturbation not in PERTURBATIONS:
                raise ValueError(
                    f"unknown perturbation {self.perturbation!r}; presets: {sorted(PERTURBATIONS)}"
                )
            self.perturbation = PERTURBATIONS[self.perturbation]


class ScriptedExpert:
    """Plans at reset (needs the env: object poses are privileged), then replays joint targets."""

    def __init__(self, config: ExpertConfig) -> None:
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._twin: MocapTwin | None = None
        self._targets = np.zeros((0, ACTION_DIM))
        self._t = 0
        self._noise = np.zeros(12)
        self.dropped_at: int | None = None

    def reset(self, env: BimanualEnv) -> None:
        """Plan this episode from the env's current (just reset) state."""
        if isinstance(env, Observation) or not isinstance(env, BimanualEnv):
            raise TypeError("ScriptedExpert.reset needs the BimanualEnv (it reads object poses)")
        if env.spec.name != self.config.task:
            raise ValueError(f"expert for {self.config.task!r} reset with a {env.spec.name!r} env")
        if self._twin is None:
            self._twin = MocapTwin(env.spec.scene)
        perturbation = self.config.perturbation
        assert isinstance(perturbation, Perturbation)
        believed = {}
        for joint, pose in env.object_positions().items():
            error = self._rng.normal(0.0, perturbation.object_position_noise, size=2)
            believed[joint] = pose[:3] + np.array([*error, 0.0])
        plan = plan_for(env, self._twin.home, believed)
        self._targets = self._twin.rollout(env.data.qpos.copy(), plan)
        self.dropped_at = None
        if plan.carries and self._rng.random() < perturbation.drop_probability:
            side, start, end = plan.carries[int(self._rng.integers(len(plan.carries)))]
            self.dropped_at = int(self._rng.integers(start, end))
            gripper = 6 if side == "left" else 13
            self._targets[self.dropped_at : end, gripper] = 1.0
        self._t = 0
        self._noise = np.zeros(12)

    def select_action(self, obs: Observation | None = None) -> np.ndarray:
        """The next joint target (held at the last one after the plan ends)."""
        if len(self._targets) == 0:
            raise RuntimeError("call reset(env) before select_action")
        action = self._targets[min(self._t, len(self._targets) - 1)].copy()
        self._t += 1
        if self.config.noise_std > 0:
            a = self.config.noise_smoothing
            self._noise = a * self._noise + np.sqrt(1 - a**2) * self._rng.normal(
                0.0, self.config.noise_std, size=12
            )
            action[0:6] += self._noise[:6]
            action[7:13] += self._noise[6:]
        # The expert is the policy: keeping its own noisy targets inside the limits is its job.
        return np.clip(action, ACTION_LOWER, ACTION_UPPER)


def make_expert(
    task: str,
    noise_std: float = 0.0,
    perturbation: Perturbation | str = "none",
    seed: int | None = None,
    noise_smoothing: float = 0.9,
) -> ScriptedExpert:
    """Scripted expert of `task`; reset(env) after each env.reset, then select_action(obs)."""
    return ScriptedExpert(
        ExpertConfig(
            task=task,
            noise_std=noise_std,
            noise_smoothing=noise_smoothing,
            perturbation=perturbation,
            seed=seed,
        )
    )
