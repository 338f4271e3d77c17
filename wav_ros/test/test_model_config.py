"""WAVConfig presets, validation and JSON round trip."""

from __future__ import annotations

import json

import pytest

from wav_ros.model import TokenizerConfig, VideoExpertConfig, WAVConfig
from wav_ros.robot_description import ACTION_DIM, CAMERA_NAMES


def test_tiny_preset_matches_the_robot_and_stays_small() -> None:
    config = WAVConfig.tiny()
    assert config.camera_names == CAMERA_NAMES
    assert config.action_dim == ACTION_DIM == 14
    assert config.tokenizer.latent_size == 8
    assert config.tokens_per_frame == 16
    assert config.num_video_feature_tokens == 3 * 2 * 16
    assert config.video_noise_shape == (3, 1, 4, 8, 8)
    assert config.value_noise_shape == (16, 1)
    assert config.future_frame_offsets == (16,)


def test_base_preset_is_valid_and_larger() -> None:
    base, tiny = WAVConfig.base(), WAVConfig.tiny()
    assert base.memory_frames == 4 and base.video.cross_view_every == 3
    assert base.tokens_per_frame == 196
    assert base.video.hidden_size > tiny.video.hidden_size
    assert base.chunk_size == 54


@pytest.mark.parametrize("preset", [WAVConfig.tiny, WAVConfig.base])
def test_json_round_trip(preset) -> None:
    config = preset()
    restored = WAVConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: VideoExpertConfig(hidden_size=65, num_heads=4), "divisible by num_heads"),
        (lambda: TokenizerConfig(image_size=60), "downsample factor"),
        (lambda: TokenizerConfig(block_out_channels=(16, 30)), "norm_num_groups"),
        (lambda: WAVConfig(chunk_size=0), "chunk_size"),
        (lambda: WAVConfig(camera_names=("a", "a")), "duplicates"),
        (lambda: WAVConfig(future_frames=20, chunk_size=16), "future_frames"),
        (lambda: WAVConfig(video=VideoExpertConfig(patch_size=3)), "patch_size"),
        (lambda: WAVConfig(memory_frames=True), "memory_frames"),
        (lambda: WAVConfig(action_noise_scale=1.5), "action_noise_scale"),
        (lambda: WAVConfig(action_noise_scale=-0.1), "action_noise_scale"),
        (lambda: WAVConfig(stall_noise_scale=2.0), "stall_noise_scale"),
        (lambda: WAVConfig(stall_tolerance=0.0), "stall_tolerance"),
        (lambda: WAVConfig(execute_steps=0), "execute_steps"),
        (lambda: WAVConfig(chunk_size=16, execute_steps=17), "execute_steps"),
        (lambda: WAVConfig(execute_steps=12.0), "execute_steps"),
    ],
)
def test_invalid_configs_are_rejected_with_the_field_named(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_fields_are_rejected() -> None:
    data = WAVConfig.tiny().to_dict()
    data["video"]["depth"] = 3
    with pytest.raises(ValueError, match=r"unknown fields.*depth"):
        WAVConfig.from_dict(data)


def test_execute_steps_defaults_to_half_the_chunk_and_is_saved() -> None:
    assert WAVConfig(chunk_size=16).execute_steps == 8
    assert WAVConfig(chunk_size=1).execute_steps == 1
    config = WAVConfig(chunk_size=16, execute_steps=12)
    assert WAVConfig.from_dict(json.loads(json.dumps(config.to_dict()))).execute_steps == 12
    older = WAVConfig.tiny().to_dict()  # a checkpoint saved before the field existed
    del older["execute_steps"]
    assert WAVConfig.from_dict(older).execute_steps == older["chunk_size"] // 2
