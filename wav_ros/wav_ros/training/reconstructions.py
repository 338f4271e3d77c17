"""What a tokenizer keeps of the scene: dataset frames beside their VAE reconstructions.

    python -m wav_ros.training.reconstructions --dataset outputs/data/aloha_tc_ins \
        --checkpoint outputs/runs/wav_tiny/stages/tokenizer/final --out recon.png

Every later stage sees the scene only through these latents: an object missing from the
reconstructions is invisible to the world model, the value expert and the action expert alike.
Each row is one frame: its camera views, then the views as each checkpoint reconstructs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wav_ros.model.tokenizer import VisualTokenizer
from wav_ros.training.data import DataConfig, WindowStore
from wav_ros.training.policies import checkpoint_tool_parser, load_policy


@torch.no_grad()
def reconstruction_grid(
    dataset: Path, checkpoints: list[Path], frames: int = 4, seed: int = 0, scale: int = 2
) -> np.ndarray:
    """uint8 image: one row per sampled frame, the views then each checkpoint's reconstruction."""
    models = [load_policy(path) for path in checkpoints]
    config = models[0].config
    for path, model in zip(checkpoints, models, strict=True):
        if model.config.tokenizer.image_size != config.tokenizer.image_size:
            raise ValueError(f"{path} works at another image size than {checkpoints[0]}")
    store = WindowStore.from_dataset(dataset, config, DataConfig(frame_stride=40))
    images = store.batch(frames, seed=seed, step=0, images=True)["images"][:, :, 0]
    blocks = [images]
    for model in models:
        latents = model.tokenizer.encode(VisualTokenizer.to_pixels(images))
        blocks.append(VisualTokenizer.to_uint8(model.tokenizer.decode(latents)))
    rows = [
        np.concatenate([view for block in blocks for view in block[i].numpy()], 1)
        for i in range(frames)
    ]
    grid = np.concatenate(rows, 0)
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def main(argv: list[str] | None = None) -> None:
    parser = checkpoint_tool_parser(__doc__)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("reconstructions.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from PIL import Image

    grid = reconstruction_grid(args.dataset, args.checkpoint, args.frames, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out)
    print(f"wrote {args.out}: rows are frames; columns the views, then each checkpoint's")


if __name__ == "__main__":
    main()
