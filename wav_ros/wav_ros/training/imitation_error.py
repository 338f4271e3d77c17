"""How closely each checkpoint reproduces the demonstrated action chunks, open loop.

    python -m wav_ros.training.imitation_error --dataset outputs/data/aloha_tc_ins \
        --checkpoint wav_ros/wav_ros/checkpoints/wav_tiny --checkpoint reports/baselines/direct_tiny

For windows of the dataset (seeded), the mean absolute error in radians between a policy's
chunk and the demonstrated one, next to holding still (the chunk's floor). A policy far from its
demonstrations here is under-trained; one close here but failing in closed loop suffers from
compounding errors instead. For WAV it also decodes with the TRUE value chunk in place of the
value expert's sample: the gap between the two rows is what the value sampler costs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wav_ros.model import WAVPolicy
from wav_ros.model.flow_matching import random_normal
from wav_ros.model.modeling_wav import ValueFeatures
from wav_ros.training.data import DataConfig, WindowStore
from wav_ros.training.policies import NO_PLANNING, checkpoint_tool_parser, load_policy


@torch.no_grad()
def imitation_errors(
    dataset: Path, checkpoints: list[Path], windows: int = 48, seed: int = 0
) -> dict[str, float]:
    """Row name -> mean |action - demonstrated action| (rad) over `windows` dataset windows."""
    models = {str(path): load_policy(path, NO_PLANNING) for path in checkpoints}
    config = next(iter(models.values())).config
    store = WindowStore.from_dataset(dataset, config, DataConfig(frame_stride=8))
    batch = store.batch(windows, seed=seed, step=0, images=True)
    errors: dict[str, list[float]] = {"hold still": []}
    for i in range(windows):
        images = {
            name: batch["images"][i, view, : config.memory_frames].numpy()
            for view, name in enumerate(config.camera_names)
        }
        state, demonstrated = batch["state"][i].numpy(), batch["actions"][i].numpy()
        instruction = batch["instruction"][i]
        errors["hold still"].append(float(np.abs(demonstrated - state).mean()))
        for name, model in models.items():
            if isinstance(model, WAVPolicy):
                plan = model.plan(images, state, instruction, NO_PLANNING, seed=seed + i)
                errors.setdefault(f"{name} (K=0)", []).append(_error(plan.actions, demonstrated))
                with_true_value = _decode_with_true_values(
                    model, images, state, instruction, batch["values"][i], seed + i
                )
                row = f"{name} (true value chunk)"
                errors.setdefault(row, []).append(_error(with_true_value, demonstrated))
            else:
                chunk = model.predict_chunk(images, state, instruction)
                errors.setdefault(name, []).append(_error(chunk, demonstrated))
    return {name: float(np.mean(values)) for name, values in errors.items()}


def _error(actions: np.ndarray, demonstrated: np.ndarray) -> float:
    return float(np.abs(np.asarray(actions) - demonstrated).mean())


def _decode_with_true_values(
    model: WAVPolicy,
    images: dict[str, np.ndarray],
    state: np.ndarray,
    instruction: str,
    values: torch.Tensor,
    seed: int,
) -> np.ndarray:
    """Decode one chunk with the value features of the demonstrated value chunk."""
    context = model.encode_observation(images, state, instruction)
    generator = torch.Generator().manual_seed(seed)
    noise = random_normal((1, *model.config.video_noise_shape), generator, model.device)
    video = model.imagine(context, noise)
    normalized = model.normalizer.normalize_value(values[None].float().to(model.device))
    hidden = model.clean_value_features(video.hidden_states, normalized)
    return model.decode_actions(context, video, ValueFeatures(hidden[:, None]), generator)


def main(argv: list[str] | None = None) -> None:
    parser = checkpoint_tool_parser(__doc__)
    parser.add_argument("--windows", type=int, default=48)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    errors = imitation_errors(args.dataset, args.checkpoint, args.windows, args.seed)
    print("| policy | mean abs. error per joint and step (rad) |\n|---|---:|")
    for name, error in errors.items():
        print(f"| {name} | {error:.4f} |")


if __name__ == "__main__":
    main()
