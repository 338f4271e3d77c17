"""Normalisation of actions, states, values and visual latents; stored as buffers so they travel
inside the checkpoint's safetensors file.

- actions and states: q01/q99 per joint mapped to [-1, 1] (values outside map outside; nothing is
  clipped);
- values: (v - mean) / std per channel, then symlog, as the value expert's targets;
- latents: (z - mean) / std per VAE latent channel, so the flow-matching noise matches their scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from wav_ros.model.configuration_wav import WAVConfig
from wav_ros.robot_description import DEFAULT_JOINT_LIMITS, JOINT_NAMES


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


#: The statistics set_stats accepts: group -> (low or centre key, high or scale key).
STAT_GROUPS: dict[str, tuple[str, str]] = {
    "action": ("q01", "q99"),
    "state": ("q01", "q99"),
    "value": ("mean", "std"),
    "latent": ("mean", "std"),
}


class Normalizer(nn.Module):
    def __init__(self, config: WAVConfig) -> None:
        super().__init__()
        self.sizes = {
            "action": config.action_dim,
            "state": config.state_dim,
            "value": config.value.value_channels,
            "latent": config.tokenizer.latent_channels,
        }
        joint_low, joint_high = self._joint_limit_defaults()
        for group, size in self.sizes.items():
            first, second = STAT_GROUPS[group]
            if group in ("action", "state") and size == len(JOINT_NAMES):
                low, high = joint_low, joint_high
            elif group in ("action", "state"):
                low, high = -torch.ones(size), torch.ones(size)
            else:
                low, high = torch.zeros(size), torch.ones(size)
            self.register_buffer(f"{group}_{first}", low.clone())
            self.register_buffer(f"{group}_{second}", high.clone())

    @staticmethod
    def _joint_limit_defaults() -> tuple[Tensor, Tensor]:
        """Until data statistics are set, the robot's joint limits stand in for q01/q99."""
        low = torch.tensor([DEFAULT_JOINT_LIMITS[name].lower for name in JOINT_NAMES])
        high = torch.tensor([DEFAULT_JOINT_LIMITS[name].upper for name in JOINT_NAMES])
        return low.float(), high.float()

    def set_stats(self, stats: Mapping[str, Mapping[str, Sequence[float] | np.ndarray]]) -> None:
        """Set any subset of {"action": {"q01", "q99"}, "state": {"q01", "q99"},
        "value": {"mean", "std"}, "latent": {"mean", "std"}}; every vector must have the group's
        size, be finite, and have q99 > q01 (std > 0)."""
        unknown = sorted(set(stats) - set(STAT_GROUPS))
        if unknown:
            raise ValueError(f"unknown normalisation groups {unknown}; known: {list(STAT_GROUPS)}")
        for group, entries in stats.items():
            first, second = STAT_GROUPS[group]
            if set(entries) != {first, second}:
                raise ValueError(
                    f"normalisation group {group!r} needs exactly keys {first!r} and {second!r}, "
                    f"got {sorted(entries)}"
                )
            size = self.sizes[group]
            vectors = {}
            for key in (first, second):
                vector = torch.as_tensor(np.asarray(entries[key], dtype=np.float32))
                if vector.shape != (size,):
                    raise ValueError(
                        f"normalisation {group}.{key} must have shape ({size},), "
                        f"got {tuple(vector.shape)}"
                    )
                if not torch.isfinite(vector).all():
                    raise ValueError(f"normalisation {group}.{key} has non-finite entries")
                vectors[key] = vector
            if group in ("action", "state"):
                if not (vectors[second] > vectors[first]).all():
                    raise ValueError(f"normalisation {group}: q99 must exceed q01 for every entry")
            elif not (vectors[second] > 0).all():
                raise ValueError(f"normalisation {group}: std must be > 0 for every entry")
            for key, vector in vectors.items():
                getattr(self, f"{group}_{key}").copy_(vector)

    def get_stats(self) -> dict[str, dict[str, list[float]]]:
        return {
            group: {key: getattr(self, f"{group}_{key}").tolist() for key in keys}
            for group, keys in STAT_GROUPS.items()
        }

    def _to_unit(self, x: Tensor, group: str) -> Tensor:
        low, high = getattr(self, f"{group}_q01"), getattr(self, f"{group}_q99")
        return 2 * (x - low) / (high - low) - 1

    def _from_unit(self, x: Tensor, group: str) -> Tensor:
        low, high = getattr(self, f"{group}_q01"), getattr(self, f"{group}_q99")
        return (x + 1) / 2 * (high - low) + low

    def normalize_action(self, x: Tensor) -> Tensor:
        return self._to_unit(x, "action")

    def unnormalize_action(self, x: Tensor) -> Tensor:
        return self._from_unit(x, "action")

    def normalize_state(self, x: Tensor) -> Tensor:
        return self._to_unit(x, "state")

    def unnormalize_state(self, x: Tensor) -> Tensor:
        return self._from_unit(x, "state")

    def normalize_value(self, x: Tensor) -> Tensor:
        """(..., C_val) raw values -> the value expert's symlog'd targets."""
        return symlog((x - self.value_mean) / self.value_std)

    def unnormalize_value(self, x: Tensor) -> Tensor:
        return symexp(x) * self.value_std + self.value_mean

    def normalize_latent(self, z: Tensor) -> Tensor:
        """(..., C, h, w) VAE latents -> unit-scale latents."""
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def unnormalize_latent(self, z: Tensor) -> Tensor:
        return z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
