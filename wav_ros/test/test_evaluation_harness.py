"""Evaluation harness: Wilson intervals, closed-loop runs, files, resuming, parallel workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

import functools

import numpy as np
import pytest

from wav_ros.evaluation import HoldStillPolicy, ScriptedExpertPolicy, evaluate, wilson_interval
from wav_ros.evaluation.__main__ import main as cli_main
from wav_ros.evaluation.__main__ import policy_factory, policy_keywords


def test_wilson_interval_known_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def refuse_to_build() -> HoldStillPolicy:
    raise AssertionError("a finished evaluation must not run episodes again")


def short_transfer_cube(factory, out_dir, episodes: int, **options):
    """`episodes` 40-step transfer_cube episodes from seed 5, no videos."""
    return evaluate(
        factory,
        ["transfer_cube"],
        episodes=episodes,
        seed=5,
        out_dir=out_dir,
        save_videos=False,
        max_steps=40,
        **options,
    )


def test_hold_still_scores_zero_and_reruns_resume(tmp_path):
    results = short_transfer_cube(HoldStillPolicy, tmp_path, episodes=2)
    summary = results.summaries["transfer_cube"]
    assert (summary.episodes, summary.successes, summary.mean_length) == (2, 0, 40)
    assert summary.ci95_high < 0.9
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [e["seed"] for e in saved["episodes"]] == [5, 6]
    assert "| transfer_cube | 2 | 0.0 %" in (tmp_path / "results.md").read_text()
    assert [e["best_progress"] for e in saved["episodes"]] == [0.0, 0.0]  # never touched the cube
    again = short_transfer_cube(refuse_to_build, tmp_path, episodes=2)
    assert again.summaries["transfer_cube"].successes == 0


def test_cached_only_summarises_the_consecutive_seeds_already_run(tmp_path):
    short_transfer_cube(HoldStillPolicy, tmp_path, episodes=3)
    (tmp_path / "episodes" / "transfer_cube" / "000006.json").unlink()  # 6 never finished
    partial = short_transfer_cube(refuse_to_build, tmp_path, episodes=50, run_missing=False)
    assert [e.seed for e in partial.episodes] == [5]  # 7 is cached but follows a gap
    assert partial.summaries["transfer_cube"].episodes == 1


def test_cached_episodes_belong_to_one_policy(tmp_path):
    short_transfer_cube(HoldStillPolicy, tmp_path, episodes=1, policy_id="checkpoint-a")
    with pytest.raises(ValueError, match="holds episodes of policy 'checkpoint-a'"):
        short_transfer_cube(refuse_to_build, tmp_path, episodes=1, policy_id="checkpoint-b")
    again = short_transfer_cube(refuse_to_build, tmp_path, episodes=1, policy_id="checkpoint-a")
    assert again.summaries["transfer_cube"].episodes == 1


def test_a_folder_of_unrecorded_episodes_is_refused(tmp_path):
    short_transfer_cube(HoldStillPolicy, tmp_path, episodes=1)
    (tmp_path / "policy.json").unlink()  # as written before episodes recorded their policy
    with pytest.raises(ValueError, match="unrecorded policy"):
        short_transfer_cube(refuse_to_build, tmp_path, episodes=1)


def test_expert_succeeds_with_a_video(tmp_path):
    results = evaluate(
        ScriptedExpertPolicy,
        ["transfer_cube"],
        episodes=1,
        seed=0,
        out_dir=tmp_path,
        save_videos=True,
        image_size=(32, 32),
    )
    episode = results.episodes[0]
    assert episode.success and 150 < episode.length < 400
    assert (
        episode.best_progress == 1.0
        and results.summaries["transfer_cube"].mean_best_progress == 1.0
    )
    assert episode.video is not None and os.path.getsize(episode.video) > 0


class NaNPolicy:
    needs_images = False

    def reset(self, task: str, instruction: str) -> None:
        pass

    def select_action(self, obs):
        return np.full(14, np.nan)


def test_a_bad_policy_output_is_an_error_not_a_clamp(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        evaluate(NaNPolicy, ["insertion"], episodes=1, seed=0, out_dir=tmp_path, save_videos=False)


def test_parallel_workers_and_the_cli(tmp_path, capsys):
    factory = functools.partial(ScriptedExpertPolicy, noise_std=0.0)
    results = evaluate(
        factory,
        ["insertion"],
        episodes=2,
        seed=0,
        out_dir=tmp_path / "par",
        workers=2,
        save_videos=False,
        max_steps=30,
    )
    assert [e.seed for e in results.episodes] == [0, 1]
    assert len(list((tmp_path / "par" / "episodes" / "insertion").glob("*.json"))) == 2
    cli_main(
        [
            "--policy",
            "hold_still",
            "--tasks",
            "bin_sequence",
            "--episodes",
            "1",
            "--out",
            str(tmp_path / "cli"),
            "--no-videos",
            "--max-steps",
            "10",
        ]
    )
    assert "| bin_sequence | 1 | 0.0 %" in capsys.readouterr().out


def test_policy_args_reach_a_module_factory_as_json_or_strings():
    keywords = policy_keywords(["noise_std=0.25", "perturbation=mild", "seed=3"])
    assert keywords == {"noise_std": 0.25, "perturbation": "mild", "seed": 3}
    factory = policy_factory(
        "wav_ros.evaluation.policies:ScriptedExpertPolicy", 0.0, "none", 0, keywords
    )
    policy = factory()
    assert policy.noise_std == 0.25 and policy.perturbation == "mild"
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        policy_keywords(["noise_std"])
    with pytest.raises(SystemExit, match="module:factory"):
        policy_factory("expert", 0.0, "none", 0, {"noise_std": 0.25})


class FirstTimes(HoldStillPolicy):
    """Hold still, and record the simulated time of the observation each episode starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.first_times: list[float] = []
        self._fresh = True

    def reset(self, task: str, instruction: str) -> None:
        super().reset(task, instruction)
        self._fresh = True

    def select_action(self, obs):
        if self._fresh:
            self.first_times.append(obs.time)
            self._fresh = False
        return super().select_action(obs)


