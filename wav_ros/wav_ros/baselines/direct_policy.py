"""Direct action baseline: one transformer from (latents, state, instruction) to an action chunk.

ACT-style without the CVAE: learned chunk queries read the current frames' VAE latent tokens
(the WAV checkpoint's tokenizer, frozen, so both policies see the same visual tokens), a state
token and the instruction, and regress the whole chunk with an L1 loss. No world model, no
value, no planning: what WAV's extra experts are measured against. Trained by the same loop
(`compute_loss(batch, "action", generator)`) on the same batches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from wav_ros.model import WAVConfig, WAVPolicy
from wav_ros.model.experts import patchify
from wav_ros.model.normalization import Normalizer
from wav_ros.model.text_encoder import InstructionEncoder
from wav_ros.model.tokenizer import VisualTokenizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_NAME = "wav_ros.DirectActionPolicy"


@dataclass
class DirectPolicyConfig:
    """Size of the direct baseline's transformer (the rest comes from the WAV config)."""

    hidden_size: int = 128
    """Token width."""
    num_heads: int = 4
    """Attention heads."""
    num_layers: int = 4
    """Transformer encoder layers."""
    mlp_ratio: int = 4
    """Feed-forward width relative to hidden_size."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_heads", "num_layers", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"direct.{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"direct.hidden_size ({self.hidden_size}) must be divisible by num_heads "
                f"({self.num_heads})"
            )


class DirectActionPolicy(nn.Module):
    """Frozen VAE + text encoder, a transformer encoder, a linear head to (chunk, action_dim)."""

    def __init__(self, wav_config: WAVConfig, config: DirectPolicyConfig | None = None) -> None:
        super().__init__()
        self.config = wav_config  # named like WAVPolicy's, so its input validation applies
        self.direct_config = config or DirectPolicyConfig()
        width = self.direct_config.hidden_size
        patch = wav_config.video.patch_size
        token_in = patch * patch * wav_config.tokenizer.latent_channels
        views, tokens = wav_config.num_views, wav_config.memory_frames * wav_config.tokens_per_frame
        self.tokenizer = VisualTokenizer(wav_config.tokenizer)
        self.normalizer = Normalizer(wav_config)
        self.instruction_encoder = InstructionEncoder(wav_config.text_encoder)
        self.latent_in = nn.Linear(token_in, width)
        self.latent_position = nn.Parameter(torch.randn(views, tokens, width) * 0.02)
        self.state_in = nn.Linear(wav_config.state_dim, width)
        self.text_in = nn.Linear(wav_config.text_encoder.embed_dim, width)
        self.queries = nn.Parameter(torch.randn(wav_config.chunk_size, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width,
            self.direct_config.num_heads,
            width * self.direct_config.mlp_ratio,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, self.direct_config.num_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, wav_config.action_dim)
        self.tokenizer.requires_grad_(False)
        self.eval()

    @classmethod
    def from_wav(
        cls, wav: WAVPolicy, config: DirectPolicyConfig | None = None
    ) -> DirectActionPolicy:
        """A fresh baseline sharing a trained WAV checkpoint's VAE and normalisation."""
        policy = cls(wav.config, config)
        policy.tokenizer.load_state_dict(wav.tokenizer.state_dict())
        policy.normalizer.load_state_dict(wav.normalizer.state_dict())
        return policy

    @property
    def device(self) -> torch.device:
        return self.queries.device

    def set_normalization(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        self.normalizer.set_stats(stats)

    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        if stage != "action":
            raise ValueError(f"the direct baseline trains only the 'action' stage, got {stage!r}")
        return [p for name, p in self.named_parameters() if not name.startswith("tokenizer.")]

    def _chunk(self, memory_latents: Tensor, state: Tensor, text: Tensor, mask: Tensor) -> Tensor:
        """Normalised latents (B, V, Fm, C, h, h), normalised state (B, D) -> (B, L, A)."""
        batch = memory_latents.shape[0]
        patches = patchify(memory_latents, self.config.video.patch_size)  # (B, V, Fm, P, c)
        patches = patches.reshape(batch, patches.shape[1], -1, patches.shape[-1])
        visual = (self.latent_in(patches) + self.latent_position).reshape(
            batch, -1, self.queries.shape[-1]
        )
        tokens = torch.cat(
            [
                self.state_in(state)[:, None],
                visual,
                self.text_in(text),
                self.queries.expand(batch, -1, -1),
            ],
            dim=1,
        )
        padding = torch.zeros(batch, tokens.shape[1], dtype=torch.bool, device=tokens.device)
        start = 1 + visual.shape[1]
        padding[:, start : start + text.shape[1]] = ~mask
        hidden = self.encoder(tokens, src_key_padding_mask=padding)
        return self.head(self.norm(hidden[:, -self.queries.shape[0] :]))

    def compute_loss(
        self, batch: Mapping[str, Any], stage: str, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """L1 between the predicted and demonstrated normalised action chunk (the WAV batch
        format; only "latents", "instruction", "state" and "actions" are read)."""
        del generator  # deterministic regression
        self.stage_parameters(stage)
        for key in ("latents", "instruction", "state", "actions"):
            if key not in batch:
                raise ValueError(f"training batch has no {key!r} entry (keys: {sorted(batch)})")
        config = self.config
        latents = self.normalizer.normalize_latent(batch["latents"].to(self.device).float())
        text, mask = self.instruction_encoder.batch(list(batch["instruction"]))
        state = self.normalizer.normalize_state(batch["state"].to(self.device))
        actions = self.normalizer.normalize_action(batch["actions"].to(self.device))
        if tuple(actions.shape[1:]) != (config.chunk_size, config.action_dim):
            raise ValueError(
                f"batch['actions'] must have shape (B, {config.chunk_size}, {config.action_dim}),"
                f" got {tuple(actions.shape)}"
            )
        prediction = self._chunk(
            latents[:, :, : config.memory_frames], state, text.to(self.device), mask.to(self.device)
        )
        loss = F.l1_loss(prediction, actions)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def predict_chunk(
        self, images: Mapping[str, np.ndarray], state: np.ndarray, instruction: str
    ) -> np.ndarray:
        """uint8 (H, W, 3) or (Fm, H, W, 3) per camera at the model's image size, state (D,)
        -> (chunk_size, action_dim) float32 absolute joint positions."""
        frames = WAVPolicy._checked_images(self, images)  # same validation as WAV's
        state_tensor = WAVPolicy._checked_state(self, state)
        pixels = VisualTokenizer.to_pixels(frames.to(self.device))[None]
        latents = self.normalizer.normalize_latent(self.tokenizer.encode(pixels))
        text, mask = self.instruction_encoder(instruction)
        chunk = self._chunk(
            latents,
            self.normalizer.normalize_state(state_tensor)[None],
            text.to(self.device),
            mask.to(self.device),
        )
        return self.normalizer.unnormalize_action(chunk[0]).cpu().numpy().astype(np.float32)

    def save_pretrained(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FORMAT_NAME,
            "format_version": 1,
            "wav_config": self.config.to_dict(),
            "config": asdict(self.direct_config),
        }
        (path / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: torch.device | str = "cpu"
    ) -> DirectActionPolicy:
        from safetensors.torch import load_file

        path = Path(directory)
        for required in (path / CONFIG_NAME, path / WEIGHTS_NAME):
            if not required.is_file():
                raise FileNotFoundError(f"checkpoint file not found: {required}")
        document = json.loads((path / CONFIG_NAME).read_text())
        if document.get("format") != FORMAT_NAME:
            raise ValueError(f"{path / CONFIG_NAME} is not a {FORMAT_NAME} config")
        model = cls(
            WAVConfig.from_dict(document["wav_config"]), DirectPolicyConfig(**document["config"])
        )
        model.load_state_dict(load_file(str(path / WEIGHTS_NAME)), strict=True)
        return model.to(device).eval()
