"""Tasks on the bimanual scene: initial layouts, instructions, dense progress and success.

TransferCube and Insertion keep gym-aloha's staged reward (0..4) and count success exactly as
gym-aloha does (reward 4, from ordered contact pairs). The coloured-cube tasks are language
conditioned: the instruction names the cubes, and success is read from the simulator state.
Each task object holds the latches of one episode; an env owns its own task object.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import mujoco
import numpy as np

from wav_ros.sim.scene import BIN_CENTER, BIN_INNER_HALF, BIN_WALL_HEIGHT, CUBE_HALF_SIZE

#: Start pose of the 16 arm joints (6 + 2 fingers per arm), gym-aloha's START_ARM_POSE.
START_ARM_QPOS: np.ndarray = np.array(
    [0, -0.96, 1.16, 0, -0.3, 0, 0.02239, -0.02239] * 2, dtype=np.float64
)
FINGERS: dict[str, tuple[str, str]] = {
    side: (f"vx300s_{side}/10_left_gripper_finger", f"vx300s_{side}/10_right_gripper_finger")
    for side in ("left", "right")
}
COLORS: tuple[str, ...] = ("red", "green", "blue")


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its scene, instructions and episode length."""

    name: str
    """Registry key."""
    scene: str
    """Scene name in wav_ros.sim.scene.SCENES."""
    instructions: tuple[str, ...]
    """Every instruction the task accepts; reset draws one when none is given."""
    max_steps: int
    """Episode length at 50 Hz (ACT's 400 for the gym-aloha tasks; gym-aloha registers 300)."""
    description: str = ""
    """One line for tables and docs."""


@dataclass(frozen=True)
class TaskStatus:
    """What the task reads from the simulator after a step."""

    progress: float
    """Dense progress in [0, 1]; 1 exactly when the task is solved."""
    success: bool
    """Whether the task is solved now."""
    stage_reward: float
    """gym-aloha's 0..4 reward for its tasks; progress × 4 for the others."""


class ContactReader:
    """Ordered (geom1, geom2) name pairs of the current contacts, as gym-aloha reads them."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self._names = [model.geom(i).name for i in range(model.ngeom)]

    def pairs(self, data: mujoco.MjData) -> set[tuple[str, str]]:
        contact = data.contact
        return {
            (self._names[g1], self._names[g2])
            for g1, g2 in zip(contact.geom1[: data.ncon], contact.geom2[: data.ncon], strict=True)
        }


def touching(pairs: set[tuple[str, str]], a: str, others: tuple[str, ...] | str) -> bool:
    """Whether geom `a` touches any of `others`, in either order."""
    names = (others,) if isinstance(others, str) else others
    return any((a, b) in pairs or (b, a) in pairs for b in names)


class Task(ABC):
    """One episode of a task: sample the layout at reset, measure progress after each step."""

    spec: TaskSpec

    def __init__(self, model: mujoco.MjModel, layout_margin: float = 0.0) -> None:
        self.model = model
        self.contacts = ContactReader(model)
        self.instruction = ""
        self.layout_margin = layout_margin
        """Metres by which the box the objects are drawn from is widened on each side."""

    def reset(self, data: mujoco.MjData, seed: int, instruction: str) -> None:
        """Put the arms at the start pose and the objects at a layout drawn from `seed`."""
        if instruction not in self.spec.instructions:
            raise ValueError(
                f"instruction {instruction!r} is not one of task {self.spec.name!r}'s: "
                f"{list(self.spec.instructions)}"
            )
        self.instruction = instruction
        mujoco.mj_resetData(self.model, data)
        data.qpos[:16] = START_ARM_QPOS
        data.ctrl[:] = START_ARM_QPOS
        self._place_objects(data, seed)
        mujoco.mj_forward(self.model, data)

    @abstractmethod
    def _place_objects(self, data: mujoco.MjData, seed: int) -> None: ...

    @abstractmethod
    def measure(self, data: mujoco.MjData, step: int) -> TaskStatus:
        """Read progress and success from the state after env step `step` (1-based)."""

    def object_positions(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Positions of the free bodies (privileged state for scripted experts)."""
        positions = {}
        for j in range(self.model.njnt):
            if self.model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
                adr = self.model.jnt_qposadr[j]
                positions[self.model.joint(j).name] = data.qpos[adr : adr + 7].copy()
        return positions

    def _set_free_joint(self, data: mujoco.MjData, joint: str, pose: np.ndarray) -> None:
        adr = self.model.joint(joint).qposadr[0]
        data.qpos[adr : adr + 7] = pose


