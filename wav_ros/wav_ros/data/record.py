"""Record scripted demonstrations of the ALOHA tasks into a LeRobot dataset.

python -m wav_ros.data.record --task transfer_cube insertion --episodes 50 \
    --noise 0.03 --perturbation mild --noisy-fraction 0.3 --out data/aloha_demos

Noisy/perturbed episodes fail sometimes on purpose: value labels need both outcomes. Episodes
stop `--after-success` steps after the task is first solved (or at the task's step limit).
With `--max-settle-steps N`, each episode starts after the scene has rested a random 0..N
control periods (`Env.settle`), as a real robot starts; without, the expert moves at the first
step, before gravity acts (reports/training/notes.md, round 13).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wav_ros.data.lerobot_format import Episode, LeRobotDatasetWriter, WriterConfig
from wav_ros.robot_description import CAMERA_NAMES, CONTROL_HZ, JOINT_NAMES
from wav_ros.sim.env import BimanualEnv, make_env
from wav_ros.sim.experts import ScriptedExpert, make_expert


@dataclass
class RecordConfig:
    """What to record."""

    tasks: tuple[str, ...]
    """Task names (wav_ros.sim.TASKS); `episodes` of each."""
    episodes: int
    """Episodes per task."""
    out: Path
    """Dataset root."""
    seed: int = 0
    """Episode i of a task uses layout seed `seed + i`."""
    noise: float = 0.0
    """Joint-noise std (rad) of the noisy episodes."""
    perturbation: str = "none"
    """Perturbation preset of the noisy episodes (none, mild, strong)."""
    noisy_fraction: float = 1.0
    """Fraction of episodes that get the noise and perturbation (the rest are clean)."""
    image_size: tuple[int, int] = (128, 128)
    """Camera (height, width)."""
    image_mode: str = "image"
    """`image` (lossless PNG) or `video` (mp4)."""
    after_success: int = 25
    """Steps kept after the first success, so the solved state is seen."""
    gamma: float = 0.99
    """Discount of the value labels."""
    max_settle_steps: int = 0
    """Each episode first rests a random 0..max_settle_steps control periods, unrecorded."""
    layout_margin: float = 0.0
    """Metres by which each task's layout box is widened on every side (SimConfig)."""
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if not 0.0 <= self.noisy_fraction <= 1.0:
            raise ValueError(f"noisy_fraction must be in [0, 1], got {self.noisy_fraction}")
        if self.after_success < 0:
            raise ValueError(f"after_success must be >= 0, got {self.after_success}")
        if self.max_settle_steps < 0:
            raise ValueError(f"max_settle_steps must be >= 0, got {self.max_settle_steps}")


def record_episode(
    env: BimanualEnv,
    expert: ScriptedExpert,
    seed: int,
    after_success: int,
    settle_steps: int = 0,
) -> Episode:
    """Run the expert from layout `seed`, keeping every frame it saw and every action it took;
    with `settle_steps`, from the scene settled that long at rest (not recorded)."""
    obs = env.reset(seed=seed, settle_steps=settle_steps)
    expert.reset(env)
    images: dict[str, list[np.ndarray]] = {c: [] for c in env.config.cameras}
    states, actions, rewards, successes = [], [], [], []
    solved_at: int | None = None
    for t in range(env.max_steps):
        action = expert.select_action(obs)
        for camera, image in obs.images.items():
            images[camera].append(image)
        states.append(obs.qpos)
        actions.append(action)
        result = env.step(action)
        if result.info["success"] and solved_at is None:
            solved_at = t
        rewards.append(1.0 if solved_at is not None else result.reward)
        successes.append(solved_at is not None)
        obs = result.observation
        if result.truncated or (solved_at is not None and t - solved_at >= after_success):
            break
    return Episode(
        images={c: np.stack(frames) for c, frames in images.items()},
        state=np.stack(states),
        action=np.stack(actions),
        reward=np.asarray(rewards, dtype=np.float32),
        success=np.asarray(successes),
        task=env.instruction,
    )


def record(config: RecordConfig) -> Path:
    writer = LeRobotDatasetWriter(
        config.out,
        WriterConfig(
            fps=int(CONTROL_HZ),
            robot_type="aloha",
            state_names=JOINT_NAMES,
            image_mode=config.image_mode,
            gamma=config.gamma,
            overwrite=config.overwrite,
        ),
    )
    rng = np.random.default_rng(config.seed)
    for task in config.tasks:
        env = make_env(
            task,
            image_size=config.image_size,
            cameras=CAMERA_NAMES,
            terminate_on_success=False,
            layout_margin=config.layout_margin,
        )
        clean = make_expert(task, seed=int(rng.integers(2**31)))
        noisy = make_expert(
            task,
            noise_std=config.noise,
            perturbation=config.perturbation,
            seed=int(rng.integers(2**31)),
        )
        try:
            for i in range(config.episodes):
                expert = noisy if rng.random() < config.noisy_fraction else clean
                # Drawn only when asked for, so that recordings without it stay reproducible.
                settle = (
                    int(rng.integers(config.max_settle_steps + 1)) if config.max_settle_steps else 0
                )
                episode = record_episode(
                    env, expert, config.seed + i, config.after_success, settle_steps=settle
                )
                index = writer.add_episode(episode)
                success = bool(episode.success[-1])
                print(f"{task} episode {index}: {len(episode.action)} steps, success={success}")
        finally:
            env.close()
    return writer.finalize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--task", nargs="+", required=True)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--perturbation", default="none")
    parser.add_argument("--noisy-fraction", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument(
        "--video", action="store_true", help="mp4 per episode (lossy) instead of PNG"
    )
    parser.add_argument("--after-success", type=int, default=25)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument(
        "--max-settle-steps",
        type=int,
        default=0,
        help="each episode first rests a random 0..N control periods (a real robot's start)",
    )
    parser.add_argument(
        "--layout-margin",
        type=float,
        default=0.0,
        help="widen each task's layout box by this many metres on every side (evaluation: 0)",
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    root = record(
        RecordConfig(
            tasks=tuple(args.task),
            episodes=args.episodes,
            out=args.out,
            seed=args.seed,
            noise=args.noise,
            perturbation=args.perturbation,
            noisy_fraction=args.noisy_fraction,
            image_size=tuple(args.image_size),
            image_mode="video" if args.video else "image",
            after_success=args.after_success,
            gamma=args.gamma,
            max_settle_steps=args.max_settle_steps,
            layout_margin=args.layout_margin,
            overwrite=args.overwrite,
        )
    )
    print(f"wrote {root}")


if __name__ == "__main__":
    main()
