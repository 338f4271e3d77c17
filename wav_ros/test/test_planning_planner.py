"""The latent trajectory planner on a synthetic problem whose true value is known in closed form.

A trajectory is a (video noise z, value noise u) pair. The "world model" maps z to the feature
g(z) = w·z / |w| (a standard normal scalar for z ~ N(0, I)); the "value sampler" maps the
features and u to the value curve v_t = 1 + 0.5·g(z) + 0.5·u_t. The true value of a trajectory is
the paper's criterion evaluated on that curve in closed form, J = mean_t(v) / std_t(v): a higher
level (better imagined future) and a steadier curve (a confident value sample) both raise it.
The planner only sees batches of curves; the test compares J of its chosen (z, u) with J of a
single draw from the prior (K=0), averaged over seeds.
"""

from __future__ import annotations

import itertools
import statistics

import pytest
import torch

from wav_ros.planning import LatentTrajectoryPlanner, PlannerConfig, signal_to_noise

VIDEO_SHAPE = (3, 1, 4, 4, 4)
VALUE_SHAPE = (16, 1)
DIRECTION = torch.randn(VIDEO_SHAPE, generator=torch.Generator().manual_seed(123))
DIRECTION = DIRECTION / DIRECTION.norm()


class SyntheticProblem:
    """Closed-form imagine/score callables that count their calls and batch sizes."""

    def __init__(self) -> None:
        self.imagine_batches: list[int] = []
        self.score_shapes: list[tuple[int, ...]] = []

    def imagine(self, video_noise: torch.Tensor) -> torch.Tensor:
        self.imagine_batches.append(video_noise.shape[0])
        return (video_noise * DIRECTION).flatten(1).sum(1)  # g(z), (M,)

    def score(self, features: torch.Tensor, value_noise: torch.Tensor) -> torch.Tensor:
        self.score_shapes.append(tuple(value_noise.shape))
        return 1 + 0.5 * features[:, None, None] + 0.5 * value_noise[..., 0]  # (M, N, L)


def value_curve(video_noise: torch.Tensor, value_noise: torch.Tensor) -> torch.Tensor:
    return 1 + 0.5 * (video_noise * DIRECTION).sum() + 0.5 * value_noise[..., 0]


def true_value(video_noise: torch.Tensor, value_noise: torch.Tensor) -> float:
    curve = value_curve(video_noise, value_noise)
    return float(curve.mean() / curve.std(unbiased=False))


def mean_true_value(config: PlannerConfig, seeds: range) -> tuple[float, float]:
    """Mean and standard error of the chosen trajectories' true value over seeds."""
    values = []
    for seed in seeds:
        planner = LatentTrajectoryPlanner(config.replace(seed=seed, warm_start=False))
        problem = SyntheticProblem()
        outcome = planner.plan(problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE)
        values.append(true_value(outcome.video_noise, outcome.value_noise))
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5


@pytest.mark.parametrize("method", ["wav", "mppi"])
def test_planner_raises_the_true_value_well_above_a_single_sample(method: str) -> None:
    seeds = range(40)
    single, single_se = mean_true_value(PlannerConfig(iterations=0), seeds)
    planned, planned_se = mean_true_value(PlannerConfig(method=method), seeds)
    fewer, _ = mean_true_value(PlannerConfig(method=method, iterations=3), seeds)
    print(
        f"\n[{method}] true value J, mean ± s.e. over {len(seeds)} seeds: single sample (K=0) "
        f"{single:.2f} ± {single_se:.2f}; planned K=3 {fewer:.2f}; planned K=5 (paper defaults, "
        f"M=30, N=5, final draw from f_vid/f_val) {planned:.2f} ± {planned_se:.2f}"
    )
    assert planned > 1.25 * single
    assert planned - single > 3 * (single_se**2 + planned_se**2) ** 0.5
    assert planned > fewer > single


def test_best_final_choice_decodes_the_highest_scored_pair_and_beats_a_short_search() -> None:
    short = PlannerConfig(iterations=2, num_video_samples=8, num_value_samples=4)
    best = short.replace(final_choice="best")
    for seed in range(5):
        outcome = LatentTrajectoryPlanner(best.replace(seed=seed)).plan(
            SyntheticProblem().imagine, SyntheticProblem().score, VIDEO_SHAPE, VALUE_SHAPE
        )
        chosen = true_value(outcome.video_noise, outcome.value_noise)
        assert chosen == pytest.approx(max(outcome.stats["snr_best"]), rel=1e-5)
    seeds = range(40)
    sampled, sampled_se = mean_true_value(short, seeds)
    chosen, chosen_se = mean_true_value(best, seeds)
    assert chosen - sampled > 3 * (sampled_se**2 + chosen_se**2) ** 0.5
    # Without iterations nothing is scored: "best" falls back to one prior draw.
    prior = LatentTrajectoryPlanner(best.replace(iterations=0, seed=1)).plan(
        SyntheticProblem().imagine, SyntheticProblem().score, VIDEO_SHAPE, VALUE_SHAPE
    )
    assert prior.video_noise.shape == VIDEO_SHAPE and prior.stats["snr_best"] == []


