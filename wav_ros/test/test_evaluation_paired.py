"""Paired comparison of two evaluations on the same seeds (wav_ros.evaluation.paired)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from wav_ros.evaluation import EpisodeResult
from wav_ros.evaluation.harness import task_episode_dir
from wav_ros.evaluation.paired import compare, main, mcnemar_exact


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
