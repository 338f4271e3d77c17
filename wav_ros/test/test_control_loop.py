"""ControlLoop: steps until stopped, ends with its context, never fails silently."""

from __future__ import annotations

import threading
import time

import pytest

from wav_ros.control_loop import ControlLoop


def test_steps_repeatedly_until_stopped() -> None:
    stepped = threading.Semaphore(0)
    loop = ControlLoop(200.0, stepped.release, name="test").start()
    for _ in range(5):
        assert stepped.acquire(timeout=5.0), "the loop stopped stepping"
    loop.stop()
    assert not loop.running


def test_keep_running_false_ends_the_loop() -> None:
    steps: list[int] = []
    loop = ControlLoop(
        1000.0, lambda: steps.append(1), name="test", keep_running=lambda: len(steps) < 3
    ).start()
    deadline = time.monotonic() + 5.0
    while loop.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not loop.running
    assert steps == [1, 1, 1]


def test_an_error_in_a_step_is_reported_at_once_and_by_stop() -> None:
    reported: list[BaseException] = []
    done = threading.Event()

    def on_error(error: BaseException) -> None:
        reported.append(error)
        done.set()

    def step() -> None:
        raise ValueError("sensor unplugged")

    loop = ControlLoop(50.0, step, name="test", on_error=on_error).start()
    assert done.wait(5.0)
    assert isinstance(reported[0], ValueError)
    with pytest.raises(RuntimeError, match="test loop failed") as raised:
        loop.stop()
    assert isinstance(raised.value.__cause__, ValueError)


@pytest.mark.parametrize("hz", [0.0, -50.0])
def test_refuses_a_rate_that_is_not_positive(hz: float) -> None:
    with pytest.raises(ValueError, match="hz must be > 0"):
        ControlLoop(hz, lambda: None, name="test")
