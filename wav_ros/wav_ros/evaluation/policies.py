"""The policy protocol of the evaluation harness and the built-in policies.

A policy sees what the robot sees (an Observation) and the instruction; nothing else. Privileged
policies (the scripted expert) may also implement `attach_env(env)`, which the harness calls
before each episode; the WAV inference API and baselines do not need it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from wav_ros.sim.env import Observation
from wav_ros.sim.experts import Perturbation, ScriptedExpert, make_expert


@runtime_checkable
class Policy(Protocol):
    """What the harness drives: reset per episode, then one action per control step.

    Chunked policies (WAV predicts action chunks) buffer their chunk internally. An optional
    `needs_images` attribute (or property, read before each step) says whether the next
    observation must carry camera images; without it every step is rendered.
    """

    def reset(self, task: str, instruction: str) -> None: ...

    def select_action(self, obs: Observation) -> np.ndarray: ...


class HoldStillPolicy:
    """Keeps every joint where the episode started (ALOHA) or sends the env's no-op (LIBERO).

    The floor of any success rate: a task solved by holding still is not a task.
    """

    needs_images = False

    def __init__(self) -> None:
        self._env: Any = None
        self._hold: np.ndarray | None = None

    def attach_env(self, env: Any) -> None:
        self._env = env

    def reset(self, task: str, instruction: str) -> None:
        self._hold = None

    def select_action(self, obs: Observation) -> np.ndarray:
        if self._hold is None:
            neutral = getattr(self._env, "neutral_action", None)
            self._hold = np.asarray(neutral(obs) if neutral else obs.qpos, dtype=np.float64).copy()
        return self._hold.copy()


class ScriptedExpertPolicy:
    """The scripted expert of each task as a policy (privileged: reads object poses at reset)."""

    needs_images = False

    def __init__(
        self,
        noise_std: float = 0.0,
        perturbation: Perturbation | str = "none",
        seed: int | None = None,
    ) -> None:
        self.noise_std = noise_std
        self.perturbation = perturbation
        self._rng = np.random.default_rng(seed)
        self._experts: dict[str, ScriptedExpert] = {}
        self._env: Any = None
        self._active: ScriptedExpert | None = None

    def attach_env(self, env: Any) -> None:
        self._env = env

    def reset(self, task: str, instruction: str) -> None:
        if self._env is None:
            raise RuntimeError("the scripted expert needs attach_env(env) before reset")
        if task not in self._experts:
            self._experts[task] = make_expert(
                task,
                noise_std=self.noise_std,
                perturbation=self.perturbation,
                seed=int(self._rng.integers(2**31)),
            )
        self._active = self._experts[task]
        self._active.reset(self._env)

    def select_action(self, obs: Observation) -> np.ndarray:
        if self._active is None:
            raise RuntimeError("call reset(task, instruction) before select_action")
        return self._active.select_action(obs)