#: Height (m) at which gym-aloha places its objects at reset, above the table they fall onto.
ALOHA_SPAWN_HEIGHT = 0.05


def _aloha_box_pose(
    rng: np.random.RandomState, x_range: tuple[float, float], margin: float
) -> np.ndarray:
    """gym-aloha's sampler (utils.sample_box_pose): uniform x, y in [0.4, 0.6], z 0.05; with
    `margin`, both ranges widened by it on each side (0 draws exactly gym-aloha's pose)."""
    low = np.array([x_range[0] - margin, 0.4 - margin, ALOHA_SPAWN_HEIGHT])
    high = np.array([x_range[1] + margin, 0.6 + margin, ALOHA_SPAWN_HEIGHT])
    return np.concatenate([rng.uniform(low, high), [1.0, 0.0, 0.0, 0.0]])


class TransferCubeTask(Task):
    """gym-aloha's TransferCube: the right arm picks the red cube and hands it to the left."""

    spec = TaskSpec(
        name="transfer_cube",
        scene="transfer_cube",
        instructions=(
            "transfer the red cube to the left arm",
            "pick up the cube with the right arm and hand it to the left arm",
            "hand the cube over from the right gripper to the left gripper",
        ),
        max_steps=400,
        description="gym-aloha TransferCube (success: reward 4)",
    )

    def _place_objects(self, data: mujoco.MjData, seed: int) -> None:
        # Same draw as gym-aloha's sample_box_pose(seed): the same seed gives the same cube.
        self._set_free_joint(
            data,
            "red_box_joint",
            _aloha_box_pose(np.random.RandomState(seed), (0.0, 0.2), self.layout_margin),
        )

    def measure(self, data: mujoco.MjData, step: int) -> TaskStatus:
        pairs = self.contacts.pairs(data)
        touch_left = ("red_box", "vx300s_left/10_left_gripper_finger") in pairs
        touch_right = ("red_box", "vx300s_right/10_right_gripper_finger") in pairs
        touch_table = ("red_box", "table") in pairs
        reward = 0
        if touch_right:
            reward = 1
        if touch_right and not touch_table:
            reward = 2
        if touch_left:
            reward = 3
        if touch_left and not touch_table:
            reward = 4
        return TaskStatus(progress=reward / 4, success=reward == 4, stage_reward=float(reward))


class InsertionTask(Task):
    """gym-aloha's Insertion: pick up peg and socket, insert the peg until it touches the pin."""

    spec = TaskSpec(
        name="insertion",
        scene="insertion",
        instructions=(
            "insert the peg into the socket",
            "pick up the peg and the socket and insert the peg",
            "put the red peg into the blue socket",
        ),
        max_steps=400,
        description="gym-aloha Insertion (success: reward 4)",
    )
    _SOCKET = ("socket-1", "socket-2", "socket-3", "socket-4")

    def _place_objects(self, data: mujoco.MjData, seed: int) -> None:
        rng = np.random.RandomState(seed)  # gym-aloha's sample_insertion_pose(seed)
        margin = self.layout_margin
        self._set_free_joint(data, "red_peg_joint", _aloha_box_pose(rng, (0.1, 0.2), margin))
        self._set_free_joint(data, "blue_socket_joint", _aloha_box_pose(rng, (-0.2, -0.1), margin))

    def measure(self, data: mujoco.MjData, step: int) -> TaskStatus:
        pairs = self.contacts.pairs(data)
        touch_right = ("red_peg", "vx300s_right/10_right_gripper_finger") in pairs
        touch_left = any((s, "vx300s_left/10_left_gripper_finger") in pairs for s in self._SOCKET)
        peg_table = ("red_peg", "table") in pairs
        socket_table = any((s, "table") in pairs for s in self._SOCKET)
        peg_socket = any(("red_peg", s) in pairs for s in self._SOCKET)
        reward = 0
        if touch_left and touch_right:
            reward = 1
        if touch_left and touch_right and not peg_table and not socket_table:
            reward = 2
        if peg_socket and not peg_table and not socket_table:
            reward = 3
        if ("red_peg", "pin") in pairs:
            reward = 4
        return TaskStatus(progress=reward / 4, success=reward == 4, stage_reward=float(reward))


