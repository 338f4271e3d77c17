"""A fixed-rate loop on a thread of its own, for the code that must keep the control rate.

The simulation bridge and the action executor step at CONTROL_HZ on absolute deadlines, so
their period does not drift and does not depend on how busy a ROS executor is with other
callbacks (a timer callback waits behind every message the executor dispatches first).
An overrun step is not caught up on: the next step starts as soon as possible, and the
deadlines restart from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ControlLoop:
    """Calls `step()` every 1/`hz` seconds on a daemon thread until `stop()`.

    `keep_running` (checked before each step) ends the loop from outside too, e.g. when the
    ROS context shuts down. An exception in `step` ends the loop, is passed to `on_error` at
    once and is re-raised by `stop()`, so a crashed loop is never silent; one raised while the
    loop is being stopped is the stop, not a failure.
    """

    def __init__(
        self,
        hz: float,
        step: Callable[[], None],
        *,
        name: str,
        keep_running: Callable[[], bool] = lambda: True,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if hz <= 0:
            raise ValueError(f"hz must be > 0, got {hz}")
        self.period = 1.0 / hz
        self._step = step
        self._keep_running = keep_running
        self._on_error = on_error
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> ControlLoop:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._error is not None:
            raise RuntimeError(f"{self._thread.name} loop failed") from self._error

    def _run(self) -> None:
        deadline = time.monotonic()
        try:
            while not self._stopping.is_set() and self._keep_running():
                self._step()
                deadline += self.period
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._stopping.wait(delay)
                else:
                    deadline = time.monotonic()
        except BaseException as error:  # reported by on_error and stop()
            if self._stopping.is_set() or not self._keep_running():
                return  # stopped mid-step (e.g. a publisher's context shut down): not a failure
            self._error = error
            if self._on_error is not None:
                self._on_error(error)
