"""Latent trajectory planning (WAV's Algorithm 1): search the world model's input noise and the
value sampler's noise for trajectories whose predicted value curve has a high signal-to-noise
ratio, then hand one (video noise, value noise) pair to the action decoder.

The planner knows nothing about the model: it takes two callables,

- ``imagine(video_noise (M, *video_shape)) -> features`` (one video pass per noise; the features
  are opaque to the planner and passed on to ``score``),
- ``score(features, value_noise (M, N, *value_shape)) -> values (M, N, L)`` (denoised values),

so the same code plans in-process, over ROS services, or on a closed-form test problem.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

ImagineFn = Callable[[Tensor], Any]
ScoreFn = Callable[[Any, Tensor], Tensor]

METHODS = ("wav", "mppi")
FINAL_CHOICES = ("sample", "mean", "best")


@dataclass
class PlannerConfig:
    """Knobs of the latent trajectory planner (defaults: the paper's public ones)."""

    iterations: int = 5
    """K: refinement iterations; 0 disables planning (one draw from the prior, for ablations)."""
    num_video_samples: int = 30
    """M: video noises (imagined futures) per iteration."""
    num_value_samples: int = 5
    """N: value noises per video noise per iteration."""
    value_elite_fraction: float = 0.1
    """Fraction of all M·N value noises, ranked by SNR, refitted into the value distribution."""
    video_elite_fraction: float = 0.9
    """Fraction of the M video noises, ranked by their best SNR, refitted into the video one."""
    sigma_decay: float = 0.5
    """The elites' standard deviation is scaled by this before smoothing (narrows the search)."""
    smoothing: float = 0.9
    """alpha: mu <- alpha·mu + (1 - alpha)·mu_elite (same for sigma)."""
    snr_epsilon: float = 1e-6
    """SNR = mean_t(v) / (std_t(v) + epsilon)."""
    method: str = "wav"
    """"wav": refit to the top elites (the paper); "mppi": refit to all candidates weighted by
    softmax(SNR / temperature)."""
    temperature: float = 0.5
    """Softmax temperature of the "mppi" method (in SNR units); lower is greedier."""
    final_choice: str = "sample"
    """Which noises are decoded: "sample" draws one from the final distributions (the paper),
    "mean" takes their means, "best" takes the highest-SNR (video, value) pair scored during
    the search. With few iterations and alpha = 0.9 the distributions barely leave the prior,
    so a draw from them is nearly a prior draw; "best" lets a short search decide."""
    warm_start: bool = False
    """Start each call's means from the previous call's final means (sigma restarts at 1), as
    TD-MPC2 does. Off by default, as in the paper (every call starts from N(0, I)): a noise
    means nothing across observations, and the means drift out of the prior the experts were
    trained on (in one transfer_cube episode of the shipped tiny model, the value noise's mean
    |mu| grew from 0.07 to 0.75)."""
    seed: int = 0
    """Seed of the planner's own generator, used when a call brings none."""

    def __post_init__(self) -> None:
        for name in ("iterations", "num_video_samples", "num_value_samples", "seed"):
            value = getattr(self, name)
            minimum = 1 if name in ("num_video_samples", "num_value_samples") else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"planner {name} must be an int >= {minimum}, got {value!r}")
        for name in ("value_elite_fraction", "video_elite_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"planner {name} must be in (0, 1], got {value!r}")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"planner smoothing must be in [0, 1), got {self.smoothing!r}")
        if not self.sigma_decay > 0:
            raise ValueError(f"planner sigma_decay must be > 0, got {self.sigma_decay!r}")
        if not self.snr_epsilon > 0:
            raise ValueError(f"planner snr_epsilon must be > 0, got {self.snr_epsilon!r}")
        if not self.temperature > 0:
            raise ValueError(f"planner temperature must be > 0, got {self.temperature!r}")
        if self.method not in METHODS:
            raise ValueError(f"planner method must be one of {METHODS}, got {self.method!r}")
        if self.final_choice not in FINAL_CHOICES:
            raise ValueError(
                f"planner final_choice must be one of {FINAL_CHOICES}, got {self.final_choice!r}"
            )

    def replace(self, **changes: Any) -> PlannerConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class PlanOutcome:
    """The chosen noises (shapes video_shape and value_shape), the final distributions and
    per-iteration statistics (lists have one entry per iteration)."""

    video_noise: Tensor
    value_noise: Tensor
    video_mean: Tensor
    video_std: Tensor
    value_mean: Tensor
    value_std: Tensor
    stats: dict[str, Any] = field(default_factory=dict)


def signal_to_noise(values: Tensor, epsilon: float) -> Tensor:
    """values (..., L) -> mean over the chunk / (std over the chunk + epsilon), shape (...)."""
    return values.mean(-1) / (values.std(-1, unbiased=False) + epsilon)


class LatentTrajectoryPlanner:
    """Cross-entropy-style search over (video noise, value noise), batched over candidates."""

    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        self._generator = torch.Generator().manual_seed(self.config.seed)
        self._warm: tuple[Tensor, Tensor] | None = None

    @property
    def generator(self) -> torch.Generator:
        """The planner's own CPU generator (seeded by config.seed), used when a call brings none."""
        return self._generator

    def reset(self) -> None:
        """Forget the warm start (a new episode or task)."""
        self._warm = None

    def plan(
        self,
        imagine: ImagineFn,
        score: ScoreFn,
        video_shape: tuple[int, ...],
        value_shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> PlanOutcome:
        """Plan once. The noise is drawn on the CPU from `generator` (else the planner's own,
        seeded by config.seed), so results do not depend on the device, and moved to `device`."""
        outcome = self._plan(
            imagine,
            score,
            tuple(video_shape),
            tuple(value_shape),
            generator or self._generator,
            torch.device(device),
        )
        if self.config.warm_start:
            self._warm = (outcome.video_mean, outcome.value_mean)
        return outcome

    def _plan(
        self,
        imagine: ImagineFn,
        score: ScoreFn,
        video_shape: tuple[int, ...],
        value_shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device,
    ) -> PlanOutcome:
        cfg = self.config
        num_videos, num_values = cfg.num_video_samples, cfg.num_value_samples

        def draw(mean: Tensor, std: Tensor, *batch: int) -> Tensor:
            noise = torch.randn((*batch, *mean.shape), generator=generator).to(device)
            return mean + std * noise

        # 1. f_vid = N(mu_vid, sigma_vid), f_val = N(mu_val, sigma_val); mu from the last call.
        video_mean, value_mean = self._initial_means(video_shape, value_shape, device)
        video_std = torch.ones(video_shape, device=device)
        value_std = torch.ones(value_shape, device=device)
        stats: dict[str, Any] = {"snr_best": [], "snr_value_elite_mean": [], "snr_mean": []}
        stats.update(video_sigma_mean=[], value_sigma_mean=[])
        best_snr, best_video, best_value = -math.inf, None, None

        for _ in range(cfg.iterations):
            # 2a. M video noises -> one video pass each; N value noises each -> value sampler.
            video_noise = draw(video_mean, video_std, num_videos)
            features = imagine(video_noise)
            value_noise = draw(value_mean, value_std, num_videos, num_values)
            values = self._checked_values(score(features, value_noise), num_videos, num_values)
            # 2b. Score every value sample by the SNR of its value curve.
            snr = signal_to_noise(values, cfg.snr_epsilon)  # (M, N)
            iteration_best = snr.max().item()
            if iteration_best > best_snr:
                video_index, value_index = divmod(int(snr.argmax()), num_values)
                best_snr = iteration_best
                best_video = video_noise[video_index]
                best_value = value_noise[video_index, value_index]
            # 2c. Refit: value noises by their own SNR, video noises by their best value SNR.
            value_fit, value_spread, value_elite_snr = self._refit(
                value_noise.flatten(0, 1), snr.flatten(), cfg.value_elite_fraction
            )
            video_fit, video_spread, _ = self._refit(
                video_noise, snr.amax(dim=1), cfg.video_elite_fraction
            )
            # 2d. Smooth: mu <- a·mu + (1 - a)·mu_e, sigma <- a·sigma + (1 - a)·sigma_e.
            a = cfg.smoothing
            video_mean = a * video_mean + (1 - a) * video_fit
            video_std = a * video_std + (1 - a) * video_spread
            value_mean = a * value_mean + (1 - a) * value_fit
            value_std = a * value_std + (1 - a) * value_spread
            stats["snr_best"].append(iteration_best)
            stats["snr_mean"].append(snr.mean().item())
            stats["snr_value_elite_mean"].append(value_elite_snr)
            stats["video_sigma_mean"].append(video_std.mean().item())
            stats["value_sigma_mean"].append(value_std.mean().item())

        # 3. One video noise from f_vid and one value noise from f_val, for the action decoder.
        if cfg.final_choice == "mean":
            chosen_video, chosen_value = video_mean.clone(), value_mean.clone()
        elif cfg.final_choice == "best" and best_video is not None:
            chosen_video, chosen_value = best_video.clone(), best_value.clone()
        else:  # "sample", or "best" without iterations: nothing was scored
            chosen_video = draw(video_mean, video_std)
            chosen_value = draw(value_mean, value_std)
        stats["iterations"] = cfg.iterations
        # How far the search left the prior (0 for a cold start without iterations).
        stats["video_mean_abs"] = video_mean.abs().mean().item()
        stats["value_mean_abs"] = value_mean.abs().mean().item()
        return PlanOutcome(
            chosen_video, chosen_value, video_mean, video_std, value_mean, value_std, stats
        )

    def _initial_means(
        self, video_shape: tuple[int, ...], value_shape: tuple[int, ...], device: torch.device
    ) -> tuple[Tensor, Tensor]:
        if self.config.warm_start and self._warm is not None:
            video_mean, value_mean = self._warm
            if video_mean.shape == video_shape and value_mean.shape == value_shape:
                return video_mean.to(device), value_mean.to(device)
        return torch.zeros(video_shape, device=device), torch.zeros(value_shape, device=device)

    def _refit(
        self, candidates: Tensor, scores: Tensor, elite_fraction: float
    ) -> tuple[Tensor, Tensor, float]:
        """Element-wise mean and sigma_decay·std of the candidates (C, ...) the method favours by
        scores (C,); also the mean score of the favoured ones."""
        if self.config.method == "wav":
            count = max(1, math.ceil(elite_fraction * scores.numel() - 1e-9))
            elite_scores, index = scores.topk(count)
            elites = candidates[index]
            mean = elites.mean(0)
            std = elites.std(0, unbiased=False)
            return mean, self.config.sigma_decay * std, elite_scores.mean().item()
        weights = torch.softmax(scores / self.config.temperature, dim=0)
        shaped = weights.view(-1, *([1] * (candidates.dim() - 1)))
        mean = (shaped * candidates).sum(0)
        std = (shaped * (candidates - mean) ** 2).sum(0).sqrt()
        return mean, self.config.sigma_decay * std, (weights * scores).sum().item()

    @staticmethod
    def _checked_values(values: Tensor, num_videos: int, num_values: int) -> Tensor:
        if not isinstance(values, Tensor) or values.dim() != 3:
            raise ValueError(
                f"score must return a (M, N, L) tensor, got "
                f"{getattr(values, 'shape', type(values).__name__)}"
            )
        if values.shape[:2] != (num_videos, num_values):
            raise ValueError(
                f"score returned values of shape {tuple(values.shape)}, expected "
                f"({num_videos}, {num_values}, L)"
            )
        if not torch.isfinite(values).all():
            raise ValueError("score returned non-finite values")
        return values
