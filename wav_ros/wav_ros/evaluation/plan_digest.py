"""Whether two machines, or two versions of the code, compute the same plans, bit for bit.

    python -m wav_ros.evaluation.plan_digest --save plans.npy
    ATEN_CPU_CAPABILITY=avx2 python -m wav_ros.evaluation.plan_digest --compare plans.npy

Plans the checkpoint's chunks on fixed layouts (one torch thread, a fixed planner seed) and
prints their sha256; `--save` keeps the chunks and `--compare` prints the largest difference
from saved ones. The harness's episodes are exact on one machine; a plan that differs in its
last bits (torch picks its CPU kernels by vector instruction set) can turn a closed-loop
episode into another outcome (reports/training/notes.md, round 23).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

from wav_ros import SHIPPED_CHECKPOINT
from wav_ros.model.modeling_wav import resize_images
from wav_ros.sim import TASKS, make_env
from wav_ros.training.policies import load_policy


def plan_chunks(checkpoint: Path, task: str, seeds: list[int]) -> np.ndarray:
    """(len(seeds), T, J) chunks the checkpoint plans from each layout's first observation."""
    torch.set_num_threads(1)
    policy = load_policy(checkpoint)
    env = make_env(task)
    instruction = TASKS[task].instructions[0]
    chunks = []
    for seed in seeds:
        observation = env.reset(seed=seed, instruction=instruction)
        images = resize_images(observation.images, policy.config.tokenizer.image_size)
        chunks.append(policy.plan(images, observation.qpos, instruction, seed=0).actions)
    env.close()
    return np.stack(chunks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--task", default="insertion", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1003, 1010])
    parser.add_argument("--save", type=Path, help="write the chunks to this .npy file")
    parser.add_argument("--compare", type=Path, help="a .npy file written by --save")
    args = parser.parse_args(argv)
    chunks = plan_chunks(args.checkpoint, args.task, args.seeds)
    digest = hashlib.sha256(np.ascontiguousarray(chunks).tobytes()).hexdigest()[:16]
    print(f"plans of {args.task} seeds {args.seeds}: sha256 {digest}, torch CPU kernels "
          f"{torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    if args.save:
        np.save(args.save, chunks)
    if args.compare:
        saved = np.load(args.compare)
        if saved.shape != chunks.shape:
            raise SystemExit(
                f"{args.compare} holds chunks of shape {saved.shape}, not {chunks.shape}"
            )
        print(f"largest difference from {args.compare}: {np.abs(saved - chunks).max():.3g}")


if __name__ == "__main__":
    main()
