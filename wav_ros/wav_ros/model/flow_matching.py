"""Rectified-flow (flow matching) conventions shared by training and sampling.

As in diffusers' FlowMatchEulerDiscreteScheduler: x_sigma = (1 - sigma)·x0 + sigma·noise with
sigma in [0, 1] (timestep = 1000·sigma), the model predicts the velocity noise - x0, and
sampling integrates from sigma = 1 to 0 with Euler steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor

from wav_ros.model.layers import NUM_TRAIN_TIMESTEPS


def random_normal(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Standard normal float32 noise drawn on the generator's device (so a seed gives the same
    numbers whatever the model's device), then moved to `device`."""
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source).to(device)


def noisy_pair(
    clean: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw sigma ~ U(0, 1) per sample and noise; return (noisy input, timesteps (B,), target)."""
    batch = clean.shape[0]
    source = generator.device if generator is not None else clean.device
    sigma = torch.rand(batch, generator=generator, device=source).to(clean.device)
    noise = random_normal(tuple(clean.shape), generator, clean.device)
    expanded = sigma.view(batch, *([1] * (clean.dim() - 1)))
    noisy = (1 - expanded) * clean + expanded * noise
    return noisy, sigma * NUM_TRAIN_TIMESTEPS, noise - clean


def noised_to(clean: Tensor, sigma: float, noise: Tensor) -> tuple[Tensor, Tensor]:
    """clean noised to one level sigma with the given noise: (x_sigma, timesteps (1,))."""
    timesteps = torch.full((1,), sigma * NUM_TRAIN_TIMESTEPS, device=clean.device)
    return (1 - sigma) * clean + sigma * noise, timesteps


def euler_partial(
    velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, to_sigma: float, num_steps: int
) -> Tensor:
    """Integrate velocity(x, timesteps (1,)) from pure noise down to sigma = to_sigma in
    num_steps equal Euler steps: a sample that is still partly noise (see euler_sample)."""
    sigmas = torch.linspace(1.0, to_sigma, num_steps + 1).tolist()
    sample = noise
    for sigma, next_sigma in itertools.pairwise(sigmas):
        timesteps = torch.full((1,), sigma * NUM_TRAIN_TIMESTEPS, device=noise.device)
        sample = sample + (next_sigma - sigma) * velocity(sample, timesteps)
    return sample


def euler_sample(
    velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, num_steps: int
) -> Tensor:
    """Integrate velocity(x, timesteps (1,)) from pure noise to a clean sample with diffusers'
    FlowMatchEulerDiscreteScheduler (shift 1: timesteps 1000 -> 1 evenly, then to 0)."""
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS)
    scheduler.set_timesteps(num_steps, device=noise.device)
    sample = noise
    for timestep in scheduler.timesteps:
        model_output = velocity(sample, timestep.reshape(1).to(noise.dtype))
        sample = scheduler.step(model_output, timestep, sample, return_dict=False)[0]
    return sample.to(noise.dtype)
