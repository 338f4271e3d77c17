"""Settings of a training run (one dataclass, validated; the CLI maps onto it one to one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wav_ros.model.configuration_wav import VALUE_CONDITIONING
from wav_ros.training.data import DataConfig

#: WAV's stages in training order: the VAE tokenizer first (its latents are then cached), then
#: the paper's three: video adaptation, value, action post-training.
WAV_STAGES: tuple[str, ...] = ("tokenizer", "video", "value", "action")
POLICIES: tuple[str, ...] = ("wav", "direct")


@dataclass
class TrainConfig:
    """One training run: which stages of which policy, on which data, for how long."""

    datasets: tuple[Path, ...]
    """LeRobot v2.x dataset roots (ours from wav_ros.data.record, or a user's), trained on as
    one; a single path is accepted."""
    out: Path
    """Run folder: per-stage checkpoints, final weights, metrics.jsonl, train_summary.json."""
    stages: tuple[str, ...] = WAV_STAGES
    """Stages to run, in order (WAV: a subset of WAV_STAGES; direct baseline: ("action",))."""
    steps: dict[str, int] = field(default_factory=lambda: {s: 1000 for s in WAV_STAGES})
    """Optimizer steps per stage."""
    policy: str = "wav"
    """"wav", or "direct" (the baseline: one transformer from latents and state to actions)."""
    model: str = "tiny"
    """WAVConfig preset ("tiny", "base") or a JSON config path, used when nothing to resume."""
    init: Path | None = None
    """save_pretrained folder to start the first stage from (default: this run's last finished
    stage, else fresh weights). The direct baseline takes its frozen VAE from here."""
    batch_size: int = 16
    """Samples per step and process."""
    learning_rate: float = 3e-4
    """Peak AdamW learning rate (tokenizer stage: the same)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 50
    """Linear warm-up, then cosine decay to 10 % over the stage."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    ema_decay: float = 0.0
    """Decay of an exponential moving average of the trained weights (0: none; 0.999 averages
    about the last 1,000 steps). Checkpoints' pretrained/ and final/ then hold the average;
    the raw weights stay in the resumable state."""
    save_every: int = 200
    """Steps between resumable checkpoints (also written at the end of a stage)."""
    keep_checkpoints: int = 2
    """Resumable checkpoints kept per stage (older ones are deleted)."""
    log_every: int = 10
    """Steps between metrics.jsonl rows."""
    eval_every: int = 0
    """Steps between closed-loop evaluations during the action stage (0: never)."""
    eval_episodes: int = 2
    """Episodes per task of those evaluations."""
    eval_tasks: tuple[str, ...] = ("transfer_cube",)
    """Tasks of those evaluations."""
    seed: int = 0
    """Seed of weights, batches and flow-matching noise."""
    resume: bool = True
    """Continue from the newest checkpoint in `out` (finished stages are skipped)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Which windows of the dataset are samples."""
    latent_cache: Path | None = None
    """Folder of the cached VAE latents (None: `out`/latents), one file per dataset, keyed by
    the tokenizer's weights, the dataset (path and episode lengths) and the windows' frames.
    Runs with the same tokenizer may share one (the direct baseline beside its WAV run, a later
    phase, a run on one more dataset): they read no images for, and do not encode, the
    datasets cached already."""
    mixed_precision: str = "no"
    """accelerate's mixed precision: "no", "fp16", "bf16"."""
    progress: bool = True
    """Show tqdm bars (loss, throughput, ETA)."""
    torch_threads: int | None = None
    """torch intra-op threads per process (None: torch's default). On a CPU shared with other
    jobs 1 is far faster: threads that wait for each other's time slices stall every op."""
    value_conditioning: str | None = None
    """Sets the WAV model's action.value_conditioning ("true_chunk", "sampled_chunk") for this
    run and the checkpoints it writes; None keeps the model's own."""
    feature_noise_level: float | None = None
    """Sets the WAV model's feature_noise_level (the noise level of the video pass the value and
    action experts read) for this run and its checkpoints; None keeps the model's own. A new
    level needs the value stage in the run: the value expert was trained on the old one's
    features."""
    video_loss_weight: float | None = None
    """Sets the WAV model's action.video_loss_weight for this run and its checkpoints: a number
    makes the action stage train the video expert too (the action loss through its features
    plus this weight times its flow-matching loss); None keeps the model's own."""
    action_size: tuple[int, int] | None = None
    """(width, heads) of the WAV model's action expert for this run: a size other than the
    model's replaces its action expert with a fresh one (seeded by `seed`) on the trained
    tokenizer, video and value experts, for the action stage to train; None keeps the model's
    own."""

    def __post_init__(self) -> None:
        single = isinstance(self.datasets, (str, Path))
        self.datasets = tuple(Path(d) for d in ([self.datasets] if single else self.datasets))
        if not self.datasets:
            raise ValueError("datasets must name at least one dataset root")
        self.out = Path(self.out)
        self.init = Path(self.init) if self.init is not None else None
        self.latent_cache = Path(self.latent_cache) if self.latent_cache is not None else None
        self.stages = tuple(self.stages)
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        allowed = WAV_STAGES if self.policy == "wav" else ("action",)
        if not self.stages or any(s not in allowed for s in self.stages):
            raise ValueError(
                f"stages for policy {self.policy!r} must be in {allowed}, got {self.stages}"
            )
        if list(self.stages) != sorted(self.stages, key=allowed.index):
            raise ValueError(f"stages must be in training order {allowed}, got {self.stages}")
        missing = [s for s in self.stages if s not in self.steps]
        if missing:
            raise ValueError(f"no step count for stages {missing}")
        for stage, count in self.steps.items():
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"steps[{stage!r}] must be a positive int, got {count!r}")
        for name in ("batch_size", "save_every", "keep_checkpoints", "log_every", "eval_episodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("warmup_steps", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an int >= 0, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.weight_decay < 0 or not self.grad_clip > 0:
            raise ValueError("weight_decay must be >= 0 and grad_clip > 0")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(
                f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}"
            )
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1 or None, got {self.torch_threads}")
        if self.value_conditioning not in (None, *VALUE_CONDITIONING):
            raise ValueError(
                f"value_conditioning must be one of {VALUE_CONDITIONING} or None, "
                f"got {self.value_conditioning!r}"
            )
        if self.video_loss_weight is not None and self.video_loss_weight < 0:
            raise ValueError(
                f"video_loss_weight must be >= 0 or None, got {self.video_loss_weight}"
            )
        if self.action_size is not None:
            size = self.action_size = tuple(self.action_size)
            valid = len(size) == 2 and all(isinstance(n, int) and n >= 1 for n in size)
            if not valid or size[0] % size[1]:
                raise ValueError(
                    f"action_size must be (width, heads), positive ints with heads dividing "
                    f"width, got {size}"
                )
            if self.policy != "wav" or "action" not in self.stages:
                raise ValueError(
                    "action_size resizes WAV's action expert, so it needs policy 'wav' and the "
                    "action stage (a fresh expert is untrained)"
                )
        if self.feature_noise_level is not None and not 0 < self.feature_noise_level <= 1:
            raise ValueError(
                f"feature_noise_level must be in (0, 1] or None, got {self.feature_noise_level}"
            )
        if self.policy == "direct" and self.init is None:
            raise ValueError(
                "the direct baseline needs --init: a WAV checkpoint whose "
                "tokenizer (VAE) it reuses, frozen, or a direct checkpoint to continue"
            )
