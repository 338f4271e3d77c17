"""The latest measured joint positions, assembled from joint_states-like messages by name."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class JointStateCache:
    """Keeps the newest position of each commanded joint and says when the set is usable.

    ROS joint_states messages may carry a subset of the joints, in any order, from several
    publishers; the executor needs all of them, recent, in its own order.
    """

    def __init__(self, joint_names: tuple[str, ...], max_age: float) -> None:
        if not (math.isfinite(max_age) and max_age > 0):
            raise ValueError(f"max_age must be finite and > 0, got {max_age}")
        self.joint_names = tuple(joint_names)
        self.max_age = max_age
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self._positions = np.full(len(self.joint_names), np.nan)
        self._stamps = np.full(len(self.joint_names), -np.inf)

    def update(self, names: Sequence[str], positions: Sequence[float], stamp: float) -> None:
        """Record a joint_states message; joints the executor does not command are ignored."""
        if len(names) != len(positions):
            raise ValueError(f"joint state has {len(names)} names but {len(positions)} positions")
        for name, position in zip(names, positions, strict=True):
            index = self._index.get(name)
            if index is not None:
                self._positions[index] = float(position)
                self._stamps[index] = stamp

    def read(self, now: float) -> np.ndarray | None:
        """All positions in `joint_names` order, or None if a joint is missing or too old."""
        if np.any(now - self._stamps > self.max_age):
            return None
        return self._positions.copy()
