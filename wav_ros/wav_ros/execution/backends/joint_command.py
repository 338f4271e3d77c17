"""Backend that streams position targets as joint-state-like commands to a robot driver.

The simulation bridge (and simple position-controlled drivers) take one full position target
per control tick on a topic; the node supplies `publish` and feeds measured joint states.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wav_ros.execution.backends.base import ExecutionBackend
from wav_ros.execution.backends.joint_state import JointStateCache


class JointCommandBackend(ExecutionBackend):
    """Streams each tick's checked setpoint through `publish(joint_names, positions)`."""

    def __init__(
        self,
        joint_names: tuple[str, ...],
        publish: Callable[[tuple[str, ...], np.ndarray], None],
        *,
        max_state_age: float = 0.1,
    ) -> None:
        super().__init__(joint_names)
        self.publish = publish
        self.joint_states = JointStateCache(self.joint_names, max_state_age)

    def update_joint_state(self, names: list[str], positions: list[float], stamp: float) -> None:
        self.joint_states.update(names, positions, stamp)

    def read_state(self, now: float) -> np.ndarray | None:
        return self.joint_states.read(now)

    def send(self, positions: np.ndarray, joint_names: tuple[str, ...]) -> None:
        self._check_names(joint_names)
        self.publish(self.joint_names, np.asarray(positions, dtype=np.float64))

    def hold(self, positions: np.ndarray) -> None:
        self.publish(self.joint_names, np.asarray(positions, dtype=np.float64))
