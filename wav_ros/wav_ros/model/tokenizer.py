"""Visual tokenizer: a small diffusers AutoencoderKL mapping each camera image to a latent grid
and back, so imagined futures can be decoded to pixels for display."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL
from torch import Tensor, nn

from wav_ros.model.configuration_wav import TokenizerConfig


class VisualTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        stages = len(config.block_out_channels)
        self.vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * stages,
            up_block_types=("UpDecoderBlock2D",) * stages,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            latent_channels=config.latent_channels,
            norm_num_groups=config.norm_num_groups,
            sample_size=config.image_size,
        )

    @staticmethod
    def to_pixels(images: Tensor) -> Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
        return images.movedim(-1, -3).float() / 127.5 - 1

    @staticmethod
    def to_uint8(pixels: Tensor) -> Tensor:
        """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3)."""
        return ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)

    def encode(self, pixels: Tensor) -> Tensor:
        """(..., 3, H, W) in [-1, 1] -> latent means (..., C, h, w) (deterministic)."""
        lead = pixels.shape[:-3]
        latents = self.vae.encode(pixels.reshape(-1, *pixels.shape[-3:])).latent_dist.mode()
        return latents.reshape(*lead, *latents.shape[-3:])

    def decode(self, latents: Tensor) -> Tensor:
        """(..., C, h, w) -> pixels (..., 3, H, W) in about [-1, 1]."""
        lead = latents.shape[:-3]
        pixels = self.vae.decode(latents.reshape(-1, *latents.shape[-3:])).sample
        return pixels.reshape(*lead, *pixels.shape[-3:])

    def loss(
        self, pixels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """VAE training loss on (N, 3, H, W) images: L1 + MSE reconstruction, each weighted per
        pixel by 1 + color_weight · saturation, + weighted KL. Logs the unweighted errors."""
        posterior = self.vae.encode(pixels).latent_dist
        reconstruction = self.vae.decode(posterior.sample(generator)).sample
        error = reconstruction - pixels
        saturation = (pixels.amax(dim=1, keepdim=True) - pixels.amin(dim=1, keepdim=True)) / 2
        weight = 1 + self.config.color_weight * saturation
        weighted = (weight * (error.abs() + error.square())).mean() / weight.mean()
        kl = posterior.kl().mean() / pixels[0].numel()
        total = weighted + self.config.kl_weight * kl
        logs = {"l1": error.abs().mean().item(), "mse": error.square().mean().item()}
        return total, {**logs, "kl": kl.item()}