@dataclass
class _CubeLatches:
    """Facts about an episode that stay true once seen."""

    handed_over: bool = False
    entered_bin: dict[str, int] = field(default_factory=dict)


class CubesBinTask(Task):
    """Shared machinery of the coloured-cube tasks: cube poses, fingers, the bin."""

    def __init__(self, model: mujoco.MjModel, layout_margin: float = 0.0) -> None:
        super().__init__(model, layout_margin)
        self.latches = _CubeLatches()
        self._finger_geoms = FINGERS["left"] + FINGERS["right"]

    def cube_position(self, data: mujoco.MjData, color: str) -> np.ndarray:
        return data.geom(f"{color}_box").xpos.copy()

    def finger_center(self, data: mujoco.MjData, side: str) -> np.ndarray:
        return 0.5 * (data.geom(FINGERS[side][0]).xpos + data.geom(FINGERS[side][1]).xpos)

    def in_bin(self, data: mujoco.MjData, pairs: set[tuple[str, str]], color: str) -> bool:
        """Cube inside the bin's walls, low enough to be in it (or on a cube in it), released."""
        x, y, z = self.cube_position(data, color)
        inside = abs(x - BIN_CENTER[0]) < BIN_INNER_HALF and abs(y - BIN_CENTER[1]) < BIN_INNER_HALF
        return (
            inside
            and z < BIN_WALL_HEIGHT + 3 * CUBE_HALF_SIZE
            and not touching(pairs, f"{color}_box", self._finger_geoms)
        )

    def _distance_to_bin(self, data: mujoco.MjData, color: str) -> float:
        return float(np.linalg.norm(self.cube_position(data, color)[:2] - np.array(BIN_CENTER)))

    def _update_bin_entries(
        self, data: mujoco.MjData, pairs: set[tuple[str, str]], step: int
    ) -> None:
        for color in COLORS:
            if color not in self.latches.entered_bin and self.in_bin(data, pairs, color):
                self.latches.entered_bin[color] = step

    def _place_cubes(self, data: mujoco.MjData, positions: dict[str, tuple[float, float]]) -> None:
        for color, (x, y) in positions.items():
            joint = f"{color}_box_joint"
            self._set_free_joint(data, joint, np.array([x, y, CUBE_HALF_SIZE, 1.0, 0.0, 0.0, 0.0]))

    def reset(self, data: mujoco.MjData, seed: int, instruction: str) -> None:
        self.latches = _CubeLatches()
        super().reset(data, seed, instruction)


#: y of the three cube lanes: 11 cm apart, so an open gripper (jaws ±5.8 cm) fits between cubes.
CUBE_LANES: tuple[float, ...] = (0.39, 0.5, 0.61)


def _sample_lanes(
    rng: np.random.Generator, colors: tuple[str, ...], x_low: float, x_high: float, sides: list[int]
) -> dict[str, tuple[float, float]]:
    """Cube xy positions: each colour in its own lane (shuffled), x uniform on its side (the
    lanes keep their y whatever the layout margin, so that the gripper fits between cubes)."""
    lanes = rng.permutation(len(CUBE_LANES))
    positions = {}
    for i, color in enumerate(colors):
        x = sides[i] * rng.uniform(x_low, x_high)
        y = CUBE_LANES[lanes[i]] + rng.uniform(-0.01, 0.01)
        positions[color] = (float(x), float(y))
    return positions


def _handover_instructions() -> dict[str, str]:
    templates = (
        "hand the {c} cube to the left arm and put it in the bin",
        "pass the {c} cube to the left gripper, then drop it in the bin",
        "give the {c} block to the left hand and place it in the bin",
    )
    return {t.format(c=c): c for c in COLORS for t in templates}


