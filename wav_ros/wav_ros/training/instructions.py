"""Precompute the instruction embeddings of datasets, for a machine without the text encoder.

    python -m wav_ros.training.instructions --dataset outputs/data/aloha_tc_ins \\
        --out outputs/instruction_embeddings.safetensors

Run it where the encoder is installed; carry the file to the GPU node (or robot PC) and set
`WAV_INSTRUCTION_EMBEDDINGS=<file>` there: training and planning on those instructions then
never load the encoder (`wav_ros.model.text_encoder`). `--task` adds every instruction a sim
task may draw (for evaluating there), `--checkpoint` takes the encoder settings from a
checkpoint instead of the default model's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wav_ros.data.lerobot_format import LeRobotDataset
from wav_ros.model import WAVConfig
from wav_ros.model.text_encoder import save_instruction_embeddings
from wav_ros.sim import TASKS
from wav_ros.training.policies import load_policy


def dataset_instructions(roots: list[Path]) -> list[str]:
    """Every instruction of the datasets, in order of first appearance."""
    return list(dict.fromkeys(t for root in roots for t in LeRobotDataset(root).tasks.values()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, nargs="*", default=[], help="LeRobot roots")
    parser.add_argument(
        "--task",
        nargs="*",
        default=[],
        choices=sorted(TASKS),
        help="add these sim tasks' instructions",
    )
    parser.add_argument(
        "--instruction", action="append", default=[], help="an instruction to add (repeatable)"
    )
    parser.add_argument("--checkpoint", type=Path, help="use this checkpoint's text encoder")
    parser.add_argument("--out", type=Path, required=True, help="safetensors file to write")
    args = parser.parse_args(argv)
    tasks = [text for task in args.task for text in TASKS[task].instructions]
    instructions = dataset_instructions(args.dataset) + tasks + args.instruction
    if not instructions:
        parser.error("no instructions: name a --dataset, a --task or an --instruction")
    # WAV and direct checkpoints both keep their WAVConfig as `.config`.
    config = load_policy(args.checkpoint).config if args.checkpoint else WAVConfig()
    out = save_instruction_embeddings(args.out, instructions, config.text_encoder)
    print(f"wrote the embeddings of {len(set(instructions))} instruction(s) to {out}")


if __name__ == "__main__":
    main()
