"""Shared pytest set-up: an isolated ROS 2 graph per test session and helpers to run peers.

Every test session gets its own ROS_DOMAIN_ID and localhost-only discovery, so parallel
sessions (and other developers' processes on the machine) never see each other's nodes.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Set before rclpy is imported anywhere in this process or in the peers it spawns.
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# One math thread per process: multi-process tests run several model processes on two cores,
# where PyTorch's per-core thread pools fight each other (20-50x slower measured here).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Offscreen MuJoCo on the CPU (EGL needs a GPU device); must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEST_DIR = Path(__file__).resolve().parent


def ros_available() -> bool:
    """True when rclpy and the built wav_interfaces import (the ML core tests don't need them)."""
    try:
        import rclpy  # noqa: F401

        import wav_interfaces.msg  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in an ini file, so `colcon test` (run from wav_ros/) knows them too.
    config.addinivalue_line("markers", "ros: needs rclpy and the built wav_interfaces")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ros_available():
        return
    skip = pytest.mark.skip(reason="rclpy or wav_interfaces not importable: source the overlay")
    for item in items:
        if "ros" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def ros_context() -> Iterator[None]:
    """rclpy initialised (default context) for one test, shut down afterwards."""
    import rclpy

    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


class Peer:
    """A child process of this test session; its output is collected for failure messages."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_line(self, marker: str, timeout: float = 60.0) -> None:
        """Block until the peer prints a line containing `marker`; fail with its output if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if marker in line:
                return
        raise AssertionError(
            f"peer {self.process.args} did not print {marker!r} (exit code "
            f"{self.process.poll()}):\n{''.join(self.output)}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def spawn_peer() -> Iterator[Callable[..., Peer]]:
    """Start Python peer processes (scripts or `-m module`) in this session's ROS graph."""
    peers: list[Peer] = []

    def spawn(*args: str, ready: str | None = "ready") -> Peer:
        peer = Peer([sys.executable, *args])
        peers.append(peer)
        if ready is not None:
            peer.wait_for_line(ready)
        return peer

    yield spawn
    for peer in peers:
        peer.stop()


class ProcessTable:
    """Reads of Linux's /proc, for tests that check no process outlives the one that ran it."""

    @staticmethod
    def children(pid: int) -> list[int]:
        """The processes `pid` started (its direct children)."""
        return [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]

    @staticmethod
    def _fields(stat: Path) -> list[str] | None:
        """/proc/<pid>/stat after the command name (state first), None once it has gone."""
        try:
            return stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return None

    def alive(self, pid: int) -> bool:
        """Running, not a zombie (an orphan may never be reaped in a container)."""
        fields = self._fields(Path(f"/proc/{pid}/stat"))
        return fields is not None and fields[0] != "Z"

    def group(self, pgid: int) -> list[int]:
        """The live processes of a process group."""
        members = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            fields = self._fields(stat)
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
        return members


@pytest.fixture
def process_table() -> ProcessTable:
    if not Path("/proc/self/task").is_dir():
        pytest.skip("reads /proc (Linux)")
    return ProcessTable()
