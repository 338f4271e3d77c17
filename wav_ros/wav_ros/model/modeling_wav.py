"""WAVPolicy: the World-Value-Action model and the one inference API everything downstream uses.

Inference shapes (M video candidates, N value noises per candidate, V views, Ff future frames,
C×h×h latent grid, L = chunk_size, C_val value channels, Lyr blocks, T video feature tokens =
V·(memory_frames + future_frames)·tokens_per_frame, Dv/Dq expert widths), all float32:

- video noise (M, V, Ff, C, h, h)                   -> imagine -> VideoFeatures (M, Lyr, T, Dv)
- value noise (M, N, L, C_val) + VideoFeatures      -> score   -> values (M, N, L), SNR (M, N),
                                                                  ValueFeatures (M, N, Lyr, L, Dq)
- VideoFeatures (1, ...) + ValueFeatures (1, 1, ...) -> decode_actions -> (L, action_dim)

`plan` runs the whole loop (LatentTrajectoryPlanner over imagine/score, then decode_actions);
the ROS nodes call the pieces across processes, shipping `to_tensor()` payloads.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from wav_ros.model.configuration_wav import WAVConfig
from wav_ros.model.experts import ActionExpert, MemoryCache, ValueExpert, VideoExpert
from wav_ros.model.flow_matching import (
    euler_partial,
    euler_sample,
    noised_to,
    noisy_pair,
    random_normal,
)
from wav_ros.model.layers import NUM_TRAIN_TIMESTEPS
from wav_ros.model.normalization import Normalizer
from wav_ros.model.text_encoder import InstructionEncoder
from wav_ros.model.tokenizer import VisualTokenizer
from wav_ros.planning.planner import LatentTrajectoryPlanner, PlannerConfig, signal_to_noise

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_NAME = "wav_ros.WAVPolicy"
FORMAT_VERSION = 1
STAGES = ("tokenizer", "video", "value", "action")
SNR_EPSILON = 1e-6


@dataclass
class ObservationContext:
    """Everything the experts need about one observation, computed once by encode_observation:
    the memory frames' per-block cache (instruction keys included) and the normalised state.
    A context from encode_state has no memory: it serves decode_actions only."""

    memory: MemoryCache | None
    state: Tensor
    """Normalised proprioceptive state (1, state_dim)."""
    instruction: str

    def require_memory(self) -> MemoryCache:
        if self.memory is None:
            raise ValueError(
                "this context holds only the state (encode_state); imagine and decode_frames "
                "need one from encode_observation"
            )
        return self.memory


@dataclass
class VideoFeatures:
    """Latent trajectory features: per-block video hidden states (M, Lyr, T, Dv) float32."""

    hidden_states: Tensor

    def __len__(self) -> int:
        return self.hidden_states.shape[0]

    def to_tensor(self) -> Tensor:
        """The flat payload for a message: a contiguous float32 CPU tensor (M, Lyr, T, Dv)."""
        return self.hidden_states.detach().float().cpu().contiguous()

    @classmethod
    def from_tensor(cls, tensor: Tensor) -> VideoFeatures:
        return cls(_checked_payload(tensor, 4, "VideoFeatures"))

    def select(self, index: int) -> VideoFeatures:
        """The features of one candidate, keeping the candidate axis."""
        return VideoFeatures(self.hidden_states[index : index + 1])


@dataclass
class ValueFeatures:
    """Per-block value hidden states of denoised value chunks (M, N, Lyr, L, Dq) float32."""

    hidden_states: Tensor

    def to_tensor(self) -> Tensor:
        """The flat payload for a message: a contiguous float32 CPU tensor (M, N, Lyr, L, Dq)."""
        return self.hidden_states.detach().float().cpu().contiguous()

    @classmethod
    def from_tensor(cls, tensor: Tensor) -> ValueFeatures:
        return cls(_checked_payload(tensor, 5, "ValueFeatures"))

    def select(self, video_index: int, value_index: int) -> ValueFeatures:
        """The features of one (candidate, value noise) pair, keeping both axes."""
        return ValueFeatures(
            self.hidden_states[video_index : video_index + 1, value_index : value_index + 1]
        )


def _checked_payload(tensor: Tensor, dims: int, name: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} payload must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != dims or tensor.dtype != torch.float32:
        raise ValueError(
            f"{name} payload must be a {dims}-d float32 tensor, "
            f"got shape {tuple(tensor.shape)} {tensor.dtype}"
        )
    return tensor


@dataclass
class ValueScores:
    """Outcome of the value sampler for (M, N) value noises."""

    values: Tensor
    """De-normalised predicted return-to-go per step (last value channel), (M, N, L)."""
    snr: Tensor
    """mean_t(values) / (std_t(values) + 1e-6), (M, N)."""
    samples: Tensor
    """Denoised value chunks in the expert's normalised, symlog'd space, (M, N, L, C_val)."""
    features: ValueFeatures | None
    """Value hidden states of the denoised chunks, for decode_actions (None if not requested)."""


@dataclass
class PlanResult:
    """What plan() returns."""

    actions: np.ndarray
    """(chunk_size, action_dim) float32 absolute joint positions."""
    predicted_value: float
    """Predicted return-to-go of the chosen trajectory at its first step."""
    values_per_step: np.ndarray
    """(chunk_size,) float32 predicted return-to-go per step."""
    stats: dict[str, Any] = field(default_factory=dict)
    """Planner statistics (per-iteration SNRs, sigmas) and the chosen trajectory's SNR."""
    frames: np.ndarray | None = None
    """(future_frames, views, H, W, 3) uint8 imagined frames, when requested."""
    video_noise: Tensor | None = None
    """The chosen video noise (views, future_frames, C, h, h)."""
    value_noise: Tensor | None = None
    """The chosen value noise (chunk_size, value_channels)."""


