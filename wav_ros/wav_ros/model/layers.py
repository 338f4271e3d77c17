"""Transformer pieces shared by the three experts.

Attention is written here (on ``F.scaled_dot_product_attention``) rather than taken from
diffusers' ``Attention`` because planning needs keys/values that are computed once and reused:
the memory-frame keys are shared by all M video candidates, and the video features' keys are
shared by the N value noises and all Euler steps of one candidate. Timestep embeddings and
feed-forward layers are diffusers' own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import Tensor, nn

#: Flow-matching timesteps run from 0 (clean) to this value (pure noise), as in diffusers.
NUM_TRAIN_TIMESTEPS = 1000


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, S, D) -> (B, H, S, D / H)."""
    batch, length, width = x.shape
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, S, d) -> (B, S, H * d)."""
    batch, heads, length, width = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * width)


def attend(q: Tensor, k: Tensor, v: Tensor, num_heads: int, key_mask: Tensor | None) -> Tensor:
    """Multi-head attention of (B, Sq, D) queries over (B or 1, Sk, D) keys/values.

    A batch of 1 in the keys is broadcast over the queries' batch without copying; key_mask
    (B or 1, Sk) marks the keys that may be attended (True) and is None when all may.
    """
    batch = q.shape[0]
    if k.shape[0] != batch:
        k = k.expand(batch, -1, -1)
        v = v.expand(batch, -1, -1)
    mask = None
    if key_mask is not None:
        mask = key_mask[:, None, None, :].expand(batch, -1, -1, -1)
    out = F.scaled_dot_product_attention(
        split_heads(q, num_heads), split_heads(k, num_heads), split_heads(v, num_heads), mask
    )
    return merge_heads(out)


class SelfAttention(nn.Module):
    """Self-attention with one fused q/k/v projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.to_qkv(x).chunk(3, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, S, D)."""
        q, k, v = self.project(x)
        return self.to_out(attend(q, k, v, self.num_heads, None))


class CrossAttention(nn.Module):
    """Cross-attention whose context keys/values can be projected once and reused."""

    def __init__(self, dim: int, context_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def project_context(self, context: Tensor) -> Tensor:
        """(B, Sk, context_dim) -> packed keys and values (B, Sk, 2 * dim)."""
        return self.to_kv(context)

    def forward(self, x: Tensor, context_kv: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x: (B, Sq, D); context_kv from project_context with batch B or 1."""
        k, v = context_kv.chunk(2, dim=-1)
        return self.to_out(attend(self.to_q(x), k, v, self.num_heads, key_mask))


class TimestepEncoder(nn.Module):
    """Flow-matching timestep (0..1000) -> conditioning vector (diffusers' sinusoid + MLP)."""

    def __init__(self, embed_dim: int, dim: int) -> None:
        super().__init__()
        self.sinusoid = Timesteps(embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = TimestepEmbedding(embed_dim, dim)

    def forward(self, timesteps: Tensor) -> Tensor:
        """timesteps: (B,) -> (B, dim)."""
        return self.mlp(self.sinusoid(timesteps.reshape(-1)).to(self.mlp.linear_1.weight.dtype))


def modulated_norm(x: Tensor, shift: Tensor, scale: Tensor, eps: float = 1e-6) -> Tensor:
    """LayerNorm(x)·(1 + scale) + shift. When one shift/scale row serves every token (sampling:
    the whole batch shares a timestep) it is one fused layer_norm with that row as its affine."""
    width = x.shape[-1]
    if shift.numel() == width:
        return F.layer_norm(x, (width,), (1 + scale).reshape(width), shift.reshape(width), eps)
    return F.layer_norm(x, (width,), eps=eps) * (1 + scale) + shift


class AdaLNBlock(nn.Module):
    """DiT-style block: adaLN-Zero-modulated self-attention and FFN, with plain pre-norm
    cross-attentions in between (one per context: instruction, video features, value features).

    The conditioning vector has one row per sample (or per token) and broadcasts over the token
    axes of x; the zero-initialised modulation makes each block start as the identity.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, context_dims: list[int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn = SelfAttention(dim, num_heads)
        self.cross_norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in context_dims)
        self.cross_attns = nn.ModuleList(CrossAttention(dim, c, num_heads) for c in context_dims)
        self.ff = FeedForward(dim, mult=mlp_ratio, activation_fn="gelu")
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def modulation_params(self, cond: Tensor) -> tuple[Tensor, ...]:
        """cond (..., D) -> shift/scale/gate for attention and FFN, each (..., D)."""
        return self.modulation(F.silu(cond)).chunk(6, dim=-1)

    def cross(self, x: Tensor, contexts: list[tuple[Tensor, Tensor | None]]) -> Tensor:
        """Cross-attention of x (B, ..., D) to each context (kv (B or 1, Sk, 2D), mask)."""
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        for norm, attn, (kv, mask) in zip(
            self.cross_norms, self.cross_attns, contexts, strict=True
        ):
            flat = flat + attn(norm(flat), kv, mask)
        return flat.view(shape)

    def feed_forward(self, x: Tensor, shift: Tensor, scale: Tensor, gate: Tensor) -> Tensor:
        return torch.addcmul(x, gate, self.ff(modulated_norm(x, shift, scale)))

    def forward(
        self, x: Tensor, cond: Tensor, contexts: list[tuple[Tensor, Tensor | None]]
    ) -> Tensor:
        """x: (B, ..., S, D) with self-attention over S within each leading index; cond
        broadcastable to x."""
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.modulation_params(cond)
        h = modulated_norm(x, shift_a, scale_a)
        h = self.attn(h.reshape(-1, *h.shape[-2:])).view(x.shape)
        x = torch.addcmul(x, gate_a, h)
        x = self.cross(x, contexts)
        return self.feed_forward(x, shift_f, scale_f, gate_f)


class FinalLayer(nn.Module):
    """adaLN-modulated norm and a zero-initialised projection to the expert's output channels."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.modulation = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, out_dim)
        for layer in (self.modulation, self.proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shift, scale = self.modulation(F.silu(cond)).chunk(2, dim=-1)
        return self.proj(modulated_norm(x, shift, scale))


def learned_embedding(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)