class ColorHandoverTask(CubesBinTask):
    """Three cubes on the right; the named one goes right arm → left arm → bin."""

    GOALS = _handover_instructions()
    spec = TaskSpec(
        name="color_handover",
        scene="cubes_bin",
        instructions=tuple(GOALS),
        max_steps=520,
        description="hand the named cube to the left arm, then put it in the bin",
    )

    @property
    def target(self) -> str:
        return self.GOALS[self.instruction]

    def _place_objects(self, data: mujoco.MjData, seed: int) -> None:
        rng, m = np.random.default_rng(seed), self.layout_margin
        self._place_cubes(data, _sample_lanes(rng, COLORS, 0.08 - m, 0.2 + m, [1, 1, 1]))

    def measure(self, data: mujoco.MjData, step: int) -> TaskStatus:
        pairs = self.contacts.pairs(data)
        cube = f"{self.target}_box"
        touch_right = touching(pairs, cube, FINGERS["right"])
        touch_left = touching(pairs, cube, FINGERS["left"])
        on_table = touching(pairs, cube, "table")
        if touch_left and not on_table:
            self.latches.handed_over = True
        self._update_bin_entries(data, pairs, step)
        others_in_bin = any(self.in_bin(data, pairs, c) for c in COLORS if c != self.target)
        success = (
            self.latches.handed_over and self.in_bin(data, pairs, self.target) and not others_in_bin
        )
        if success:
            progress = 1.0
        elif self.latches.handed_over:
            progress = 0.6 + 0.3 * max(0.0, 1.0 - self._distance_to_bin(data, self.target) / 0.3)
        elif touch_right and not on_table:
            progress = 0.4
        elif touch_right:
            progress = 0.25
        else:
            reach = np.linalg.norm(
                self.finger_center(data, "right") - self.cube_position(data, self.target)
            )
            progress = 0.25 * max(0.0, 1.0 - float(reach) / 0.3)
        return TaskStatus(progress=progress, success=success, stage_reward=4 * progress)


def _sequence_instructions() -> dict[str, tuple[str, str]]:
    templates = (
        "put the {a} cube in the bin, then the {b} one",
        "first place the {a} cube in the bin, then the {b} cube",
    )
    return {
        t.format(a=a, b=b): (a, b) for a, b in itertools.permutations(COLORS, 2) for t in templates
    }


class BinSequenceTask(CubesBinTask):
    """Three cubes on both sides; two named ones go into the bin in the stated order."""

    GOALS = _sequence_instructions()
    spec = TaskSpec(
        name="bin_sequence",
        scene="cubes_bin",
        instructions=tuple(GOALS),
        max_steps=540,
        description="put two named cubes in the bin in the stated order (distractor stays out)",
    )

    @property
    def order(self) -> tuple[str, str]:
        return self.GOALS[self.instruction]

    def _place_objects(self, data: mujoco.MjData, seed: int) -> None:
        rng, m = np.random.default_rng(seed), self.layout_margin
        sides = [int(s) for s in rng.choice([-1, 1], size=len(COLORS))]
        self._place_cubes(data, _sample_lanes(rng, COLORS, 0.1 - m, 0.22 + m, sides))

    def _cube_progress(self, data: mujoco.MjData, pairs: set[tuple[str, str]], color: str) -> float:
        cube = f"{color}_box"
        if self.in_bin(data, pairs, color):
            return 1.0
        held = touching(pairs, cube, self._finger_geoms)
        if held and not touching(pairs, cube, "table"):
            return 0.5 + 0.4 * max(0.0, 1.0 - self._distance_to_bin(data, color) / 0.3)
        if held:
            return 0.4
        position = self.cube_position(data, color)
        reach = min(
            np.linalg.norm(self.finger_center(data, s) - position) for s in ("left", "right")
        )
        return 0.3 * max(0.0, 1.0 - float(reach) / 0.4)

    def measure(self, data: mujoco.MjData, step: int) -> TaskStatus:
        pairs = self.contacts.pairs(data)
        self._update_bin_entries(data, pairs, step)
        first, second = self.order
        distractor = next(c for c in COLORS if c not in self.order)
        entered = self.latches.entered_bin
        in_order = first in entered and (second not in entered or entered[first] < entered[second])
        success = (
            in_order
            and second in entered
            and self.in_bin(data, pairs, first)
            and self.in_bin(data, pairs, second)
            and not self.in_bin(data, pairs, distractor)
        )
        if success:
            progress = 1.0
        elif in_order and self.in_bin(data, pairs, first):
            progress = 0.5 + 0.45 * self._cube_progress(data, pairs, second)
        else:
            progress = 0.45 * self._cube_progress(data, pairs, first)
        return TaskStatus(progress=progress, success=success, stage_reward=4 * progress)


TASK_CLASSES: dict[str, type[Task]] = {
    cls.spec.name: cls
    for cls in (TransferCubeTask, InsertionTask, ColorHandoverTask, BinSequenceTask)
}
#: Task registry: name → spec (scene, instructions, max_steps).
TASKS: dict[str, TaskSpec] = {name: cls.spec for name, cls in TASK_CLASSES.items()}