class WAVPolicy(nn.Module):
    """Video, value and action experts over a VAE tokenizer and a frozen text encoder."""

    def __init__(
        self, config: WAVConfig | None = None, planner_config: PlannerConfig | None = None
    ) -> None:
        super().__init__()
        self.config = config or WAVConfig.tiny()
        self.tokenizer = VisualTokenizer(self.config.tokenizer)
        self.video = VideoExpert(self.config)
        self.value = ValueExpert(self.config)
        self.action = ActionExpert(self.config)
        self.normalizer = Normalizer(self.config)
        self.instruction_encoder = InstructionEncoder(self.config.text_encoder)
        self.planner = LatentTrajectoryPlanner(planner_config)
        self._last_plan: tuple[str, np.ndarray] | None = None
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.normalizer.action_q01.device

    # ------------------------------------------------------------------ inference
    def reset(self) -> None:
        """Drop the planner's warm start and the last plan's state (call at the start of an
        episode)."""
        self.planner.reset()
        self._last_plan = None

    def action_noise_scale_for(self, state: np.ndarray, instruction: str) -> tuple[float, bool]:
        """(noise scale, stalled) for the action sampler of a plan from `state`: the config's
        stall_noise_scale when no joint moved more than stall_tolerance since the previous plan
        for this instruction, else its action_noise_scale. Remembers this plan's state."""
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        previous, self._last_plan = self._last_plan, (instruction, state.copy())
        tolerance = self.config.stall_tolerance
        stalled = (
            tolerance is not None
            and previous is not None
            and previous[0] == instruction
            and float(np.abs(state - previous[1]).max()) <= tolerance
        )
        if stalled:
            return self.config.stall_noise_scale, True
        return self.config.action_noise_scale, False

    def reset_action_expert(self, hidden_size: int, num_heads: int) -> None:
        """Replace the action expert with a freshly initialised one of this size, keeping the
        tokenizer, the video and value experts and the normalisation, so that an action stage
        can train an expert of another size on a world model already trained."""
        self.config.action = replace(
            self.config.action, hidden_size=hidden_size, num_heads=num_heads
        )
        self.action = ActionExpert(self.config).to(self.device)

    def set_normalization(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Set normalisation statistics (see Normalizer.set_stats); saved with the weights."""
        self.normalizer.set_stats(stats)

    @torch.no_grad()
    def encode_observation(
        self, images: Mapping[str, np.ndarray], state: np.ndarray, instruction: str
    ) -> ObservationContext:
        """Validate and encode one observation.

        images: camera name -> uint8 (H, W, 3), or (memory_frames, H, W, 3) oldest first; a
        single frame stands for all memory frames (as at the start of an episode). H = W =
        config.tokenizer.image_size (use `resize_images` to adapt other sizes).
        state: (state_dim,) finite joint positions. instruction: a non-empty string.
        """
        frames = self._checked_images(images)
        state_tensor = self._checked_state(state)
        text, text_mask = self.instruction_encoder(instruction)
        pixels = VisualTokenizer.to_pixels(frames.to(self.device))[None]
        latents = self.normalizer.normalize_latent(self.tokenizer.encode(pixels))
        memory = self.video.encode_memory(latents, text.to(self.device), text_mask.to(self.device))
        return ObservationContext(
            memory, self.normalizer.normalize_state(state_tensor)[None], instruction
        )

    @torch.no_grad()
    def encode_state(self, state: np.ndarray) -> ObservationContext:
        """A context for decode_actions alone (a process that receives features, not images)."""
        state_tensor = self._checked_state(state)
        return ObservationContext(None, self.normalizer.normalize_state(state_tensor)[None], "")

    @torch.no_grad()
    def imagine(self, context: ObservationContext, video_noise: Tensor) -> VideoFeatures:
        """Latent trajectory features per video noise (M, V, Ff, C, h, h): the world model's
        hidden states with the future at config.feature_noise_level, reached from the noise
        in config.imagination_steps Euler steps (none at 1: one pass at pure noise)."""
        noise = self._checked_noise(video_noise, self.config.video_noise_shape, "video_noise", 1)
        memory = context.require_memory()
        level = self.config.feature_noise_level
        future = noise
        if level < 1.0:
            future = euler_partial(
                lambda x, t: self.video(x, t, memory)[0],
                noise,
                level,
                self.config.imagination_steps,
            )
        timesteps = torch.full((1,), level * NUM_TRAIN_TIMESTEPS, device=self.device)
        _, hidden = self.video(future, timesteps, memory)
        return VideoFeatures(VideoExpert.features(memory, hidden))

    @torch.no_grad()
    def score(
        self,
        context: ObservationContext | None,
        video_features: VideoFeatures,
        value_noise: Tensor,
        return_features: bool = True,
    ) -> ValueScores:
        """Run the value sampler for value noises (M, N, L, C_val) on features of M candidates.

        The context is not needed by the value expert (it may be None); it is accepted so that
        every call of the API has the same shape.
        """
        del context
        features = self._checked_features(video_features)
        noise = self._checked_noise(value_noise, self.config.value_noise_shape, "value_noise", 2)
        if noise.shape[0] != features.shape[0]:
            raise ValueError(
                f"value_noise has {noise.shape[0]} candidates but video_features has "
                f"{features.shape[0]}"
            )
        video_kv = self.value.project_video(features)
        samples = self._denoise_values(video_kv, noise)
        values = self.normalizer.unnormalize_value(samples)[..., -1]
        value_features = None
        if return_features:
            value_features = ValueFeatures(self._value_hidden(video_kv, samples))
        snr = signal_to_noise(values, SNR_EPSILON)
        return ValueScores(values, snr, samples, value_features)

    @torch.no_grad()
    def decode_actions(
        self,
        context: ObservationContext,
        video_features: VideoFeatures,
        value_features: ValueFeatures,
        generator: torch.Generator | None = None,
        noise_scale: float | None = None,
    ) -> np.ndarray:
        """Denoise an action chunk for ONE trajectory: video features (1, ...) and value features
        (1, 1, ...). Returns (chunk_size, action_dim) float32 absolute joint positions.
        noise_scale: the sampler's starting noise scale (None: config.action_noise_scale)."""
        video = self._checked_features(video_features)
        value = value_features.hidden_states.to(self.device)
        if video.shape[0] != 1 or value.shape[:2] != (1, 1):
            raise ValueError(
                "decode_actions needs features of exactly one trajectory: video (1, ...) and "
                f"value (1, 1, ...), got {tuple(video.shape[:1])} and {tuple(value.shape[:2])}"
            )
        contexts = self.action.project_contexts(video, value[:, 0])
        token_dim = self.config.action_dim + self.config.state_dim
        noise = random_normal((1, self.config.chunk_size, token_dim), generator, self.device)
        tokens = euler_sample(
            lambda x, t: self.action(x, context.state, t, contexts),
            noise * (self.config.action_noise_scale if noise_scale is None else noise_scale),
            self.config.action_sampling_steps,
        )
        actions = self.normalizer.unnormalize_action(tokens[0, :, : self.config.action_dim])
        return actions.cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def decode_frames(
        self, context: ObservationContext, video_noise: Tensor, num_steps: int | None = None
    ) -> np.ndarray:
        """Denoise one video noise (V, Ff, C, h, h) (or (1, ...)) into future latents and decode
        them with the VAE: uint8 (future_frames, views, H, W, 3), for display."""
        noise = video_noise if video_noise.dim() == 6 else video_noise[None]
        noise = self._checked_noise(noise, self.config.video_noise_shape, "video_noise", 1)
        if noise.shape[0] != 1:
            raise ValueError(f"decode_frames takes one video noise, got {noise.shape[0]}")
        memory = context.require_memory()
        latents = euler_sample(
            lambda x, t: self.video(x, t, memory)[0],
            noise,
            num_steps or self.config.video_sampling_steps,
        )
        pixels = self.tokenizer.decode(self.normalizer.unnormalize_latent(latents[0]))
        return VisualTokenizer.to_uint8(pixels).transpose(0, 1).cpu().numpy()

    @torch.no_grad()
    def plan(
        self,
        images: Mapping[str, np.ndarray],
        state: np.ndarray,
        instruction: str,
        planner_config: PlannerConfig | None = None,
        seed: int | None = None,
        return_frames: bool = False,
    ) -> PlanResult:
        """Observation -> planned action chunk (latent trajectory planning, then decoding).

        A planner_config different from the current one replaces the planner (and its warm
        start). seed makes the call reproducible; None continues the planner's own stream.
        """
        if planner_config is not None and planner_config != self.planner.config:
            self.planner = LatentTrajectoryPlanner(planner_config)
        context = self.encode_observation(images, state, instruction)
        noise_scale, stalled = self.action_noise_scale_for(state, instruction)
        seeded = None if seed is None else torch.Generator().manual_seed(seed)
        generator = seeded if seeded is not None else self.planner.generator
        outcome = self.planner.plan(
            imagine=lambda noise: self.imagine(context, noise),
            score=lambda feats, noise: self.score(context, feats, noise, False).values,
            video_shape=self.config.video_noise_shape,
            value_shape=self.config.value_noise_shape,
            generator=generator,
            device=self.device,
        )
        features = self.imagine(context, outcome.video_noise[None])
        scores = self.score(context, features, outcome.value_noise[None, None])
        actions = self.decode_actions(context, features, scores.features, generator, noise_scale)
        frames = self.decode_frames(context, outcome.video_noise) if return_frames else None
        values = scores.values[0, 0].cpu().numpy().astype(np.float32)
        stats = dict(
            outcome.stats,
            final_snr=scores.snr.item(),
            stalled=stalled,
            action_noise_scale=noise_scale,
        )
        return PlanResult(
            actions=actions,
            predicted_value=float(values[0]),
            values_per_step=values,
            stats=stats,
            frames=frames,
            video_noise=outcome.video_noise.cpu(),
            value_noise=outcome.value_noise.cpu(),
        )

    # ------------------------------------------------------------------ validation
    def _checked_images(self, images: Mapping[str, np.ndarray]) -> Tensor:
        """-> uint8 tensor (V, memory_frames, H, W, 3) in config.camera_names order."""
        if not isinstance(images, Mapping):
            raise TypeError(f"images must be a mapping camera name -> array, got {type(images)}")
        names = self.config.camera_names
        missing = [n for n in names if n not in images]
        extra = [n for n in images if n not in names]
        if missing or extra:
            raise ValueError(
                f"images must have exactly the views {list(names)}; missing {missing}, "
                f"unexpected {extra}"
            )
        size = self.config.tokenizer.image_size
        memory = self.config.memory_frames
        views = []
        for name in names:
            image = images[name]
            if not isinstance(image, np.ndarray):
                raise TypeError(f"image {name!r} must be a numpy array, got {type(image).__name__}")
            if image.dtype != np.uint8:
                raise TypeError(f"image {name!r} must be uint8, got {image.dtype}")
            if image.ndim == 3:
                image = np.repeat(image[None], memory, axis=0)
            if image.ndim != 4 or image.shape[1:] != (size, size, 3) or image.shape[0] != memory:
                raise ValueError(
                    f"image {name!r} must have shape ({size}, {size}, 3) or ({memory}, {size}, "
                    f"{size}, 3), got {images[name].shape}"
                )
            views.append(torch.from_numpy(np.ascontiguousarray(image)))
        return torch.stack(views)

    def _checked_state(self, state: np.ndarray) -> Tensor:
        array = np.asarray(state)
        if array.shape != (self.config.state_dim,):
            raise ValueError(f"state must have shape ({self.config.state_dim},), got {array.shape}")
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(
            array.dtype, np.complexfloating
        ):
            raise TypeError(f"state must be real numbers, got {array.dtype}")
        if not np.isfinite(array).all():
            raise ValueError(f"state has non-finite entries: {array.tolist()}")
        return torch.from_numpy(array.astype(np.float32)).to(self.device)

    def _checked_noise(
        self, noise: Tensor, item_shape: tuple[int, ...], name: str, batch_dims: int
    ) -> Tensor:
        if not isinstance(noise, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(noise).__name__}")
        if (
            noise.dim() != batch_dims + len(item_shape)
            or tuple(noise.shape[batch_dims:]) != item_shape
        ):
            expected = ("B",) * batch_dims + item_shape
            raise ValueError(f"{name} must have shape {expected}, got {tuple(noise.shape)}")
        if noise.dtype != torch.float32:
            raise TypeError(f"{name} must be float32, got {noise.dtype}")
        if not torch.isfinite(noise).all():
            raise ValueError(f"{name} has non-finite entries")
        return noise.to(self.device)

    def _checked_features(self, video_features: VideoFeatures) -> Tensor:
        if not isinstance(video_features, VideoFeatures):
            raise TypeError(f"expected VideoFeatures, got {type(video_features).__name__}")
        features = video_features.hidden_states
        expected = (
            self.config.num_layers,
            self.config.num_video_feature_tokens,
            self.config.video.hidden_size,
        )
        if tuple(features.shape[1:]) != expected:
            raise ValueError(
                f"video features must have shape (M, {', '.join(map(str, expected))}), "
                f"got {tuple(features.shape)}"
            )
        return features.to(self.device)

    # ------------------------------------------------------------------ training
    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        """The parameters a training stage updates (the others stay frozen)."""
        modules = {
            "tokenizer": self.tokenizer,
            "video": self.video,
            "value": self.value,
            "action": self.action,
        }
        if stage not in modules:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        parameters = list(modules[stage].parameters())
        if stage == "action" and self.config.action.video_loss_weight is not None:
            parameters += self.video.parameters()
        return parameters

    def compute_loss(
        self, batch: Mapping[str, Any], stage: str, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Training loss of one stage on a batch of B samples.

        Batch (tensors on any device; missing keys raise):
        - "images": uint8 (B, V, Fm + Ff, H, W, 3), memory frames then future frames (the future
          frames at config.future_frame_offsets steps ahead), or "latents": float (B, V, Fm + Ff,
          C, h, h) raw VAE latents precomputed with `tokenizer.encode`;
        - "instruction": list of B strings, or "instruction_embeddings" (B, T, E) with optional
          "instruction_mask" (B, T) bool;
        - "state": (B, state_dim) current joint positions;
        - "actions": (B, chunk_size, action_dim) absolute joint targets;
        - "future_states": (B, chunk_size, state_dim) joint positions after each action;
        - "values": (B, chunk_size, value_channels) raw targets (last: discounted return-to-go).
        Stages: "tokenizer" (VAE on all frames; needs images), "video" (flow matching on future
        latents, clean memory), "value" (video features under no_grad, the true future noised
        to config.feature_noise_level: pure noise by default),
        "action" (value features under no_grad; the value expert reads the true value chunk as
        a clean sample, or one it samples; video features under no_grad too unless
        action.video_loss_weight is set, which trains the video expert as well). Returns
        (scalar loss, logs).
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if stage == "tokenizer":
            pixels = VisualTokenizer.to_pixels(_batch_item(batch, "images").to(self.device))
            loss, logs = self.tokenizer.loss(pixels.reshape(-1, *pixels.shape[-3:]), generator)
            return loss, {"loss": loss.item(), **logs}
        latents = self._batch_latents(batch)
        memory_latents = latents[:, :, : self.config.memory_frames]
        future_latents = latents[:, :, self.config.memory_frames :]
        text, text_mask = self._batch_text(batch)
        if stage == "video":
            memory = self.video.encode_memory(memory_latents, text, text_mask)
            noisy, timesteps, target = noisy_pair(future_latents, generator)
            prediction, _ = self.video(noisy, timesteps, memory)
            loss = F.mse_loss(prediction, target)
            return loss, {"loss": loss.item()}
        video_loss_weight = self.config.action.video_loss_weight if stage == "action" else None
        with torch.no_grad() if video_loss_weight is None else contextlib.nullcontext():
            memory = self.video.encode_memory(memory_latents, text, text_mask)
            video_noise = random_normal(tuple(future_latents.shape), generator, self.device)
            future, timesteps = noised_to(
                future_latents, self.config.feature_noise_level, video_noise
            )
            _, hidden = self.video(future, timesteps, memory)
            video_features = VideoExpert.features(memory, hidden)
        values = self.normalizer.normalize_value(_batch_item(batch, "values").to(self.device))
        self._check_batch_shape(values, self.config.value_noise_shape, "values")
        if stage == "value":
            video_kv = self.value.project_video(video_features)
            noisy, timesteps, target = noisy_pair(values[:, None], generator)
            prediction, _ = self.value(noisy, timesteps, video_kv)
            loss = F.mse_loss(prediction, target)
            return loss, {"loss": loss.item()}
        with torch.no_grad():
            video_kv = self.value.project_video(video_features)
            chunks = values[:, None]
            if self.config.action.value_conditioning == "sampled_chunk":
                noise = random_normal(tuple(chunks.shape), generator, self.device)
                chunks = self._denoise_values(video_kv, noise)
            value_features = self._value_hidden(video_kv, chunks)[:, 0]
        state = self.normalizer.normalize_state(_batch_item(batch, "state").to(self.device))
        actions = self.normalizer.normalize_action(_batch_item(batch, "actions").to(self.device))
        futures = self.normalizer.normalize_state(
            _batch_item(batch, "future_states").to(self.device)
        )
        self._check_batch_shape(
            actions, (self.config.chunk_size, self.config.action_dim), "actions"
        )
        self._check_batch_shape(
            futures, (self.config.chunk_size, self.config.state_dim), "future_states"
        )
        contexts = self.action.project_contexts(video_features, value_features)
        noisy, timesteps, target = noisy_pair(torch.cat([actions, futures], dim=-1), generator)
        prediction = self.action(noisy, state, timesteps, contexts)
        loss = F.mse_loss(prediction, target)
        logs = {
            "action_loss": F.mse_loss(
                prediction[..., : self.config.action_dim], target[..., : self.config.action_dim]
            ).item(),
        }
        if video_loss_weight is not None:
            noisy, timesteps, target = noisy_pair(future_latents, generator)
            video_loss = F.mse_loss(self.video(noisy, timesteps, memory)[0], target)
            loss = loss + video_loss_weight * video_loss
            logs["video_loss"] = video_loss.item()
        return loss, {"loss": loss.item(), **logs}

    def clean_value_features(self, video_features: Tensor, values: Tensor) -> Tensor:
        """Value hidden states (B, Lyr, L, Dq) of known, normalised value chunks (B, L, C_val):
        what the action expert is trained on by default (inference reads sampled chunks)."""
        video_kv = self.value.project_video(video_features)
        return self._value_hidden(video_kv, values[:, None])[:, 0]

    def _denoise_values(self, video_kv: list[Tensor], noise: Tensor) -> Tensor:
        """Value chunks (M, N, L, C_val) sampled from noises of that shape."""
        return euler_sample(
            lambda x, t: self.value(x, t, video_kv)[0], noise, self.config.value_sampling_steps
        )

    def _value_hidden(self, video_kv: list[Tensor], chunks: Tensor) -> Tensor:
        """Per-block value hidden states (M, N, Lyr, L, Dq) of clean chunks (M, N, L, C_val)."""
        _, hidden = self.value(chunks, torch.zeros(1, device=self.device), video_kv)
        return torch.stack(hidden, dim=2)

    def _batch_latents(self, batch: Mapping[str, Any]) -> Tensor:
        frames = self.config.memory_frames + self.config.future_frames
        if "latents" in batch:
            raw = batch["latents"].to(self.device).float()
        else:
            images = _batch_item(batch, "images").to(self.device)
            size = self.config.tokenizer.image_size
            self._check_batch_shape(
                images, (self.config.num_views, frames, size, size, 3), "images"
            )
            with torch.no_grad():
                raw = self.tokenizer.encode(VisualTokenizer.to_pixels(images))
        latent = self.config.tokenizer.latent_size
        item = (
            self.config.num_views,
            frames,
            self.config.tokenizer.latent_channels,
            latent,
            latent,
        )
        self._check_batch_shape(raw, item, "latents")
        return self.normalizer.normalize_latent(raw)

    def _batch_text(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        if "instruction_embeddings" in batch:
            embeddings = batch["instruction_embeddings"].to(self.device).float()
            mask = batch.get("instruction_mask")
            if mask is None:
                mask = torch.ones(embeddings.shape[:2], dtype=torch.bool)
            return embeddings, mask.to(self.device).bool()
        embeddings, mask = self.instruction_encoder.batch(list(_batch_item(batch, "instruction")))
        return embeddings.to(self.device), mask.to(self.device)

    @staticmethod
    def _check_batch_shape(tensor: Tensor, item_shape: tuple[int, ...], name: str) -> None:
        if tuple(tensor.shape[1:]) != tuple(item_shape):
            raise ValueError(
                f"batch[{name!r}] must have shape (B, {', '.join(map(str, item_shape))}), "
                f"got {tuple(tensor.shape)}"
            )

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors (weights and normalisation statistics)."""
        from safetensors.torch import save_file

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
        }
        (path / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        planner_config: PlannerConfig | None = None,
        device: torch.device | str = "cpu",
    ) -> WAVPolicy:
        """Load a save_pretrained directory; raise a clear error for a missing or corrupt file
        and for weights that do not match the config."""
        from safetensors.torch import load_file

        path = Path(directory)
        config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        for required in (config_path, weights_path):
            if not required.is_file():
                raise FileNotFoundError(f"checkpoint file not found: {required}")
        try:
            document = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{config_path} is not valid JSON: {error}") from error
        if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
            raise ValueError(f"{config_path} is not a {FORMAT_NAME} config")
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{config_path} has format_version {document.get('format_version')!r}; this code "
                f"reads version {FORMAT_VERSION}"
            )
        try:
            config = WAVConfig.from_dict(document["config"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"{config_path} has an invalid config: {error}") from error
        try:
            state = load_file(str(weights_path))
        except Exception as error:  # safetensors raises its own SafetensorError
            raise ValueError(
                f"{weights_path} is not a readable safetensors file: {error}"
            ) from error
        model = cls(config, planner_config)
        _check_state_dict(model.state_dict(), state, weights_path)
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()


def _batch_item(batch: Mapping[str, Any], key: str) -> Any:
    if key not in batch:
        raise ValueError(f"training batch has no {key!r} entry (keys: {sorted(batch)})")
    return batch[key]


def _check_state_dict(
    expected: Mapping[str, Tensor], found: Mapping[str, Tensor], where: Path
) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [
        f"{key}: checkpoint {tuple(found[key].shape)} vs config {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(found))
        if found[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        lines = [f"{where} does not match its config.json:"]
        if missing:
            lines.append(f"  missing tensors ({len(missing)}): {missing[:5]}")
        if unexpected:
            lines.append(f"  unexpected tensors ({len(unexpected)}): {unexpected[:5]}")
        if mismatched:
            lines.append(f"  shape mismatches ({len(mismatched)}): {mismatched[:5]}")
        raise ValueError("\n".join(lines))


def resize_images(images: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Resize uint8 (H, W, 3) camera images to (size, size, 3) with antialiased bilinear
    interpolation (aspect ratio is not kept); a helper for callers whose cameras differ."""
    resized = {}
    for name, image in images.items():
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
            raise TypeError(f"image {name!r} must be a uint8 (H, W, 3) array")
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        out = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
        resized[name] = out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return resized
