"""The direct action baseline: it learns, keeps WAV's VAE frozen, saves and loads exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wav_ros.baselines import DirectActionPolicy, DirectPolicyConfig
from wav_ros.model import (
    ActionExpertConfig,
    TokenizerConfig,
    ValueExpertConfig,
    VideoExpertConfig,
    WAVConfig,
    WAVPolicy,
)


def micro_config() -> WAVConfig:
    return WAVConfig(
        chunk_size=4,
        num_layers=2,
        timestep_embed_dim=16,
        tokenizer=TokenizerConfig(image_size=16, block_out_channels=(8, 8), norm_num_groups=4),
        video=VideoExpertConfig(hidden_size=16, num_heads=2),
        value=ValueExpertConfig(hidden_size=16, num_heads=2),
        action=ActionExpertConfig(hidden_size=16, num_heads=2),
    )


def batch(generator: torch.Generator, size: int = 8) -> dict:
    """Actions that depend on the latents and the state, so a policy must read both."""
    latents = torch.randn(size, 3, 2, 4, 8, 8, generator=generator)
    state = torch.rand(size, 14, generator=generator) - 0.5
    drift = latents[:, 0, 0, 0].mean(dim=(-1, -2))[:, None, None] * torch.linspace(0, 1, 4)[:, None]
    return {
        "latents": latents,
        "instruction": ["transfer the red cube to the left arm"] * size,
        "state": state,
        "actions": state[:, None, :] + 0.2 * drift,
    }


def small_policy() -> DirectActionPolicy:
    torch.manual_seed(0)
    return DirectActionPolicy(micro_config(), DirectPolicyConfig(hidden_size=32, num_layers=2))


def test_fits_a_batch_and_keeps_the_vae_frozen():
    policy = small_policy().train()
    data = batch(torch.Generator().manual_seed(0))
    vae_before = {k: v.clone() for k, v in policy.tokenizer.state_dict().items()}
    optimizer = torch.optim.AdamW(policy.stage_parameters("action"), lr=3e-3)
    first = None
    for _ in range(80):
        loss, logs = policy.compute_loss(data, "action")
        first = first if first is not None else logs["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert logs["loss"] < 0.3 * first
    for key, value in policy.tokenizer.state_dict().items():
        assert torch.equal(value, vae_before[key]), key
    names = {id(p) for p in policy.stage_parameters("action")}
    assert not any(id(p) in names for p in policy.tokenizer.parameters())


def test_from_wav_shares_the_vae_and_normalisation_and_round_trips(tmp_path):
    wav = WAVPolicy(micro_config())
    wav.set_normalization({"latent": {"mean": [0.1, 0.2, 0.3, 0.4], "std": [1, 2, 3, 4]}})
    policy = DirectActionPolicy.from_wav(wav)
    for key, value in wav.tokenizer.state_dict().items():
        assert torch.equal(policy.tokenizer.state_dict()[key], value)
    assert policy.normalizer.get_stats() == wav.normalizer.get_stats()
    policy.save_pretrained(tmp_path / "direct")
    loaded = DirectActionPolicy.from_pretrained(tmp_path / "direct")
    rng = np.random.default_rng(0)
    images = {c: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for c in wav.config.camera_names}
    state = rng.uniform(-0.5, 0.5, 14)
    chunk = policy.predict_chunk(images, state, "insert the peg into the socket")
    assert chunk.shape == (4, 14) and chunk.dtype == np.float32
    np.testing.assert_array_equal(
        chunk, loaded.predict_chunk(images, state, "insert the peg into the socket")
    )


def test_bad_inputs_are_refused(tmp_path):
    policy = small_policy()
    data = batch(torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="only the 'action' stage"):
        policy.compute_loss(data, "video")
    with pytest.raises(ValueError, match="'latents'"):
        policy.compute_loss({k: v for k, v in data.items() if k != "latents"}, "action")
    with pytest.raises(ValueError, match="actions"):
        policy.compute_loss({**data, "actions": data["actions"][:, :3]}, "action")
    with pytest.raises(ValueError, match="image 'cam_high'"):
        policy.predict_chunk(
            {c: np.zeros((8, 8, 3), np.uint8) for c in policy.config.camera_names},
            np.zeros(14),
            "x",
        )
    with pytest.raises(ValueError, match="divisible"):
        DirectPolicyConfig(hidden_size=30, num_heads=4)
    WAVPolicy(micro_config()).save_pretrained(tmp_path / "wav")
    with pytest.raises(ValueError, match=r"not a wav_ros\.DirectActionPolicy"):
        DirectActionPolicy.from_pretrained(tmp_path / "wav")
