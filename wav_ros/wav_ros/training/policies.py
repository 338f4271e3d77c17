"""Trained checkpoints as closed-loop policies for wav_ros.evaluation (no rclpy).

A chunked policy plans (or predicts) a chunk of absolute joint targets from the current
cameras, executes its first `execute_steps` targets, then plans again, as the executor does on
the robot. Camera images arrive at the sim's size (128 px) and are resized to the model's with
the same `resize_images` the ROS nodes use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wav_ros.execution import (
    JointTrajectoryData,
    SafetyLimits,
    start_from_state,
    time_within_velocity_limits,
)
from wav_ros.model import WAVPolicy, resize_images
from wav_ros.planning import PlannerConfig
from wav_ros.robot_description import CONTROL_HZ, JOINT_NAMES

#: Planner settings of the evaluations: the paper's algorithm with a CPU-sized search.
EVAL_PLANNER = PlannerConfig(iterations=2, num_video_samples=8, num_value_samples=4)
NO_PLANNING = PlannerConfig(iterations=0)
#: How ChunkedEvalPolicy executes a chunk; in the report's policy ids, so that episodes run
#: another way are not reused ("velocity-timed": timed within the velocity limits, round 7;
#: "-from-arms": a first target out of one step's reach is reached from the measured
#: state at those limits, as the graph's planner does, round 19).
CHUNK_EXECUTION = "velocity-timed-from-arms"


#: torch intra-op threads per evaluation worker (parallel workers share the cores).
EVAL_THREADS = 1
#: The robot's limits (float64 like the env's own: a float32 copy of 3.14158 lies above it);
#: grippers force-limited as in config/joint_limits.yaml, since they press on what they hold.
_LIMITS = SafetyLimits(force_limited_joints=("left_gripper", "right_gripper"))


def load_policy(directory: str | Path, planner_config: PlannerConfig | None = None) -> Any:
    """A WAVPolicy or DirectActionPolicy save_pretrained folder, whichever it holds."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    kind = json.loads(path.read_text()).get("format")
    if kind == "wav_ros.DirectActionPolicy":
        from wav_ros.baselines.direct_policy import DirectActionPolicy

        return DirectActionPolicy.from_pretrained(directory)
    return WAVPolicy.from_pretrained(directory, planner_config=planner_config)


def checkpoint_tool_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every checkpoint diagnostic takes: a dataset, checkpoints, a seed."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--seed", type=int, default=0)
    return parser


class ChunkedEvalPolicy:
    """The evaluation Policy protocol over a WAVPolicy (planning or not) or the direct baseline.

    Targets outside the joint limits (a gripper at 1.003) are clipped to them, as any policy
    must before commanding the robot; `clipped_targets` counts how many entries were. The
    executed targets are then timed within the velocity limits and sampled once per control
    step, as the node graph's planner and executor do: a segment too fast for a joint takes
    the steps its limit needs (`slowed_steps` counts the steps added). `hold_steps` > 0 ends
    each chunk with that many more steps at its last target: a robot that holds still while
    it plans the next chunk, as the node graph's task runner does. `execute_steps` targets of
    each chunk are executed before the next plan (None: the checkpoint's config.execute_steps).
    """

    def __init__(
        self,
        model: Any,
        planner_config: PlannerConfig | None = None,
        execute_steps: int | None = None,
        seed: int = 0,
        hold_steps: int = 0,
    ) -> None:
        chunk = model.config.chunk_size
        execute_steps = execute_steps or model.config.execute_steps
        if not 1 <= execute_steps <= chunk:
            raise ValueError(f"execute_steps must be in 1..{chunk}, got {execute_steps}")
        if hold_steps < 0:
            raise ValueError(f"hold_steps must be >= 0, got {hold_steps}")
        self.model = model
        self.planner_config = planner_config
        self.execute_steps = execute_steps
        self.seed = seed
        self.hold_steps = hold_steps
        self.clipped_targets = 0
        self.slowed_steps = 0
        self.plan_seconds: list[float] = []
        config = model.config
        self._history = deque(maxlen=(config.memory_frames - 1) * config.memory_stride + 1)
        self._queue: deque[np.ndarray] = deque()
        self._instruction = ""
        self._plans = 0

    @property
    def needs_images(self) -> bool:
        """Whether the next select_action reads the cameras: when it plans, and at every step
        for a model that remembers earlier frames."""
        return not self._queue or self.model.config.memory_frames > 1

    def reset(self, task: str, instruction: str) -> None:
        self._instruction = instruction
        self._queue.clear()
        self._history.clear()
        self._plans = 0
        if isinstance(self.model, WAVPolicy):
            self.model.reset()

    def _memory_images(self) -> dict[str, np.ndarray]:
        """Per camera (memory_frames, H, W, 3), oldest first, every memory_stride-th frame."""
        config = self.model.config
        frames = list(self._history)
        picks = [
            max(0, len(frames) - 1 - k * config.memory_stride)
            for k in range(config.memory_frames - 1, -1, -1)
        ]
        return {c: np.stack([frames[i][c] for i in picks]) for c in config.camera_names}

    def select_action(self, obs: Any) -> np.ndarray:
        if not obs.images and not self._queue:
            raise ValueError("the policy plans now but the observation has no camera images")
        if obs.images:
            self._history.append(resize_images(obs.images, self.model.config.tokenizer.image_size))
        if not self._queue:
            started = time.perf_counter()
            images = self._memory_images()
            if isinstance(self.model, WAVPolicy):
                result = self.model.plan(
                    images,
                    obs.qpos,
                    self._instruction,
                    planner_config=self.planner_config,
                    seed=self.seed * 1_000_003 + self._plans,
                )
                chunk = result.actions
            else:
                chunk = self.model.predict_chunk(images, obs.qpos, self._instruction)
            self.plan_seconds.append(time.perf_counter() - started)
            self._plans += 1
            chunk = np.asarray(chunk, dtype=np.float64)
            clipped = np.clip(chunk, _LIMITS.lower, _LIMITS.upper)
            self.clipped_targets += int((clipped != chunk).sum())
            targets = _timed_within_limits(clipped[: self.execute_steps], obs.qpos)
            self.slowed_steps += len(targets) - self.execute_steps
            self._queue.extend(targets)
            self._queue.extend([targets[-1]] * self.hold_steps)
        return self._queue.popleft()


