"""Env steps per second of the ALOHA simulation, with all cameras and without, vs stock gym-aloha.

python benchmarks/bench_sim.py [--steps 200] [--no-stock]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np

from wav_ros.sim import make_env
from wav_ros.sim.experts import make_expert


def rate(
    task: str, steps: int, image_size: tuple[int, int], cameras: tuple[str, ...] | None
) -> float:
    """Steps/s of an expert episode (physics + rendering; the expert's planning is excluded)."""
    kwargs = {} if cameras is None else {"cameras": cameras}
    env = make_env(task, image_size=image_size, terminate_on_success=False, **kwargs)
    expert = make_expert(task)
    obs = env.reset(seed=0)
    expert.reset(env)
    actions = [expert.select_action(obs) for _ in range(steps)]
    env.reset(seed=0)
    env.step(actions[0])  # first render creates the GL context
    start = time.perf_counter()
    for action in actions[1:]:
        env.step(action)
    elapsed = time.perf_counter() - start
    env.close()
    return (steps - 1) / elapsed


def stock_gym_aloha_rate(steps: int) -> float | None:
    try:
        import gym_aloha  # noqa: F401  (registers the envs)
        import gymnasium as gym
    except ImportError:
        return None
    env = gym.make("gym_aloha/AlohaTransferCube-v0")
    env.reset(seed=0)
    action = np.array([0, -0.96, 1.16, 0, -0.3, 0, 1] * 2, dtype=np.float64)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-stock", action="store_true")
    args = parser.parse_args()
    print(f"MUJOCO_GL={os.environ['MUJOCO_GL']}, {os.cpu_count()} CPUs, {args.steps} steps each")
    for task in ("transfer_cube", "bin_sequence"):
        for label, size, cameras in (
            ("3 cameras 128x128 (default)", (128, 128), None),
            ("3 cameras 64x64", (64, 64), None),
            ("3 cameras 224x224", (224, 224), None),
            ("cam_high only 128x128", (128, 128), ("cam_high",)),
            ("physics only (no cameras)", (128, 128), ()),
        ):
            print(f"{task:14s} {label:30s} {rate(task, args.steps, size, cameras):7.1f} steps/s")
    if not args.no_stock:
        stock = stock_gym_aloha_rate(min(args.steps, 40))
        text = "not installed (gymnasium missing)" if stock is None else f"{stock:7.1f} steps/s"
        print(f"stock gym-aloha TransferCube (3 x 640x480, shadows)  {text}")


if __name__ == "__main__":
    main()