def test_settle_steps_start_the_policy_from_rest_without_spending_the_episode(tmp_path):
    from wav_ros.evaluation.harness import run_episode
    from wav_ros.sim import make_env

    env = make_env("transfer_cube", image_size=(32, 32), max_steps=5)
    policy = FirstTimes()
    try:
        plain = run_episode(env, policy, "transfer_cube", 3, None)
        settled = run_episode(env, policy, "transfer_cube", 3, None, settle_steps=25)
    finally:
        env.close()
    assert policy.first_times == [0.0, pytest.approx(0.5)]  # 25 periods of 20 ms at rest
    assert plain.length == settled.length == 5
    with pytest.raises(ValueError, match="settle_steps"):
        evaluate(HoldStillPolicy, ["insertion"], 1, 0, tmp_path, settle_steps=-1)


def test_unknown_tasks_and_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        evaluate(HoldStillPolicy, ["cook_dinner"], episodes=1, seed=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="episodes"):
        evaluate(HoldStillPolicy, ["insertion"], episodes=0, seed=0, out_dir=tmp_path)


@pytest.mark.parametrize(
    ("stop", "return_code"),
    [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["sigterm", "sigkill"],
)
def test_a_stopped_cli_leaves_no_worker_running(tmp_path, process_table, stop, return_code):
    """`kill`, a scheduler's SIGTERM or the OOM killer's SIGKILL must not leave workers running
    their episode shards: SIGTERM ends them at once, SIGKILL after their current episode."""
    out = tmp_path / "eval"
    cli = subprocess.Popen(
        [sys.executable, "-m", "wav_ros.evaluation", "--policy", "hold_still", "--tasks",
         "transfer_cube", "--episodes", "400", "--workers", "2", "--no-videos", "--out", str(out)],
    )  # fmt: skip
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("episodes/transfer_cube/*.json")):
            assert cli.poll() is None and time.monotonic() < deadline, "no episode finished"
            time.sleep(0.2)
        workers.update(process_table.children(cli.pid))
        assert len(workers) >= 2
        cli.send_signal(stop)
        assert cli.wait(timeout=60) == return_code
        deadline = time.monotonic() + 30
        while any(process_table.alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if process_table.alive(pid)], "workers outlived the CLI"
        assert len(list(out.glob("episodes/transfer_cube/*.json"))) < 400  # stopped early
    finally:
        cli.kill()
        for pid in workers:
            if process_table.alive(pid):
                os.kill(pid, signal.SIGKILL)