def _timed_within_limits(targets: np.ndarray, state: np.ndarray) -> list[np.ndarray]:
    """Targets meant one per control step from the measured `state`, slowed where a joint
    would pass its velocity limit (the first move too) and sampled at the control rate (the
    executor's ticks), as the graph's planner times a chunk."""
    dt = 1.0 / CONTROL_HZ
    waypoints, _ = start_from_state(targets, state, dt, _LIMITS)
    times = time_within_velocity_limits(waypoints, dt, _LIMITS)
    timed = JointTrajectoryData(JOINT_NAMES, times, waypoints, stamp=0.0)
    steps = math.ceil(times[-1] / dt - 1e-3)  # not one more step for the timing slack
    return [timed.sample(step * dt) for step in range(1, steps + 1)]


def make_eval_policy(
    checkpoint: str,
    planning: bool = True,
    execute_steps: int | None = None,
    threads: int | None = EVAL_THREADS,
    hold_steps: int = 0,
    final_choice: str | None = None,
    stall_tolerance: float | bool | None = None,
) -> ChunkedEvalPolicy:
    """Picklable factory for the harness: a checkpoint folder -> ChunkedEvalPolicy.

    planning=False runs WAV with K = 0 (one draw from the prior): the no-planning ablation.
    execute_steps: targets executed per chunk (None: the checkpoint's config.execute_steps).
    threads limits torch's intra-op threads per worker (parallel workers share the cores).
    hold_steps: steps held at the chunk's last target before the next plan (see the class).
    final_choice: PlannerConfig.final_choice (None: the evaluation planner's, "sample");
    "mean" with planning=False decodes from the centre of the video and value noises.
    stall_tolerance: WAVConfig.stall_tolerance (None: the checkpoint's; false: no stall
    recovery), so that a sweep needs no edited copies of the checkpoint.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    planner = EVAL_PLANNER if planning else NO_PLANNING
    if final_choice is not None:
        planner = planner.replace(final_choice=final_choice)
    model = load_policy(checkpoint, planner)
    if stall_tolerance is not None:
        if not isinstance(model, WAVPolicy):
            raise ValueError(f"stall_tolerance is a WAV setting; {checkpoint} is not WAV")
        off = stall_tolerance is False
        model.config = dataclasses.replace(
            model.config, stall_tolerance=None if off else float(stall_tolerance)
        )
    return ChunkedEvalPolicy(
        model,
        planner if isinstance(model, WAVPolicy) else None,
        execute_steps,
        hold_steps=hold_steps,
    )
