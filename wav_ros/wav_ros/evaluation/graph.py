"""Closed-loop success through the node graph, not the harness: one `bringup --run-task` per
seed (simulation, camera_sync, latent_planner and action_executor as their own processes),
summarised with a 95 % Wilson interval.

    python -m wav_ros.evaluation.graph --task transfer_cube --episodes 20 --seed 1000 \\
        --out outputs/graph_eval/transfer_cube

The harness calls the model directly; this runs what a user runs, so it also measures the
graph's own behaviour: observation timing, the safety gate's refusals, blending, latency.
Each episode's report is kept under `<out>/episodes/` as it finishes, so an interrupted run
resumes; a folder holds the episodes of one configuration only. Nothing here imports rclpy:
the graph runs in subprocesses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wav_ros.evaluation.harness import wilson_interval
from wav_ros.evaluation.interrupt import exit_on_sigterm

#: Seconds one episode may take, start-up included, before it counts as a failure.
EPISODE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class GraphEvalConfig:
    """What one graph evaluation runs; everything that changes the outcome is in `identity`."""

    task: str
    episodes: int
    seed: int
    out_dir: Path
    config_dir: Path | None = None
    """Folder of <node>.yaml parameter files (None: the package's config/)."""
    checkpoint: str = ""
    planner_mode: str = "local"
    max_steps: int = 400

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")

    def identity(self) -> dict[str, Any]:
        """The settings whose episodes may share a folder: task, parameter files' contents,
        the checkpoint's weights, the graph's code, planner mode and step budget."""
        from wav_ros import SHIPPED_CHECKPOINT
        from wav_ros.evaluation.provenance import GRAPH_CODE, checkpoint_digest, code_digest
        from wav_ros.nodes.graph import default_config_dir

        config_dir = self.config_dir or default_config_dir()
        digest = hashlib.sha256()
        for path in sorted(config_dir.glob("*.yaml")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return {
            "task": self.task,
            "config_digest": digest.hexdigest()[:16],
            "checkpoint_digest": checkpoint_digest(self.checkpoint or SHIPPED_CHECKPOINT),
            "code_digest": code_digest(GRAPH_CODE),
            "planner_mode": self.planner_mode,
            "max_steps": self.max_steps,
        }


def claim_out_dir(config: GraphEvalConfig) -> dict[str, Any]:
    """Record whose episodes `out_dir` holds and return that identity; refuse a folder of
    another configuration."""
    path = config.out_dir / "graph.json"
    identity = config.identity()
    if path.is_file():
        owner = json.loads(path.read_text())
        if owner != identity:
            raise ValueError(
                f"{config.out_dir} holds episodes of {owner}, not {identity}; evaluate into "
                "another folder (or delete it to start over)"
            )
        return identity
    config.out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity, indent=1) + "\n")
    return identity


def bringup_command(config: GraphEvalConfig, seed: int, report: Path) -> list[str]:
    command = [sys.executable, "-m", "wav_ros.nodes.bringup", "--run-task"]
    command += ["--task", config.task, "--seed", str(seed), "--report", str(report)]
    command += ["--max-steps", str(config.max_steps), "--planner-mode", config.planner_mode]
    if config.config_dir is not None:
        command += ["--config-dir", str(config.config_dir)]
    if config.checkpoint:
        command += ["--checkpoint", config.checkpoint]
    return command


