"""The interface between the execution session and whatever moves the arms."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from wav_ros.execution.trajectory import JointTrajectoryData


class ExecutionBackend(ABC):
    """Something that moves the arms: a simulation, ros2_control, MoveIt.

    Backends come in two kinds. Streaming backends (`streams_commands = True`) get one
    position command per control tick through `send`. Chunk backends hand a whole trajectory
    to a controller that interpolates it (`send_trajectory`); the session still checks every
    sample of that trajectory and monitors it each tick. Backends never decide what is safe:
    the session calls them only with commands and trajectories that passed the safety checks.
    """

    streams_commands: bool = True
    """True: `send` is called every tick; False: `send_trajectory` once per accepted chunk."""

    def __init__(self, joint_names: tuple[str, ...]) -> None:
        self.joint_names = tuple(joint_names)

    @abstractmethod
    def read_state(self, now: float) -> np.ndarray | None:
        """Measured joint positions in `joint_names` order, or None if unknown or too old."""

    def send(self, positions: np.ndarray, joint_names: tuple[str, ...]) -> None:
        """Command one set of joint positions (streaming backends)."""
        raise NotImplementedError(f"{type(self).__name__} does not stream commands")

    def send_trajectory(self, trajectory: JointTrajectoryData) -> None:
        """Hand a checked trajectory, starting now, to the controller (chunk backends)."""
        raise NotImplementedError(f"{type(self).__name__} does not take trajectories")

    @abstractmethod
    def hold(self, positions: np.ndarray) -> None:
        """Stop any motion in progress and keep the arms at `positions`."""

    def stop(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release what the backend holds (connections, threads); the session is done."""

    def _check_names(self, joint_names: tuple[str, ...]) -> None:
        if tuple(joint_names) != self.joint_names:
            raise ValueError(
                f"{type(self).__name__} commands {self.joint_names}, got {tuple(joint_names)}"
            )


class IdealArmBackend(ExecutionBackend):
    """Arms that reach every command at once: a dry run, and the benchmark's no-op arm.

    Useful to run the executor without hardware or physics: the measured state is the last
    command, so tracking error is zero and everything else (safety, blending, timing) is real.
    """

    def __init__(self, joint_names: tuple[str, ...], initial_positions: np.ndarray) -> None:
        super().__init__(joint_names)
        initial = np.array(initial_positions, dtype=np.float64)
        if initial.shape != (len(self.joint_names),):
            raise ValueError(
                f"initial_positions must have shape ({len(self.joint_names)},), got {initial.shape}"
            )
        self.positions = initial
        self.commands_sent = 0

    def read_state(self, now: float) -> np.ndarray | None:
        return self.positions.copy()

    def send(self, positions: np.ndarray, joint_names: tuple[str, ...]) -> None:
        self._check_names(joint_names)
        self.positions = np.array(positions, dtype=np.float64)
        self.commands_sent += 1

    def hold(self, positions: np.ndarray) -> None:
        self.positions = np.array(positions, dtype=np.float64)
