"""Joining a new trajectory chunk onto the remainder of the one being executed.

A new chunk rarely starts exactly where the arms are commanded: the planner worked from an
older observation. Switching at once would jump; instead the command moves from the old path
to the new one over a blending window, with the velocity across the seam inside the limits.
"""

from __future__ import annotations

import math

import numpy as np

from wav_ros.execution.limits import SafetyLimits
from wav_ros.execution.safety import Refusal, RefusalCode, RefusedError
from wav_ros.execution.trajectory import JointTrajectoryData


def _smoothstep(fraction: np.ndarray) -> np.ndarray:
    """0 → 1 with zero slope at both ends, so the blend adds no velocity step at its edges."""
    return fraction * fraction * (3.0 - 2.0 * fraction)


def _blend_once(
    previous: JointTrajectoryData | None,
    new: JointTrajectoryData,
    start_time: float,
    start_positions: np.ndarray,
    window: float,
    dt: float,
    follow_previous: bool,
) -> JointTrajectoryData:
    steps = max(1, math.ceil(window / dt - 1e-9))
    grid = np.arange(steps + 1) * dt
    absolute = start_time + grid
    target = np.stack([new.sample(t - new.stamp) for t in absolute])
    weight = _smoothstep(grid / grid[-1])[:, None]
    if follow_previous:
        # Holding still is following a constant path: the blend is then a convex mix of the
        # held position and the new path, which stays inside any position limits both obey.
        old = (
            np.stack([previous.sample(t - previous.stamp) for t in absolute])
            if previous is not None
            else np.repeat(start_positions[None], len(absolute), axis=0)
        )
        blended = old + weight * (target - old)
    else:
        blended = target + (1.0 - weight) * (start_positions - target[0])
    blended[0] = start_positions
    blended[-1] = target[-1]
    later = new.stamp + new.times_from_start > absolute[-1]
    times = np.concatenate([grid, new.stamp + new.times_from_start[later] - start_time])
    positions = np.vstack([blended, new.positions[later]])
    return JointTrajectoryData(new.joint_names, times, positions, start_time)


def _blend_refusal(
    blended: JointTrajectoryData, limits: SafetyLimits, window: float
) -> Refusal | None:
    positions = blended.positions
    outside = (positions < limits.lower - limits.tolerance) | (
        positions > limits.upper + limits.tolerance
    )
    if np.any(outside):
        column = int(np.flatnonzero(np.any(outside, axis=0))[0])
        return Refusal(
            RefusalCode.BLEND,
            f"cannot join the new chunk within {window:.3f} s: joint "
            f"{limits.joint_names[column]!r} would leave [{limits.lower[column]}, "
            f"{limits.upper[column]}]",
        )
    speeds = np.abs(np.diff(positions, axis=0)) / np.diff(blended.times_from_start)[:, None]
    excess = speeds - limits.velocity - limits.tolerance
    if np.all(excess <= 0):
        return None
    segment, column = np.unravel_index(int(np.argmax(excess)), excess.shape)
    return Refusal(
        RefusalCode.BLEND,
        f"cannot join the new chunk within {window:.3f} s: joint "
        f"{limits.joint_names[column]!r} would move at {speeds[segment, column]:.3f}/s, "
        f"limit {limits.velocity[column]}/s",
    )


def blend_chunks(
    previous: JointTrajectoryData | None,
    new: JointTrajectoryData,
    start_time: float,
    start_positions: np.ndarray,
    limits: SafetyLimits,
    *,
    window: float,
    dt: float,
    max_window: float,
) -> JointTrajectoryData:
    """A trajectory from `start_positions` at `start_time` that converges onto `new`.

    `previous` is the trajectory being executed (None when holding still at
    `start_positions`); `start_time`/`start_positions` are the time and value of the last
    command sent, so the result continues exactly from it. After the blending window the
    result is `new` itself. Both inputs must already have passed the gate.

    Two blends are tried, each with the window doubled up to `max_window` while some joint
    would exceed its limits. A path blend: the command moves from the remainder of `previous`
    (or from `start_positions` held, when there is none) to `new` with a smoothstep weight, so
    the velocity is continuous at the seam; tried first while a trajectory runs.
    An offset blend: `new` plus the seam offset decaying to zero, whose extra speed depends
    only on the offset; tried first from rest, since it follows a chunk that starts where the
    arms are exactly. If neither fits, a RefusedError says which joint and how fast.
    """
    if not (0 < dt <= window <= max_window):
        raise ValueError(f"need 0 < dt <= window <= max_window, got {dt}, {window}, {max_window}")
    start = np.asarray(start_positions, dtype=np.float64)
    first_refusal: Refusal | None = None
    # From rest, the offset blend first: a chunk that starts where the arms are is then
    # followed exactly; the convex mix (a path blend from the held position) is the fallback
    # when fading the offset would cross a position limit.
    for follow_previous in (True, False) if previous is not None else (False, True):
        trial = window
        while True:
            blended = _blend_once(previous, new, start_time, start, trial, dt, follow_previous)
            refusal = _blend_refusal(blended, limits, trial)
            if refusal is None:
                return blended
            first_refusal = first_refusal or refusal
            if trial >= max_window:
                break
            trial = min(2.0 * trial, max_window)
    raise RefusedError(first_refusal)
