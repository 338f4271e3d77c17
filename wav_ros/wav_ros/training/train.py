"""Train WAV (tokenizer → video → value → action) or the direct baseline on a LeRobot dataset.

CPU (this machine):
    python -m wav_ros.training.train --dataset outputs/data/aloha --stage all \
        --out outputs/runs/wav_tiny --steps 1000
Several GPUs (same command under accelerate; one process per GPU, batch per process):
    accelerate launch --multi_gpu --num_processes 4 -m wav_ros.training.train \
        --dataset data/aloha --stage all --out runs/wav --steps 20000 --batch-size 64
Direct baseline (same data, loop and budget; reuses the WAV run's frozen VAE):
    python -m wav_ros.training.train --policy direct --stage action --steps 3000 \
        --init outputs/runs/wav_tiny/stages/action/final \
        --dataset outputs/data/aloha --out outputs/runs/direct

Rerunning a command resumes each stage from its newest checkpoint (--no-resume starts over).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wav_ros.model.configuration_wav import VALUE_CONDITIONING
from wav_ros.training.config import WAV_STAGES, TrainConfig
from wav_ros.training.data import IMITATE, DataConfig


def _stage_steps(values: list[str]) -> dict[str, int]:
    steps = {}
    for item in values:
        stage, sep, count = item.partition("=")
        if not sep or not count.isdigit():
            raise SystemExit(f"--stage-steps takes stage=N, got {item!r}")
        steps[stage] = int(count)
    return steps


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        nargs="+",
        required=True,
        help="LeRobot v2.x dataset root(s); several are trained on as one",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument(
        "--stage",
        default="all",
        choices=(*WAV_STAGES, "all"),
        help="one stage, or all of them in order",
    )
    parser.add_argument("--policy", default="wav", choices=("wav", "direct"))
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per stage")
    parser.add_argument(
        "--stage-steps",
        nargs="*",
        default=[],
        metavar="STAGE=N",
        help="per-stage overrides of --steps, e.g. tokenizer=300 action=2000",
    )
    parser.add_argument("--model", default="tiny", help="tiny, base or a WAVConfig JSON file")
    parser.add_argument(
        "--init", type=Path, default=None, help="save_pretrained folder to start from"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--ema-decay",
        type=float,
        default=0.0,
        help="save an exponential moving average of the weights (e.g. 0.999; 0: off)",
    )
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="closed-loop evaluation every N action-stage steps (0: off)",
    )
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--eval-tasks", nargs="+", default=["transfer_cube"])
    parser.add_argument(
        "--frame-stride", type=int, default=1, help="windows start at every k-th frame"
    )
    parser.add_argument("--max-episodes", type=int, default=None)
    parser.add_argument(
        "--imitate",
        choices=IMITATE,
        default="all",
        help="episodes the action stage imitates (successful: not the failed rollouts, which "
        "the video and value stages still see)",
    )
    parser.add_argument(
        "--state-noise",
        type=float,
        default=0.0,
        help="std (rad) of noise on the action stage's joint-state input, so that the policy "
        "reads the cameras instead of continuing from wherever the arms are (0: none)",
    )
    parser.add_argument(
        "--latent-cache",
        type=Path,
        default=None,
        help="folder of cached VAE latents, one file per dataset (default: OUT/latents); "
        "runs with the same tokenizer may share one and then neither read the images of nor "
        "encode the datasets cached in it",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch threads per process (1 is fastest on a shared CPU)",
    )
    parser.add_argument(
        "--value-conditioning",
        choices=VALUE_CONDITIONING,
        default=None,
        help="value chunk the action stage trains on (default: the model's own setting)",
    )
    parser.add_argument(
        "--feature-noise-level",
        type=float,
        default=None,
        help="noise level of the video features the value and action experts read (1: the "
        "paper's pure-noise pass; below 1: imagined futures); needs the value stage",
    )
    parser.add_argument(
        "--video-loss-weight",
        type=float,
        default=None,
        help="the action stage trains the video expert too: the action loss through its "
        "features plus this weight times its own flow-matching loss (default: the model's "
        "own setting; frozen unless set)",
    )
    parser.add_argument(
        "--action-size",
        type=int,
        nargs=2,
        metavar=("WIDTH", "HEADS"),
        default=None,
        help="train a fresh action expert of this width and head count on the --init "
        "checkpoint's tokenizer, video and value experts (default: the model's own expert)",
    )
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.policy == "direct":
        stages: tuple[str, ...] = ("action",)
        if args.stage not in ("action", "all"):
            parser.error("the direct baseline has only the action stage")
    else:
        stages = WAV_STAGES if args.stage == "all" else (args.stage,)
    steps = {stage: args.steps for stage in stages}
    steps.update(_stage_steps(args.stage_steps))
    return TrainConfig(
        datasets=tuple(args.dataset),
        out=args.out,
        stages=stages,
        steps=steps,
        policy=args.policy,
        model=args.model,
        init=args.init,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup,
        ema_decay=args.ema_decay,
        save_every=args.save_every,
        log_every=args.log_every,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        eval_tasks=tuple(args.eval_tasks),
        seed=args.seed,
        resume=not args.no_resume,
        data=DataConfig(
            frame_stride=args.frame_stride,
            max_episodes=args.max_episodes,
            imitate=args.imitate,
            state_noise=args.state_noise,
        ),
        latent_cache=args.latent_cache,
        mixed_precision=args.mixed_precision,
        progress=not args.no_progress,
        torch_threads=args.torch_threads,
        value_conditioning=args.value_conditioning,
        feature_noise_level=args.feature_noise_level,
        video_loss_weight=args.video_loss_weight,
        action_size=args.action_size,
    )


def main(argv: list[str] | None = None) -> None:
    from wav_ros.training.trainer import Trainer

    Trainer(parse_args(argv)).run()


if __name__ == "__main__":
    main()
