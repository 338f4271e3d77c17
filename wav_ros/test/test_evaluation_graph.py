"""Evaluation through the node graph: the summary, the episode folder's ownership, and one real
episode through a real bringup (the shipped model, every node in its own process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wav_ros.evaluation.graph import (
    GraphEvalConfig,
    claim_out_dir,
    evaluate_graph,
    summarize,
    to_markdown,
)


def episode(
    success: bool,
    steps: int,
    reason: str,
    refused: int = 0,
    p50: float | None = 0.1,
    best: float | None = None,
):
    record = {
        "success": success,
        "steps": steps,
        "stop_reason": reason,
        "refused_plans": refused,
        "planning_time_p50": p50,
    }
    if best is not None:  # episodes cached before the report recorded progress have none
        record["best_progress"] = best
    return record


def test_the_summary_counts_successes_with_their_interval_and_groups_stop_reasons():
    episodes = [
        episode(True, 180, "task succeeded", p50=0.1, best=1.0),
        episode(True, 200, "task succeeded", refused=1, p50=0.3, best=1.0),
        episode(False, 400, "step budget of 400 spent", p50=0.2, best=0.5),
        episode(False, 40, "plan refused: no observation since observation_not_before yet", 4),
        episode(False, 0, "bringup exited 1 without a report", p50=None),
    ]
    summary = summarize(episodes)
    assert (summary["episodes"], summary["successes"]) == (5, 2)
    assert summary["ci95"][0] < 0.4 < summary["ci95"][1]
    assert summary["steps_to_success_median"] == 190
    assert summary["refused_plans"] == 5
    assert summary["planning_time_p50_median"] == pytest.approx(0.15)
    assert summary["mean_best_progress"] == pytest.approx(2.5 / 3)  # of those that recorded it
    row = to_markdown({"identity": {"task": "transfer_cube"}, **summary}).splitlines()[-1]
    assert row.startswith("| transfer_cube | 40% (2/5) |") and "| 0.83 | 5 | 0.15 s |" in row
    two_tasks = to_markdown(
        {"identity": {"task": "transfer_cube"}, **summary},
        {"identity": {"task": "insertion"}, **summary},
    ).splitlines()
    assert len(two_tasks) == 4 and two_tasks[0].startswith("| task |")  # one header
    assert two_tasks[2].startswith("| transfer_cube |") and two_tasks[3].startswith("| insertion")
    unrecorded = summarize([episode(False, 400, "step budget of 400 spent")])
    assert unrecorded["mean_best_progress"] is None
    assert summary["stop_reasons"] == {
        "task succeeded": 2,
        "step budget of 400 spent": 1,
        "plan refused": 1,
        "bringup exited 1 without a report": 1,
    }


def test_a_folder_holds_the_episodes_of_one_configuration(tmp_path):
    config = GraphEvalConfig(task="transfer_cube", episodes=2, seed=0, out_dir=tmp_path)
    claim_out_dir(config)
    claim_out_dir(config)  # the same configuration may resume
    with pytest.raises(ValueError, match="holds episodes of"):
        claim_out_dir(GraphEvalConfig(task="insertion", episodes=2, seed=0, out_dir=tmp_path))
    changed = tmp_path / "config"
    changed.mkdir()
    (changed / "latent_planner.yaml").write_text("latent_planner: {ros__parameters: {}}\n")
    with pytest.raises(ValueError, match="holds episodes of"):
        claim_out_dir(
            GraphEvalConfig(
                task="transfer_cube", episodes=2, seed=0, out_dir=tmp_path, config_dir=changed
            )
        )


def test_the_graphs_episodes_are_keyed_by_the_code_the_graph_runs(tmp_path):
    from wav_ros.evaluation.provenance import GRAPH_CODE, code_digest

    identity = GraphEvalConfig("insertion", 1, 0, tmp_path).identity()
    assert identity["code_digest"] == code_digest(GRAPH_CODE)


@pytest.mark.ros
@pytest.mark.slow
def test_one_episode_runs_through_a_real_graph_and_is_reused_on_the_next_run(tmp_path: Path):
    config = GraphEvalConfig(
        task="transfer_cube", episodes=1, seed=1000, out_dir=tmp_path, max_steps=8
    )
    results = evaluate_graph(config)
    recorded = json.loads((tmp_path / "episodes" / "001000.json").read_text())
    log = (tmp_path / "episodes" / "001000.log").read_text()
    assert recorded["exit_code"] == 0, log[-2000:]
    assert recorded["seed"] == 1000 and recorded["plans"] >= 1
    assert recorded["steps"] == 8 and recorded["stop_reason"] == "step budget of 8 spent"
    assert results["episodes"] == 1 and results["successes"] == 0
    mtime = (tmp_path / "episodes" / "001000.json").stat().st_mtime_ns
    assert evaluate_graph(config) == results  # cached: no second bringup
    assert (tmp_path / "episodes" / "001000.json").stat().st_mtime_ns == mtime


@pytest.mark.ros
def test_without_the_overlay_the_graph_refuses_to_start_and_records_no_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # What `PYTHONPATH=wav_ros python -m ...` did after `source scripts/activate.sh`: the
    # package imports, the generated messages do not.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    config = GraphEvalConfig(task="transfer_cube", episodes=1, seed=1000, out_dir=tmp_path)
    with pytest.raises(RuntimeError, match=r"source scripts/activate\.sh"):
        evaluate_graph(config)
    assert not (tmp_path / "episodes").exists()


@pytest.mark.ros
@pytest.mark.slow
def test_sigterm_stops_the_graph_evaluation_and_the_graph_it_started(tmp_path: Path, process_table):
    """A `kill` of the evaluation must not leave a bringup and its nodes running."""
    cli = subprocess.Popen(
        [sys.executable, "-m", "wav_ros.evaluation.graph", "--episodes", "1", "--out",
         str(tmp_path)],
    )  # fmt: skip
    bringup = 0
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "episodes" / "001000.log").is_file() or not bringup:
            assert cli.poll() is None and time.monotonic() < deadline, "no bringup started"
            time.sleep(0.2)
            children = process_table.children(cli.pid)
            bringup = children[0] if children else 0
        time.sleep(3)  # let bringup start its nodes, which join its process group
        assert len(process_table.group(bringup)) > 1
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while process_table.group(bringup) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not process_table.group(bringup), "the graph outlived its evaluation"
    finally:
        cli.kill()
        if bringup and process_table.group(bringup):
            os.killpg(bringup, signal.SIGKILL)
