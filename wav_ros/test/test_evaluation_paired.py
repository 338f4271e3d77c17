"""Paired comparison of two evaluations on the same seeds (wav_ros.evaluation.paired)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from wav_ros.evaluation import EpisodeResult
from wav_ros.evaluation.harness import task_episode_dir, wilson_interval
from wav_ros.evaluation.paired import (
    compare,
    main,
    mcnemar_exact,
    paired_difference_interval,
)


def write_episodes(out_dir: Path, task: str, outcomes: dict[int, bool]) -> Path:
    folder = task_episode_dir(out_dir, task)
    folder.mkdir(parents=True, exist_ok=True)
    for seed, success in outcomes.items():
        episode = EpisodeResult(task, seed, "x", success, 100, float(success), 1.0)
        (folder / f"{seed:06d}.json").write_text(json.dumps(asdict(episode)))
    return out_dir


@pytest.mark.parametrize(
    ("only_a", "only_b", "p_value"),
    [(0, 0, 1.0), (3, 3, 1.0), (5, 0, 2 / 32), (0, 5, 2 / 32), (34, 11, 0.000824082)],
)
def test_mcnemar_exact_is_the_two_sided_binomial_tail(only_a, only_b, p_value) -> None:
    assert mcnemar_exact(only_a, only_b) == pytest.approx(p_value, rel=1e-5)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def test_the_paired_difference_interval_covers_the_true_difference_95_percent_of_the_time() -> None:
    """Simulated evaluations of two policies on 200 shared layouts, outcomes positively
    correlated as on a shared layout (P both, only A, only B, neither): the interval must hold
    the true difference in about 95 % of them, where the unpaired square-and-add of the same
    Wilson intervals, blind to the pairing, is far wider than it needs to be."""
    probs = [0.25, 0.13, 0.04, 0.58]
    true_difference = probs[1] - probs[2]
    tables = np.random.default_rng(0).multinomial(200, probs, size=2000)
    paired = [paired_difference_interval(*map(int, t)) for t in tables]
    coverage = np.mean([low <= true_difference <= high for low, high in paired])
    assert 0.935 <= coverage <= 0.965

    def unpaired_width(both: int, only_a: int, only_b: int, neither: int) -> float:
        n = both + only_a + only_b + neither
        low_a, high_a = wilson_interval(both + only_a, n)
        low_b, high_b = wilson_interval(both + only_b, n)
        return np.hypot((both + only_a) / n - low_a, high_b - (both + only_b) / n) + np.hypot(
            (both + only_b) / n - low_b, high_a - (both + only_a) / n
        )

    paired_width = np.mean([high - low for low, high in paired])
    assert paired_width < 0.8 * np.mean([unpaired_width(*map(int, t)) for t in tables])


def test_the_interval_is_symmetric_in_a_and_b_and_holds_zero_without_discordant_pairs() -> None:
    low, high = paired_difference_interval(48, 29, 10, 113)
    assert low < 19 / 200 < high and low > 0  # 29 against 10: A ahead beyond the noise
    swapped = paired_difference_interval(48, 10, 29, 113)
    assert swapped == pytest.approx((-high, -low))
    low, high = paired_difference_interval(10, 0, 0, 5)
    assert low < 0 < high and high - low > 0.1  # no evidence either way, yet not a point


def test_impossible_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one pair"):
        paired_difference_interval(0, 0, 0, 0)
    with pytest.raises(ValueError, match="counts >= 0"):
        paired_difference_interval(3, -1, 0, 2)


def test_seeds_pool_over_folders_and_only_shared_seeds_are_compared(tmp_path: Path) -> None:
    a = [
        write_episodes(tmp_path / "a1", "insertion", {0: True, 1: True, 2: False}),
        write_episodes(tmp_path / "a2", "insertion", {3: True, 9: True}),
    ]
    b = [write_episodes(tmp_path / "b", "insertion", {0: True, 1: False, 2: True, 3: False})]
    result = compare(a, b, "insertion")
    assert (result.seeds, result.successes_a, result.successes_b) == (4, 3, 2)
    assert (result.only_a, result.only_b) == (2, 1)  # seeds 1 and 3; seed 2
    assert result.p_value == pytest.approx(mcnemar_exact(2, 1))
    assert result.difference == pytest.approx(1 / 4)
    assert result.difference_ci95 == pytest.approx(paired_difference_interval(1, 2, 1, 0))


def test_missing_or_contradictory_episodes_are_named(tmp_path: Path) -> None:
    a = write_episodes(tmp_path / "a", "insertion", {0: True})
    with pytest.raises(FileNotFoundError, match="no transfer_cube episodes"):
        compare([a], [a], "transfer_cube")
    other = write_episodes(tmp_path / "other", "insertion", {0: False})
    with pytest.raises(ValueError, match="two different outcomes"):
        compare([a, other], [a], "insertion")
    disjoint = write_episodes(tmp_path / "disjoint", "insertion", {5: True})
    with pytest.raises(ValueError, match="under both"):
        compare([a], [disjoint], "insertion")


def test_cli_prints_the_comparison(tmp_path: Path, capsys) -> None:
    a = write_episodes(tmp_path / "a", "insertion", {0: True, 1: True})
    b = write_episodes(tmp_path / "b", "insertion", {0: False, 1: True})
    main(["--task", "insertion", "--a", str(a), "--b", str(b), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert (printed["only_a"], printed["only_b"], printed["seeds"]) == (1, 0, 2)
    main(["--task", "insertion", "--a", str(a), "--b", str(b), "--json", "--seeds", "1", "1"])
    printed = json.loads(capsys.readouterr().out)
    assert (printed["only_a"], printed["only_b"], printed["seeds"]) == (0, 0, 1)
    with pytest.raises(SystemExit, match="no insertion seed"):
        main(
            [
                "--task",
                "insertion",
                "--a",
                str(a),
                "--b",
                str(write_episodes(tmp_path / "c", "insertion", {7: True})),
            ]
        )