def run_graph_episode(config: GraphEvalConfig, seed: int) -> dict[str, Any]:
    """One episode through a fresh graph; its task report plus the seed and the exit code.

    A graph that could not run the episode (a node died, no plan executed, a timeout) is
    recorded as a failure with the reason, never skipped.
    """
    episodes = config.out_dir / "episodes"
    episodes.mkdir(parents=True, exist_ok=True)
    report_path = episodes / f"{seed:06d}.report.json"
    report_path.unlink(missing_ok=True)
    # A domain of its own, so that no other graph on this machine answers its calls.
    environment = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 100)))
    with open(episodes / f"{seed:06d}.log", "w") as log:
        process = subprocess.Popen(
            bringup_command(config, seed, report_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # a timeout stops bringup and its node processes together
        )
        try:
            code: int | None = process.wait(timeout=EPISODE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        finally:  # a timeout or Ctrl-C here must not leave the graph's processes behind
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if report_path.is_file():
        episode = json.loads(report_path.read_text())
        report_path.unlink()
    else:
        reason = "timed out" if code is None else f"bringup exited {code} without a report"
        episode = {"success": False, "steps": 0, "stop_reason": reason}
    episode.update(seed=seed, exit_code=code)
    (episodes / f"{seed:06d}.json").write_text(json.dumps(episode, indent=1) + "\n")
    return episode


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Success with its 95 % Wilson interval, and what the graph did along the way."""
    successes = sum(bool(episode["success"]) for episode in episodes)
    low, high = wilson_interval(successes, len(episodes))
    latencies = [e["planning_time_p50"] for e in episodes if e.get("planning_time_p50")]
    # Episodes cached before the task report recorded progress have none.
    progress = [e["best_progress"] for e in episodes if e.get("best_progress") is not None]
    return {
        "episodes": len(episodes),
        "successes": successes,
        "success_rate": successes / len(episodes),
        "ci95": [low, high],
        "steps_to_success_median": statistics.median(
            [e["steps"] for e in episodes if e["success"]] or [0]
        ),
        "refused_plans": sum(e.get("refused_plans", 0) for e in episodes),
        "planning_time_p50_median": statistics.median(latencies) if latencies else None,
        "mean_best_progress": statistics.fmean(progress) if progress else None,
        "stop_reasons": dict(Counter(_short_reason(e["stop_reason"]) for e in episodes)),
    }


def _short_reason(reason: str) -> str:
    """A stop reason without its numbers, so that alike reasons count together."""
    return reason.split(":")[0] if reason.startswith(("plan refused", "the executor")) else reason


def require_graph_environment() -> None:
    """Refuse to start when bringup could not even import the messages (no colcon overlay on
    PYTHONPATH): every episode would be cached as a failure of the model instead."""
    probe = "import rclpy, wav_interfaces.msg, wav_interfaces.action, wav_interfaces.srv"
    probe += "; wav_interfaces.msg.Observation; wav_interfaces.action.ExecuteTrajectory"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(
            f"the node graph cannot start here ({last}): run `source scripts/activate.sh` "
            "first and keep the PYTHONPATH it sets (the colcon overlay with wav_interfaces)"
        )


def evaluate_graph(config: GraphEvalConfig) -> dict[str, Any]:
    """Run the missing episodes of seeds seed..seed+episodes-1 and summarise them all."""
    require_graph_environment()
    identity = claim_out_dir(config)  # digests the checkpoint's weights: once per run
    episodes = []
    for seed in range(config.seed, config.seed + config.episodes):
        path = config.out_dir / "episodes" / f"{seed:06d}.json"
        episode = json.loads(path.read_text()) if path.is_file() else None
        if episode is None:
            episode = run_graph_episode(config, seed)
            print(
                f"seed {seed}: {'success' if episode['success'] else 'failure'} after "
                f"{episode['steps']} steps ({episode['stop_reason']})",
                flush=True,
            )
        episodes.append(episode)
    results = {"identity": identity, "seed": config.seed, **summarize(episodes)}
    (config.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def to_markdown(*results: dict[str, Any]) -> str:
    """A table with one row per evaluation's summary (e.g. one per task)."""
    lines = [
        "| task | success | 95 % CI | episodes | mean best progress | refused plans | "
        "planning p50 | stops |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for summary in results:
        low, high = summary["ci95"]
        latency = summary["planning_time_p50_median"]
        progress = summary.get("mean_best_progress")
        reasons = ", ".join(f"{why}: {n}" for why, n in sorted(summary["stop_reasons"].items()))
        lines.append(
            f"| {summary['identity']['task']} | {summary['success_rate']:.0%} "
            f"({summary['successes']}/{summary['episodes']}) | [{low:.0%}, {high:.0%}] | "
            f"{summary['episodes']} | {'–' if progress is None else f'{progress:.2f}'} | "
            f"{summary['refused_plans']} | {'–' if latency is None else f'{latency:.2f} s'} | "
            f"{reasons} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from wav_ros.nodes.graph import PLANNER_MODES

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default="transfer_cube")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000, help="first seed (unseen in training)")
    parser.add_argument("--out", type=Path, required=True, help="folder of this run's episodes")
    parser.add_argument("--config-dir", type=Path, default=None, help="folder of <node>.yaml")
    parser.add_argument("--checkpoint", default="", help="checkpoint dir ('' = shipped tiny)")
    parser.add_argument("--planner-mode", choices=PLANNER_MODES, default="local")
    parser.add_argument("--max-steps", type=int, default=400)
    args = parser.parse_args(argv)
    config = GraphEvalConfig(
        task=args.task,
        episodes=args.episodes,
        seed=args.seed,
        out_dir=args.out,
        config_dir=args.config_dir,
        checkpoint=args.checkpoint,
        planner_mode=args.planner_mode,
        max_steps=args.max_steps,
    )
    results = evaluate_graph(config)
    print(to_markdown(results))
    print(f"wrote {config.out_dir / 'results.json'}")


if __name__ == "__main__":
    exit_on_sigterm()  # a `kill` of this process stops the bringup it runs too
    main()
