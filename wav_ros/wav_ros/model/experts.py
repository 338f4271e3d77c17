"""The three experts of WAV on one depth: video (world model), value and action.

Shapes (B batch, V views, Fm/Ff memory/future frames, C latent channels, h×h latent grid,
P = (h / patch)^2 tokens per frame, L chunk steps, Dv/Dq/Da expert widths, Lyr blocks):

- video: memory latents (B, V, Fm, C, h, h) are clean (timestep 0) and attend only to memory
  tokens, so their keys/values are computed once per observation (`encode_memory`) and shared by
  every candidate; future latents (M, V, Ff, C, h, h) attend to memory and future tokens of
  their view (or of all views every `cross_view_every`-th block) and to the instruction.
  Features: per-block hidden states of all views' tokens, (M, Lyr, V·(Fm+Ff)·P, Dv), ordered
  view-major, memory frames before future frames.
- value: tokens (M, N, L, Dq) from a noisy value chunk (M, N, L, C_val); block l cross-attends
  to video features of block l of its candidate m (shared by its N noises).
- action: one clean state token plus L noisy (action ‖ future state) tokens (B, 1 + L, Da);
  block l cross-attends to video features and value features of block l.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wav_ros.model.configuration_wav import WAVConfig
from wav_ros.model.layers import (
    AdaLNBlock,
    FinalLayer,
    TimestepEncoder,
    attend,
    learned_embedding,
    modulated_norm,
)


def patchify(latents: Tensor, patch: int) -> Tensor:
    """(..., C, h, w) -> (..., (h / patch)·(w / patch), patch·patch·C), row-major patches."""
    *lead, channels, height, width = latents.shape
    n = len(lead)
    x = latents.reshape(*lead, channels, height // patch, patch, width // patch, patch)
    x = x.permute(*range(n), n + 1, n + 3, n + 2, n + 4, n)  # (..., gh, gw, p, p, C)
    return x.reshape(*lead, (height // patch) * (width // patch), patch * patch * channels)


def unpatchify(tokens: Tensor, patch: int, channels: int) -> Tensor:
    """Inverse of patchify on a square grid: (..., (h / patch)^2, patch²·C) -> (..., C, h, h)."""
    *lead, count, _ = tokens.shape
    n = len(lead)
    grid = round(count**0.5)
    x = tokens.reshape(*lead, grid, grid, patch, patch, channels)
    x = x.permute(*range(n), n + 4, n, n + 2, n + 1, n + 3)  # (..., C, gh, p, gw, p)
    return x.reshape(*lead, channels, grid * patch, grid * patch)


@dataclass
class MemoryCache:
    """What the video expert keeps per observation: per block, the memory tokens' hidden states
    (B, V, Fm·P, Dv) and packed keys/values (B, V, Fm·P, 2·Dv), and the instruction's packed
    keys/values (B, T, 2·Dv) with its mask (B, T)."""

    hidden: list[Tensor]
    self_kv: list[Tensor]
    text_kv: list[Tensor]
    text_mask: Tensor


class VideoExpert(nn.Module):
    def __init__(self, config: WAVConfig) -> None:
        super().__init__()
        cfg = config.video
        self.config = config
        self.patch = cfg.patch_size
        self.channels = config.tokenizer.latent_channels
        dim = cfg.hidden_size
        self.num_heads = cfg.num_heads
        frames = config.memory_frames + config.future_frames
        self.patch_embed = nn.Linear(self.channels * self.patch**2, dim)
        self.view_embed = learned_embedding(config.num_views, 1, dim)
        self.frame_embed = learned_embedding(frames, 1, dim)
        self.spatial_embed = learned_embedding(config.tokens_per_frame, dim)
        self.text_proj = nn.Linear(config.text_encoder.embed_dim, dim)
        self.time_embed = TimestepEncoder(config.timestep_embed_dim, dim)
        self.blocks = nn.ModuleList(
            AdaLNBlock(dim, cfg.num_heads, cfg.mlp_ratio, [dim]) for _ in range(config.num_layers)
        )
        self.cross_view = [(i + 1) % cfg.cross_view_every == 0 for i in range(config.num_layers)]
        self.final = FinalLayer(dim, self.channels * self.patch**2)

    def _embed(self, latents: Tensor, first_frame: int) -> Tensor:
        """(B, V, F, C, h, h) -> tokens (B, V, F·P, D) with view, frame and position embeddings."""
        tokens = self.patch_embed(patchify(latents, self.patch))  # (B, V, F, P, D)
        frames = latents.shape[2]
        tokens = tokens + self.spatial_embed
        tokens = tokens + self.frame_embed[first_frame : first_frame + frames]
        tokens = tokens + self.view_embed[:, None]
        return tokens.flatten(2, 3)

    def _self_attention(
        self, block: AdaLNBlock, q: Tensor, k: Tensor, v: Tensor, cross_view: bool
    ) -> Tensor:
        """q (B, V, Sq, D), k/v (B, V, Sk, D): attention within each view or across all views."""
        batch, views, length, dim = q.shape
        if cross_view:
            out = attend(q.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2), self.num_heads, None)
        else:
            out = attend(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), self.num_heads, None)
        return block.attn.to_out(out).view(batch, views, length, dim)

    def encode_memory(
        self, memory_latents: Tensor, text_embeddings: Tensor, text_mask: Tensor
    ) -> MemoryCache:
        """Run the clean memory tokens (timestep 0) through every block once.

        memory_latents: (B, V, Fm, C, h, h) normalised latents; text_embeddings (B, T, E) from the
        instruction encoder; text_mask (B, T) bool.
        """
        x = self._embed(memory_latents, 0)
        zero = torch.zeros(1, device=x.device, dtype=x.dtype)
        cond = self.time_embed(zero)[:, None, None, :]
        text = self.text_proj(text_embeddings)
        hidden, self_kv, text_kv = [], [], []
        for block, cross_view in zip(self.blocks, self.cross_view, strict=True):
            shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = block.modulation_params(cond)
            q, k, v = block.attn.project(modulated_norm(x, shift_a, scale_a))
            x = torch.addcmul(x, gate_a, self._self_attention(block, q, k, v, cross_view))
            kv = block.cross_attns[0].project_context(text)
            x = block.cross(x, [(kv, text_mask)])
            x = block.feed_forward(x, shift_f, scale_f, gate_f)
            hidden.append(x)
            self_kv.append(torch.cat([k, v], dim=-1))
            text_kv.append(kv)
        return MemoryCache(hidden, self_kv, text_kv, text_mask)

    def forward(
        self, future_latents: Tensor, timesteps: Tensor, memory: MemoryCache
    ) -> tuple[Tensor, list[Tensor]]:
        """Predict the flow-matching velocity of the future latents.

        future_latents: (B, V, Ff, C, h, h) noisy latents; timesteps (B,) or (1,) in [0, 1000];
        memory from encode_memory with batch B or 1 (then shared by all B).
        Returns the velocity (B, V, Ff, C, h, h) and per-block hidden states (B, V, Ff·P, D).
        """
        batch, views, frames = future_latents.shape[:3]
        x = self._embed(future_latents, self.config.memory_frames)
        cond = self.time_embed(timesteps)[:, None, None, :]
        hidden = []
        for layer, block in enumerate(self.blocks):
            shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = block.modulation_params(cond)
            q, k, v = block.attn.project(modulated_norm(x, shift_a, scale_a))
            memory_k, memory_v = memory.self_kv[layer].expand(batch, -1, -1, -1).chunk(2, dim=-1)
            k = torch.cat([memory_k, k], dim=2)
            v = torch.cat([memory_v, v], dim=2)
            x = torch.addcmul(
                x, gate_a, self._self_attention(block, q, k, v, self.cross_view[layer])
            )
            x = block.cross(x, [(memory.text_kv[layer], memory.text_mask)])
            x = block.feed_forward(x, shift_f, scale_f, gate_f)
            hidden.append(x)
        out = self.final(x, cond)  # (B, V, Ff·P, C·p²)
        out = out.view(batch, views, frames, -1, out.shape[-1])
        return unpatchify(out, self.patch, self.channels), hidden

    @staticmethod
    def features(memory: MemoryCache, future_hidden: list[Tensor]) -> Tensor:
        """Latent trajectory features (B, Lyr, V·(Fm+Ff)·P, D): memory and future hidden states
        of every block, memory broadcast over the candidates."""
        batch = future_hidden[0].shape[0]
        per_layer = [
            torch.cat([mem.expand(batch, -1, -1, -1), fut], dim=2).flatten(1, 2)
            for mem, fut in zip(memory.hidden, future_hidden, strict=True)
        ]
        return torch.stack(per_layer, dim=1)


class ValueExpert(nn.Module):
    def __init__(self, config: WAVConfig) -> None:
        super().__init__()
        cfg = config.value
        dim = cfg.hidden_size
        self.in_proj = nn.Linear(cfg.value_channels, dim)
        self.pos_embed = learned_embedding(config.chunk_size, dim)
        self.time_embed = TimestepEncoder(config.timestep_embed_dim, dim)
        video_dim = config.video.hidden_size
        self.blocks = nn.ModuleList(
            AdaLNBlock(dim, cfg.num_heads, cfg.mlp_ratio, [video_dim])
            for _ in range(config.num_layers)
        )
        self.final = FinalLayer(dim, cfg.value_channels)

    def project_video(self, video_features: Tensor) -> list[Tensor]:
        """Per-block packed keys/values (M, T, 2·Dq) of video features (M, Lyr, T, Dv); computed
        once per candidate and reused by every value noise and Euler step."""
        return [
            block.cross_attns[0].project_context(video_features[:, layer])
            for layer, block in enumerate(self.blocks)
        ]

    def forward(
        self, noisy_values: Tensor, timesteps: Tensor, video_kv: list[Tensor]
    ) -> tuple[Tensor, list[Tensor]]:
        """noisy_values (M, N, L, C_val); timesteps (M,) or (1,); video_kv from project_video.
        Returns the velocity (M, N, L, C_val) and per-block hidden states (M, N, L, Dq)."""
        x = self.in_proj(noisy_values) + self.pos_embed
        cond = self.time_embed(timesteps)[:, None, None, :]
        hidden = []
        for block, kv in zip(self.blocks, video_kv, strict=True):
            x = block(x, cond, [(kv, None)])
            hidden.append(x)
        return self.final(x, cond), hidden


class ActionExpert(nn.Module):
    def __init__(self, config: WAVConfig) -> None:
        super().__init__()
        cfg = config.action
        dim = cfg.hidden_size
        self.token_dim = config.action_dim + config.state_dim
        self.state_proj = nn.Linear(config.state_dim, dim)
        self.token_proj = nn.Linear(self.token_dim, dim)
        self.pos_embed = learned_embedding(config.chunk_size + 1, dim)
        self.time_embed = TimestepEncoder(config.timestep_embed_dim, dim)
        context_dims = [config.video.hidden_size, config.value.hidden_size]
        self.blocks = nn.ModuleList(
            AdaLNBlock(dim, cfg.num_heads, cfg.mlp_ratio, context_dims)
            for _ in range(config.num_layers)
        )
        self.final = FinalLayer(dim, self.token_dim)

    def project_contexts(
        self, video_features: Tensor, value_features: Tensor
    ) -> list[list[tuple[Tensor, None]]]:
        """Per-block packed keys/values of video features (B, Lyr, T, Dv) and value features
        (B, Lyr, L, Dq), reused by every Euler step."""
        return [
            [
                (block.cross_attns[0].project_context(video_features[:, layer]), None),
                (block.cross_attns[1].project_context(value_features[:, layer]), None),
            ]
            for layer, block in enumerate(self.blocks)
        ]

    def forward(
        self,
        noisy_tokens: Tensor,
        state: Tensor,
        timesteps: Tensor,
        contexts: list[list[tuple[Tensor, None]]],
    ) -> Tensor:
        """noisy_tokens (B, L, A + S) normalised (action ‖ future state); state (B, S) normalised
        current state (clean, timestep 0); timesteps (B,) or (1,). Returns the velocity of the
        chunk tokens (B, L, A + S)."""
        tokens = torch.cat([self.state_proj(state)[:, None], self.token_proj(noisy_tokens)], dim=1)
        x = tokens + self.pos_embed
        zero = torch.zeros(1, device=x.device, dtype=x.dtype)
        clean = self.time_embed(zero)[:, None, :].expand(x.shape[0], 1, -1)
        noisy = self.time_embed(timesteps)[:, None, :].expand(x.shape[0], x.shape[1] - 1, -1)
        cond = torch.cat([clean, noisy], dim=1)  # per token: the state token is clean
        for block, block_contexts in zip(self.blocks, contexts, strict=True):
            x = block(x, cond, block_contexts)
        return self.final(x[:, 1:], cond[:, 1:])