def test_planner_batches_candidates_and_calls_each_model_once_per_iteration() -> None:
    config = PlannerConfig(iterations=3, num_video_samples=7, num_value_samples=4)
    problem = SyntheticProblem()
    LatentTrajectoryPlanner(config).plan(problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE)
    assert problem.imagine_batches == [7, 7, 7]
    assert problem.score_shapes == [(7, 4, *VALUE_SHAPE)] * 3


def test_zero_iterations_draws_one_prior_sample_without_calling_the_model() -> None:
    problem = SyntheticProblem()
    outcome = LatentTrajectoryPlanner(PlannerConfig(iterations=0)).plan(
        problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE
    )
    assert problem.imagine_batches == [] and problem.score_shapes == []
    assert outcome.video_noise.shape == VIDEO_SHAPE and outcome.value_noise.shape == VALUE_SHAPE
    assert torch.equal(outcome.video_std, torch.ones(VIDEO_SHAPE))


def test_same_seed_gives_identical_plans_and_other_seeds_differ() -> None:
    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        problem = SyntheticProblem()
        outcome = LatentTrajectoryPlanner(PlannerConfig(seed=seed)).plan(
            problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE
        )
        return outcome.video_noise, outcome.value_noise

    first, again, other = run(5), run(5), run(6)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_explicit_generator_overrides_the_planner_stream() -> None:
    problem = SyntheticProblem()
    planner = LatentTrajectoryPlanner(PlannerConfig(warm_start=False))
    a = planner.plan(
        problem.imagine,
        problem.score,
        VIDEO_SHAPE,
        VALUE_SHAPE,
        generator=torch.Generator().manual_seed(9),
    )
    b = planner.plan(
        problem.imagine,
        problem.score,
        VIDEO_SHAPE,
        VALUE_SHAPE,
        generator=torch.Generator().manual_seed(9),
    )
    c = planner.plan(problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE)
    assert torch.equal(a.video_noise, b.video_noise)
    assert not torch.equal(a.video_noise, c.video_noise)


@pytest.mark.parametrize("warm_start", [True, False])
def test_warm_start_continues_from_the_previous_means_until_reset(warm_start: bool) -> None:
    problem = SyntheticProblem()
    planner = LatentTrajectoryPlanner(PlannerConfig(iterations=2, warm_start=warm_start))

    def plan() -> torch.Tensor:
        generator = torch.Generator().manual_seed(1)
        return planner.plan(
            problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE, generator=generator
        ).value_mean

    first, second = plan(), plan()
    # Same noise draws: only a warm start (from the first call's final means) changes the result.
    assert torch.equal(first, second) is not warm_start
    planner.reset()
    assert torch.equal(plan(), first)


@pytest.mark.parametrize("warm_start", [True, False])
def test_stats_show_how_far_warm_started_means_drift_from_the_prior(warm_start: bool) -> None:
    problem = SyntheticProblem()
    planner = LatentTrajectoryPlanner(PlannerConfig(iterations=2, warm_start=warm_start))
    drift = [
        planner.plan(problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE).stats[
            "value_mean_abs"
        ]
        for _ in range(10)
    ]
    # A cold start refits from N(0, I) every call; a warm one keeps moving its means away.
    assert (drift[-1] > 2 * drift[0]) is warm_start


def test_sigma_shrinks_and_snr_of_elites_improves_over_iterations() -> None:
    problem = SyntheticProblem()
    outcome = LatentTrajectoryPlanner(PlannerConfig(iterations=5)).plan(
        problem.imagine, problem.score, VIDEO_SHAPE, VALUE_SHAPE
    )
    sigmas = outcome.stats["value_sigma_mean"]
    assert all(later < earlier for earlier, later in itertools.pairwise(sigmas))
    elite = outcome.stats["snr_value_elite_mean"]
    assert elite[-1] > elite[0]


def test_signal_to_noise_matches_its_definition() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    expected_first = 2.0 / (torch.tensor([1.0, 2.0, 3.0]).std(unbiased=False) + 1e-6)
    snr = signal_to_noise(values, 1e-6)
    assert torch.allclose(snr[0], expected_first)
    assert snr[1] == pytest.approx(2.0 / 1e-6)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iterations": -1}, "iterations"),
        ({"num_video_samples": 0}, "num_video_samples"),
        ({"value_elite_fraction": 0.0}, "value_elite_fraction"),
        ({"video_elite_fraction": 1.5}, "video_elite_fraction"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"sigma_decay": 0.0}, "sigma_decay"),
        ({"temperature": -1.0}, "temperature"),
        ({"method": "cem"}, "method"),
        ({"final_choice": "argmax"}, "final_choice"),
    ],
)
def test_config_rejects_bad_knobs(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlannerConfig(**changes)


def test_bad_score_output_is_reported() -> None:
    planner = LatentTrajectoryPlanner(PlannerConfig(iterations=1))
    problem = SyntheticProblem()
    with pytest.raises(ValueError, match=r"expected \(30, 5, L\)"):
        planner.plan(problem.imagine, lambda f, n: torch.zeros(30, 4, 16), VIDEO_SHAPE, VALUE_SHAPE)
    with pytest.raises(ValueError, match="non-finite"):
        planner.plan(
            problem.imagine,
            lambda f, n: torch.full((30, 5, 16), torch.nan),
            VIDEO_SHAPE,
            VALUE_SHAPE,
        )
