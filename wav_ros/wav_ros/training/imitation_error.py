"""How closely each checkpoint reproduces the demonstrated action chunks, open loop, and how
much its chunks follow the joint-state input.

    python -m wav_ros.training.imitation_error --dataset outputs/data/aloha_tc_ins \
        --checkpoint wav_ros/wav_ros/checkpoints/wav_tiny --checkpoint reports/baselines/direct_tiny

For windows of the dataset (seeded), the mean absolute error in radians between a policy's
chunk and the demonstrated one, next to holding still (the chunk's floor). A policy far from its
demonstrations here is under-trained; one close here but failing in closed loop suffers from
compounding errors instead. For WAV it also decodes with the TRUE value chunk in place of the
value expert's sample: the gap between the two rows is what the value sampler costs.

The state gain: each window decoded again with its arm joints' state offset at random (images
unchanged), the change of every chunk step regressed on the offset. Near 1, the chunk is the
state plus a motion and the policy continues from wherever the arms are (re-planned often, it
barely moves); near 0, its targets come from the cameras.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wav_ros.model import WAVPolicy
from wav_ros.model.flow_matching import random_normal
from wav_ros.model.modeling_wav import ValueFeatures
from wav_ros.robot_description import JOINT_NAMES
from wav_ros.training.data import DataConfig, WindowStore
from wav_ros.training.policies import NO_PLANNING, checkpoint_tool_parser, load_policy


@torch.no_grad()
def imitation_errors(
    dataset: Path, checkpoints: list[Path], windows: int = 48, seed: int = 0
) -> dict[str, float]:
    """Row name -> mean |action - demonstrated action| (rad) over `windows` dataset windows."""
    return _imitation_errors(*_load(dataset, checkpoints, windows, seed), seed)


@torch.no_grad()
def state_gains(
    dataset: Path, checkpoints: list[Path], windows: int = 48, seed: int = 0, offset: float = 0.05
) -> dict[str, np.ndarray]:
    """Checkpoint -> per chunk step, the gain of its targets on an offset of the state input."""
    return _state_gains(*_load(dataset, checkpoints, windows, seed), seed, offset)


def _imitation_errors(
    models: dict[str, Any], samples: list[dict[str, Any]], seed: int
) -> dict[str, float]:
    errors: dict[str, list[float]] = {"hold still": []}
    for i, window in enumerate(samples):
        demonstrated, state = window["actions"], window["state"]
        errors["hold still"].append(float(np.abs(demonstrated - state).mean()))
        for name, model in models.items():
            chunk = _chunk(model, window, seed + i)
            if isinstance(model, WAVPolicy):
                errors.setdefault(f"{name} (K=0)", []).append(_error(chunk, demonstrated))
                with_true_value = _decode_with_true_values(model, window, seed + i)
                row = f"{name} (true value chunk)"
                errors.setdefault(row, []).append(_error(with_true_value, demonstrated))
            else:
                errors.setdefault(name, []).append(_error(chunk, demonstrated))
    return {name: float(np.mean(values)) for name, values in errors.items()}


def _state_gains(
    models: dict[str, Any], samples: list[dict[str, Any]], seed: int, offset: float
) -> dict[str, np.ndarray]:
    gains = {}
    for name, model in models.items():

        def chunk(window: dict[str, Any], state: np.ndarray, i: int, model=model) -> np.ndarray:
            return _chunk(model, dict(window, state=state), seed + i)

        gains[name] = state_gain(chunk, samples, np.random.default_rng(seed), offset)
    return gains


def state_gain(
    chunk: Callable[[dict[str, Any], np.ndarray, int], np.ndarray],
    windows: list[dict[str, Any]],
    rng: np.random.Generator,
    offset: float,
) -> np.ndarray:
    """Least-squares gain (L,) of chunk(window, state, index) (L, A) on Gaussian offsets of the
    arm joints' state (std `offset`; JOINT_NAMES order), pooled over windows and joints."""
    arm = [j for j, name in enumerate(JOINT_NAMES) if not name.endswith("gripper")]
    offsets, changes = [], []
    for i, window in enumerate(windows):
        state = window["state"].astype(np.float64)
        delta = np.zeros_like(state)
        delta[arm] = rng.normal(0.0, offset, len(arm))
        moved = np.asarray(chunk(window, state + delta, i)) - np.asarray(chunk(window, state, i))
        offsets.append(delta[arm])
        changes.append(moved[:, arm])
    offsets_all = np.concatenate(offsets)
    return np.concatenate(changes, axis=1) @ offsets_all / (offsets_all @ offsets_all)


def _load(
    dataset: Path, checkpoints: list[Path], windows: int, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The checkpoints (name -> policy) and seeded dataset windows as a policy reads them:
    images per camera, state, instruction, plus the demonstrated actions and value chunk."""
    models = {str(path): load_policy(path, NO_PLANNING) for path in checkpoints}
    config = next(iter(models.values())).config
    store = WindowStore.from_dataset(dataset, config, DataConfig(frame_stride=8))
    batch = store.batch(windows, seed=seed, step=0, images=True)
    samples = [
        {
            "images": {
                name: batch["images"][i, view, : config.memory_frames].numpy()
                for view, name in enumerate(config.camera_names)
            },
            "state": batch["state"][i].numpy(),
            "instruction": batch["instruction"][i],
            "actions": batch["actions"][i].numpy(),
            "values": batch["values"][i],
        }
        for i in range(windows)
    ]
    return models, samples


def _chunk(model: Any, window: dict[str, Any], seed: int) -> np.ndarray:
    """The policy's chunk for a window: WAV without planning, or the direct prediction."""
    images, state, instruction = window["images"], window["state"], window["instruction"]
    if isinstance(model, WAVPolicy):
        return np.asarray(model.plan(images, state, instruction, NO_PLANNING, seed=seed).actions)
    return np.asarray(model.predict_chunk(images, state, instruction))


def _error(actions: np.ndarray, demonstrated: np.ndarray) -> float:
    return float(np.abs(np.asarray(actions) - demonstrated).mean())


def _decode_with_true_values(model: WAVPolicy, window: dict[str, Any], seed: int) -> np.ndarray:
    """Decode one chunk with the value features of the demonstrated value chunk."""
    context = model.encode_observation(window["images"], window["state"], window["instruction"])
    generator = torch.Generator().manual_seed(seed)
    noise = random_normal((1, *model.config.video_noise_shape), generator, model.device)
    video = model.imagine(context, noise)
    values = window["values"][None].float().to(model.device)
    normalized = model.normalizer.normalize_value(values)
    hidden = model.clean_value_features(video.hidden_states, normalized)
    return model.decode_actions(context, video, ValueFeatures(hidden[:, None]), generator)


def main(argv: list[str] | None = None) -> None:
    parser = checkpoint_tool_parser(__doc__)
    parser.add_argument("--windows", type=int, default=48)
    parser.add_argument(
        "--state-offset", type=float, default=0.05, help="std (rad) of the state gain's offsets"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    models, samples = _load(args.dataset, args.checkpoint, args.windows, args.seed)
    with torch.no_grad():
        errors = _imitation_errors(models, samples, args.seed)
        gains = _state_gains(models, samples, args.seed, args.state_offset)
    print("| policy | mean abs. error per joint and step (rad) |\n|---|---:|")
    for name, error in errors.items():
        print(f"| {name} | {error:.4f} |")
    print("\n| policy | state gain, first chunk step | last chunk step |\n|---|---:|---:|")
    for name, gain in gains.items():
        print(f"| {name} | {gain[0]:.2f} | {gain[-1]:.2f} |")


if __name__ == "__main__":
    main()
