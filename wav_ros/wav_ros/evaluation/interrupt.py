"""SIGTERM for the evaluation entry points: exit through Python, so worker pools stop too.

The default SIGTERM (`kill`, `timeout`, a job scheduler) ends the main process at once, and
`evaluate`'s spawned workers would run on through their whole episode shards. A SystemExit
instead unwinds the `with Pool` block, which terminates them, and the graph evaluation's
`finally`, which stops the bringup it started. Entry points call this; the library does not.
"""

from __future__ import annotations

import signal
from types import FrameType


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread."""
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
