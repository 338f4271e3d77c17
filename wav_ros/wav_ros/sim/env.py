"""The bimanual ALOHA simulation: 14-D absolute joint actions at 50 Hz, CPU-rendered cameras.

Driven through MuJoCo directly (not dm_control/gym) so that image size, cameras and shadows are
under control: three 128 px cameras render in a few ms on a CPU instead of the stock env's
three 640×480 shadowed views. Physics stepping matches gym-aloha's (10 substeps of 2 ms).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wav_ros.robot_description import (
    ACTION_DIM,
    ARM_JOINTS,
    ARM_SIDES,
    CAMERA_NAMES,
    CONTROL_HZ,
    DEFAULT_JOINT_LIMITS,
    JOINT_NAMES,
)

# Offscreen rendering without a display: EGL needs a GPU device, OSMesa runs anywhere.
os.environ.setdefault("MUJOCO_GL", "osmesa")

import mujoco

from wav_ros.sim.scene import build_model, mjcf_joint
from wav_ros.sim.tasks import TASK_CLASSES, TASKS, Task

# gym-aloha's puppet gripper finger positions (m) for normalised 0 (closed) and 1 (open).
GRIPPER_CLOSED = 0.01844
GRIPPER_OPEN = 0.05800
ACTION_LOWER = np.array([DEFAULT_JOINT_LIMITS[j].lower for j in JOINT_NAMES])
ACTION_UPPER = np.array([DEFAULT_JOINT_LIMITS[j].upper for j in JOINT_NAMES])
_ARM = slice(0, 6)
#: Widest layout margin accepted (m): a recording option, and nothing wider has been tried.
MAX_LAYOUT_MARGIN = 0.05


def normalize_gripper(finger_position: float) -> float:
    return (finger_position - GRIPPER_CLOSED) / (GRIPPER_OPEN - GRIPPER_CLOSED)


def unnormalize_gripper(normalized: float) -> float:
    return normalized * (GRIPPER_OPEN - GRIPPER_CLOSED) + GRIPPER_CLOSED


@dataclass
class Observation:
    """What the robot sees and feels after a reset or a step."""

    images: dict[str, np.ndarray]
    """Camera name → uint8 H×W×3 image; empty when the step was not rendered."""
    qpos: np.ndarray
    """(14,) float32 joint positions in JOINT_NAMES order, grippers normalised 0 (closed)..1."""
    qvel: np.ndarray
    """(14,) float32 joint velocities (grippers in normalised units per second)."""
    time: float
    """Simulation time in seconds."""


@dataclass
class StepResult:
    """Gymnasium-style step outcome."""

    observation: Observation
    reward: float
    """Dense task progress in [0, 1] (1 = solved); gym-aloha's 0..4 is info['stage_reward']."""
    terminated: bool
    """The task was solved (with terminate_on_success)."""
    truncated: bool
    """The episode reached max_steps."""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimConfig:
    """Settings of one simulated environment."""

    task: str
    """Task name, a key of wav_ros.sim.TASKS."""
    image_size: tuple[int, int] = (128, 128)
    """(height, width) of every camera image."""
    cameras: tuple[str, ...] = CAMERA_NAMES
    """Cameras to render (any camera of the model; the ALOHA three by default)."""
    seed: int | None = None
    """Seed of the episode-seed generator used when reset() gets no seed."""
    max_steps: int | None = None
    """Episode length; None uses the task's."""
    terminate_on_success: bool = True
    """End the episode at the first successful step, as gym-aloha does."""
    layout_margin: float = 0.0
    """Metres by which the box each task draws its objects from is widened on every side. 0 is
    the task's own box, the one every evaluation uses; demonstrations recorded from a wider box
    show the policy layouts at and past the evaluation box's edges."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known tasks: {sorted(TASKS)}")
        self.image_size = tuple(int(v) for v in self.image_size)
        if len(self.image_size) != 2 or min(self.image_size) < 8 or max(self.image_size) > 2048:
            raise ValueError(
                f"image_size must be (height, width) in [8, 2048], got {self.image_size}"
            )
        self.cameras = tuple(self.cameras)
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct, got {self.cameras}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if not 0.0 <= self.layout_margin <= MAX_LAYOUT_MARGIN:
            raise ValueError(
                f"layout_margin must be in [0, {MAX_LAYOUT_MARGIN}] m, got {self.layout_margin}"
            )


class BimanualEnv:
    """One simulated ALOHA with one task. No global state; close() frees the GL context."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.spec = TASKS[config.task]
        self.model = build_model(self.spec.scene, max_image_size=max(config.image_size))
        self.data = mujoco.MjData(self.model)
        known = {self.model.camera(i).name for i in range(self.model.ncam)}
        unknown = [c for c in config.cameras if c not in known]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; the model has {sorted(known)}")
        self.task: Task = TASK_CLASSES[config.task](self.model, config.layout_margin)
        self.max_steps = config.max_steps or self.spec.max_steps
        self.n_substeps = round(1.0 / CONTROL_HZ / self.model.opt.timestep)
        self._renderer: mujoco.Renderer | None = None
        self._seeds = np.random.default_rng(config.seed)
        joints = [mjcf_joint(side, joint) for side in ARM_SIDES for joint in ARM_JOINTS]
        self._qpos_adr = [self.model.joint(name).qposadr[0] for name in joints]
        self._dof_adr = [self.model.joint(name).dofadr[0] for name in joints]
        self.step_count = 0
        self.episode_seed: int | None = None
        self.success = False
        self._ready = False

    @property
    def instruction(self) -> str:
        return self.task.instruction

    def reset(
        self,
        seed: int | None = None,
        instruction: str | None = None,
        *,
        render: bool = True,
        settle_steps: int = 0,
    ) -> Observation:
        """Start an episode; the layout follows `seed`, the goal follows `instruction`; with
        `settle_steps`, from the scene settled that long at rest (`settle`)."""
        if seed is None:
            seed = int(self._seeds.integers(0, 2**31 - 1))
        if instruction is None:
            instruction = self.spec.instructions[
                int(np.random.default_rng(seed).integers(len(self.spec.instructions)))
            ]
        self.task.reset(self.data, int(seed), instruction)
        self.episode_seed = int(seed)
        self.step_count = 0
        self.success = False
        self._ready = True
        return self.settle(settle_steps, render=render)

    def validate_action(self, action: np.ndarray) -> np.ndarray:
        """Check shape, finiteness and joint limits; never clamps."""
        action = np.asarray(action)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
        if not np.issubdtype(action.dtype, np.number):
            raise TypeError(f"action must be numeric, got dtype {action.dtype}")
        action = action.astype(np.float64)
        if not np.all(np.isfinite(action)):
            bad = [JOINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(action))]
            raise ValueError(f"action has non-finite values for {bad}")
        outside = np.flatnonzero((action < ACTION_LOWER) | (action > ACTION_UPPER))
        if outside.size:
            details = ", ".join(
                f"{JOINT_NAMES[i]}={action[i]:.4f} not in "
                f"[{ACTION_LOWER[i]:.4f}, {ACTION_UPPER[i]:.4f}]"
                for i in outside
            )
            raise ValueError(f"action outside joint limits: {details}")
        return action

    def step(self, action: np.ndarray, *, render: bool = True) -> StepResult:
        """Apply absolute joint targets for one 20 ms control period."""
        if not self._ready:
            raise RuntimeError("call reset() before step() (and again after an episode ends)")
        self._advance(self.validate_action(action))
        self.step_count += 1
        status = self.task.measure(self.data, self.step_count)
        self.success = status.success
        terminated = status.success and self.config.terminate_on_success
        truncated = not terminated and self.step_count >= self.max_steps
        if terminated or truncated:
            self._ready = False
        info = {
            "success": status.success,
            "progress": status.progress,
            "stage_reward": status.stage_reward,
            "step": self.step_count,
            "seed": self.episode_seed,
        }
        return StepResult(self.observe(render=render), status.progress, terminated, truncated, info)

    def settle(self, steps: int, *, render: bool = True) -> Observation:
        """Let the scene come to rest before the episode's first step: `steps` control periods
        with the arms holding their commanded pose (after a reset: the start pose), not
        counted as episode steps.

        A reset places the arms and objects where gravity has not yet acted; a real robot
        starts from rest. The shipped model was trained on unsettled starts only and solves far
        fewer episodes from settled ones (reports/training/notes.md, round 13).
        """
        if not self._ready:
            raise RuntimeError("call reset() before settle()")
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        for _ in range(steps):
            self._advance()  # the targets the reset set: its pose
        return self.observe(render=render)

    def _advance(self, action: np.ndarray | None = None) -> None:
        """One control period towards absolute joint targets (validated; None: the current)."""
        if action is not None:
            ctrl = self.data.ctrl
            for arm, offset in ((0, 0), (7, 8)):
                ctrl[offset : offset + 6] = action[arm : arm + 6]
                finger = unnormalize_gripper(action[arm + 6])
                ctrl[offset + 6] = finger
                ctrl[offset + 7] = -finger
        for _ in range(self.n_substeps):
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_forward(
            self.model, self.data
        )  # contacts at the new state, as dm_control reads them

    def observe(self, *, render: bool = True) -> Observation:
        qpos = self.data.qpos[self._qpos_adr].astype(np.float32)
        qvel = self.data.qvel[self._dof_adr].astype(np.float32)
        for g in (6, 13):
            qpos[g] = normalize_gripper(float(qpos[g]))
            qvel[g] = qvel[g] / (GRIPPER_OPEN - GRIPPER_CLOSED)
        images = self.render() if render else {}
        return Observation(images=images, qpos=qpos, qvel=qvel, time=float(self.data.time))

    def render(
        self, cameras: tuple[str, ...] | None = None, data: mujoco.MjData | None = None
    ) -> dict[str, np.ndarray]:
        """Render the configured (or given) cameras at the configured size.

        `data` (default: the live state) may be a copy taken at an earlier step, so that a
        thread of its own can render while the physics steps on. The renderer's GL context
        belongs to the thread that first renders: render from one thread only.
        """
        cameras = self.config.cameras if cameras is None else cameras
        if cameras and self._renderer is None:
            height, width = self.config.image_size
            try:
                self._renderer = mujoco.Renderer(self.model, height=height, width=width)
            except mujoco.FatalError as error:
                raise RuntimeError(
                    f"offscreen rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}; "
                    "set MUJOCO_GL=osmesa (CPU) or egl (GPU) before anything imports mujoco"
                ) from error
        images = {}
        for camera in cameras:
            self._renderer.update_scene(self.data if data is None else data, camera=camera)
            images[camera] = self._renderer.render().copy()
        return images

    def object_positions(self) -> dict[str, np.ndarray]:
        """Free-body poses (privileged; for scripted experts and tests)."""
        return self.task.object_positions(self.data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> BimanualEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_env(
    task: str,
    *,
    image_size: tuple[int, int] = (128, 128),
    cameras: tuple[str, ...] = CAMERA_NAMES,
    seed: int | None = None,
    max_steps: int | None = None,
    terminate_on_success: bool = True,
    layout_margin: float = 0.0,
) -> BimanualEnv:
    """Build the env of `task` (see TASKS)."""
    return BimanualEnv(
        SimConfig(
            task=task,
            image_size=image_size,
            cameras=cameras,
            seed=seed,
            max_steps=max_steps,
            terminate_on_success=terminate_on_success,
            layout_margin=layout_margin,
        )
    )
