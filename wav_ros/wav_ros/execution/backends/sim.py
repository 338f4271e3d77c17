"""Backend for the bimanual MuJoCo simulation (`wav_ros.sim.BimanualEnv`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from wav_ros.execution.backends.base import ExecutionBackend
from wav_ros.robot_description import JOINT_NAMES


class SimBackend(ExecutionBackend):
    """Streams each tick's command as one `env.step(action)` (one 20 ms control period).

    The simulation advances only when commanded, so the session's hold ticks keep stepping it
    with the held position. The latest observation (images included when `render`) is kept
    for the node to publish.
    """

    def __init__(self, env: Any, observation: Any | None = None, *, render: bool = False) -> None:
        super().__init__(JOINT_NAMES)
        self.env = env
        self.render = render
        self.last_observation = env.reset() if observation is None else observation
        self.last_result: Any | None = None

    def read_state(self, now: float) -> np.ndarray | None:
        return np.asarray(self.last_observation.qpos, dtype=np.float64).copy()

    def send(self, positions: np.ndarray, joint_names: tuple[str, ...]) -> None:
        self._check_names(joint_names)
        self.last_result = self.env.step(
            np.asarray(positions, dtype=np.float64), render=self.render
        )
        self.last_observation = self.last_result.observation

    def hold(self, positions: np.ndarray) -> None:
        """Nothing to interrupt: the session's following ticks step the sim with `positions`."""
