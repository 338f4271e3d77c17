"""CLI: python -m wav_ros.evaluation --policy expert --tasks transfer_cube insertion --episodes 100

--policy is `expert`, `hold_still`, or `package.module:factory` (a picklable callable returning
a Policy, e.g. the WAV inference API's), called with the --policy-arg NAME=VALUE keywords
(VALUE read as JSON when it parses, else as a string). LIBERO: --tasks libero_spatial --trials 5.
For example, WAV without planning holding 6 steps before each chunk:

  python -m wav_ros.evaluation --policy wav_ros.training.policies:make_eval_policy \
      --policy-arg checkpoint=wav_ros/wav_ros/checkpoints/wav_tiny --policy-arg planning=false \
      --policy-arg hold_steps=6 --tasks transfer_cube --episodes 20 --seed 1000 --no-videos
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
from collections.abc import Callable

from wav_ros.evaluation.harness import evaluate
from wav_ros.evaluation.interrupt import exit_on_sigterm
from wav_ros.evaluation.policies import HoldStillPolicy, Policy, ScriptedExpertPolicy


def policy_keywords(pairs: list[str]) -> dict[str, object]:
    """NAME=VALUE pairs → keywords; VALUE is JSON when it parses (6, false, 0.5), else a string."""
    keywords: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--policy-arg must be NAME=VALUE, got {pair!r}")
        try:
            keywords[name] = json.loads(value)
        except json.JSONDecodeError:
            keywords[name] = value
    return keywords


def policy_factory(
    spec: str, noise: float, perturbation: str, seed: int, keywords: dict[str, object]
) -> Callable[[], Policy]:
    if keywords and spec in ("expert", "hold_still"):
        raise SystemExit("--policy-arg is for module:factory policies")
    if spec == "expert":
        return functools.partial(
            ScriptedExpertPolicy, noise_std=noise, perturbation=perturbation, seed=seed
        )
    if spec == "hold_still":
        return HoldStillPolicy
    module, sep, name = spec.partition(":")
    if not sep:
        raise SystemExit(f"--policy must be expert, hold_still or module:factory, got {spec!r}")
    return functools.partial(getattr(importlib.import_module(module), name), **keywords)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--policy", default="expert")
    parser.add_argument("--policy-arg", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task")
    parser.add_argument("--trials", type=int, default=None, help="alias of --episodes (LIBERO)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="eval_out")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-videos", action="store_true")
    parser.add_argument("--image-size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument(
        "--settle-steps",
        type=int,
        default=0,
        help="control periods the scene settles at rest after each reset (a real robot's start)",
    )
    parser.add_argument("--noise", type=float, default=0.0, help="expert joint noise std (rad)")
    parser.add_argument("--perturbation", default="none", help="expert preset: none, mild, strong")
    args = parser.parse_args(argv)
    results = evaluate(
        policy_factory(
            args.policy, args.noise, args.perturbation, args.seed, policy_keywords(args.policy_arg)
        ),
        tasks=args.tasks,
        episodes=args.trials or args.episodes,
        seed=args.seed,
        out_dir=args.out,
        workers=args.workers,
        save_videos=not args.no_videos,
        image_size=tuple(args.image_size),
        max_steps=args.max_steps,
        settle_steps=args.settle_steps,
        policy_id=" ".join(
            [
                args.policy,
                *args.policy_arg,
                f"noise={args.noise} perturbation={args.perturbation} seed={args.seed}",
                *([f"settle_steps={args.settle_steps}"] if args.settle_steps else []),
            ]
        ),
    )
    print(results.to_markdown(), end="")


if __name__ == "__main__":
    exit_on_sigterm()
    main()
