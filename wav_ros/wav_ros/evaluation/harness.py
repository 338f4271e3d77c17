"""Closed-loop evaluation: policy × tasks × seeded episodes → success rates with 95 % intervals.

Every finished episode is written to `<out>/episodes/<task>/<seed>.json` at once, so a run that
stops resumes where it was (episodes already on disk are skipped) and parallel worker processes
never write the same file. The summary is `<out>/results.json` and a markdown table
`<out>/results.md`; per-episode videos go to `<out>/videos/<task>/<seed>.mp4`.

Tasks are the ALOHA simulation's (`wav_ros.sim.TASKS`) or LIBERO's (`libero_spatial/3`, or a
whole suite `libero_spatial`; see wav_ros.evaluation.libero).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wav_ros.evaluation.policies import Policy
from wav_ros.sim.env import make_env
from wav_ros.sim.tasks import TASKS

PolicyFactory = Callable[[], Policy]


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); (0, 1) with no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class EpisodeResult:
    """One evaluated episode."""

    task: str
    seed: int
    instruction: str
    success: bool
    length: int
    """Control steps taken (to the first success, or the step limit)."""
    final_progress: float
    wall_s: float
    video: str | None = None
    best_progress: float | None = None
    """Highest dense progress reached (how far a failed episode got; None in old caches)."""


@dataclass
class TaskSummary:
    """Aggregate of one task's episodes."""

    task: str
    episodes: int
    successes: int
    success_rate: float
    ci95_low: float
    ci95_high: float
    mean_length: float
    mean_success_length: float | None
    mean_best_progress: float | None = None
    """Mean over the episodes that recorded it (None if none did)."""


@dataclass
class EvalConfig:
    """What to evaluate and where to write it."""

    tasks: tuple[str, ...]
    """ALOHA task names, LIBERO `suite/task_id`, or LIBERO suite names (expanded to their tasks)."""
    episodes: int = 50
    """Episodes per task (for LIBERO: trials per task, the init states 0..episodes-1)."""
    seed: int = 0
    """Episode i of a task uses seed `seed + i` (ALOHA: the layout; LIBERO: the init state)."""
    out_dir: Path = Path("eval_out")
    """Folder of per-episode JSON, videos and the summary."""
    workers: int = 1
    """Parallel worker processes (each builds its own env and policy)."""
    save_videos: bool = True
    """Write one mp4 per episode (all cameras side by side)."""
    image_size: tuple[int, int] = (128, 128)
    """Camera image (height, width)."""
    max_steps: int | None = None
    """Override the task's episode length (None: the task's / LIBERO protocol's)."""
    settle_steps: int = 0
    """Control periods the scene settles at rest after each reset, before the policy's first
    step (ALOHA tasks): a real robot starts from rest, the recorded demonstrations did not."""
    video_fps: int = 25
    """Frame rate of the videos (every other 50 Hz frame is kept at 25)."""
    policy_id: str = ""
    """What is evaluated (a checkpoint digest, the expert's settings): out_dir's cached episodes
    are reused only by the same policy_id, so a retrained checkpoint never inherits them."""

    def __post_init__(self) -> None:
        self.tasks = expand_tasks(tuple(self.tasks))
        self.out_dir = Path(self.out_dir)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.settle_steps < 0:
            raise ValueError(f"settle_steps must be >= 0, got {self.settle_steps}")


@dataclass
class EvalResults:
    """Everything evaluate() measured."""

    summaries: dict[str, TaskSummary]
    episodes: list[EpisodeResult] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            "| task | episodes | success | 95 % CI | mean length | mean length (success) "
            "| mean best progress |",
            "|---|---:|---:|---|---:|---:|---:|",
        ]
        for s in self.summaries.values():
            success_len = "–" if s.mean_success_length is None else f"{s.mean_success_length:.0f}"
            best = "–" if s.mean_best_progress is None else f"{s.mean_best_progress:.2f}"
            lines.append(
                f"| {s.task} | {s.episodes} | {100 * s.success_rate:.1f} % | "
                f"[{100 * s.ci95_low:.1f}, {100 * s.ci95_high:.1f}] | {s.mean_length:.0f} | "
                f"{success_len} | {best} |"
            )
        return "\n".join(lines) + "\n"


def is_libero_task(task: str) -> bool:
    return task.startswith("libero_")


def expand_tasks(tasks: tuple[str, ...]) -> tuple[str, ...]:
    """Check task names; expand a LIBERO suite name to its `suite/i` tasks."""
    if not tasks:
        raise ValueError("no tasks given")
    expanded: list[str] = []
    for task in tasks:
        if task in TASKS:
            expanded.append(task)
        elif is_libero_task(task):
            from wav_ros.evaluation.libero import expand_libero_task

            expanded.extend(expand_libero_task(task))
        else:
            raise ValueError(
                f"unknown task {task!r}; ALOHA tasks: {sorted(TASKS)}, or libero_<suite>[/i]"
            )
    return tuple(expanded)


def make_eval_env(task: str, image_size: tuple[int, int], max_steps: int | None) -> Any:
    """The env of an ALOHA or LIBERO task, both with reset(seed)/step(action)/close()."""
    if is_libero_task(task):
        from wav_ros.evaluation.libero import make_libero_env

        return make_libero_env(task, image_size=image_size, max_steps=max_steps)
    return make_env(task, image_size=image_size, max_steps=max_steps)


def task_episode_dir(out_dir: Path, task: str) -> Path:
    """The folder of one task's per-episode JSON files in an evaluation's out_dir."""
    return Path(out_dir) / "episodes" / task.replace("/", "__")


def _episode_path(out_dir: Path, task: str, seed: int) -> Path:
    return task_episode_dir(out_dir, task) / f"{seed:06d}.json"


def _claim_out_dir(config: EvalConfig) -> None:
    """Record which policy out_dir's episodes belong to; refuse a folder of another policy."""
    path = config.out_dir / "policy.json"
    if path.is_file():
        owner = json.loads(path.read_text()).get("policy_id", "")
        if owner != config.policy_id:
            raise ValueError(
                f"{config.out_dir} holds episodes of policy {owner!r}, not {config.policy_id!r}; "
                "evaluate into another folder (or delete it to start over)"
            )
        return
    if any(config.out_dir.glob("episodes/*/*.json")):
        raise ValueError(
            f"{config.out_dir} holds episodes of an unrecorded policy; evaluate into another "
            "folder (or delete it to start over)"
        )
    path.write_text(json.dumps({"policy_id": config.policy_id}) + "\n")


def _write_video(path: Path, frames: list[np.ndarray], fps: int) -> str | None:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    except (ImportError, ValueError, RuntimeError, OSError):
        # No ffmpeg backend: keep the frames as a GIF rather than losing them.
        path = path.with_suffix(".gif")
        imageio.mimwrite(path, frames, duration=1000 / fps)
    return str(path)


def run_episode(
    env: Any,
    policy: Policy,
    task: str,
    seed: int,
    video_path: Path | None,
    video_fps: int = 25,
    settle_steps: int = 0,
) -> EpisodeResult:
    """One closed-loop episode; the policy sees only observations (and the env if privileged).
    With `settle_steps`, the scene first settles at rest (`Env.settle`)."""
    start = time.perf_counter()
    if hasattr(policy, "attach_env"):
        policy.attach_env(env)
    if not settle_steps:
        obs = env.reset(seed=seed)  # LIBERO's reset takes no settle_steps
    elif hasattr(env, "settle"):
        obs = env.reset(seed=seed, settle_steps=settle_steps)
    else:
        raise ValueError(f"settle_steps: {type(env).__name__} cannot settle before a start")
    policy.reset(task, env.instruction)
    frames: list[np.ndarray] = []
    keep_every = max(1, round(50 / video_fps))
    steps, success, progress, best = 0, False, 0.0, 0.0
    while True:
        if video_path is not None and steps % keep_every == 0:
            frames.append(np.concatenate(list(obs.images.values()), axis=1))
        action = policy.select_action(obs)
        # Cameras cost ~25 ms a step on a CPU: render only what the policy (or video) reads.
        render = video_path is not None or getattr(policy, "needs_images", True)
        result = env.step(action, render=render)
        steps += 1
        obs = result.observation
        success = success or bool(result.info["success"])
        progress = float(result.info.get("progress", float(success)))
        best = max(best, progress)
        if result.terminated or result.truncated:
            break
    video = _write_video(video_path, frames, video_fps) if video_path is not None else None
    return EpisodeResult(
        task=task,
        seed=seed,
        instruction=env.instruction,
        success=success,
        length=steps,
        final_progress=progress,
        wall_s=time.perf_counter() - start,
        video=video,
        best_progress=best,
    )


def _run_jobs(
    policy_factory: PolicyFactory, config: EvalConfig, jobs: list[tuple[str, int]]
) -> int:
    """Run (task, seed) jobs in this process, writing each episode's JSON when it ends; a
    worker whose parent has died (SIGKILL, the OOM killer) stops after its current episode."""
    policy = policy_factory()
    envs: dict[str, Any] = {}
    parent = multiprocessing.parent_process()
    try:
        for task, seed in jobs:
            if parent is not None and not parent.is_alive():
                raise SystemExit(f"evaluation worker {os.getpid()}: its parent has gone")
            if task not in envs:
                envs[task] = make_eval_env(task, config.image_size, config.max_steps)
            video = None
            if config.save_videos:
                video = config.out_dir / "videos" / task.replace("/", "__") / f"{seed:06d}.mp4"
            result = run_episode(
                envs[task], policy, task, seed, video, config.video_fps, config.settle_steps
            )
            path = _episode_path(config.out_dir, task, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(result), indent=1))
            tmp.replace(path)  # atomic: a killed run never leaves a half-written episode
    finally:
        for env in envs.values():
            env.close()
    return len(jobs)


def summarize(episodes: list[EpisodeResult], tasks: tuple[str, ...]) -> dict[str, TaskSummary]:
    summaries = {}
    for task in tasks:
        mine = [e for e in episodes if e.task == task]
        wins = [e for e in mine if e.success]
        low, high = wilson_interval(len(wins), len(mine))
        bests = [e.best_progress for e in mine if e.best_progress is not None]
        summaries[task] = TaskSummary(
            task=task,
            episodes=len(mine),
            successes=len(wins),
            success_rate=len(wins) / len(mine) if mine else 0.0,
            ci95_low=low,
            ci95_high=high,
            mean_length=float(np.mean([e.length for e in mine])) if mine else 0.0,
            mean_success_length=float(np.mean([e.length for e in wins])) if wins else None,
            mean_best_progress=float(np.mean(bests)) if bests else None,
        )
    return summaries


def evaluate(
    policy_factory: PolicyFactory,
    tasks: tuple[str, ...] | list[str],
    episodes: int,
    seed: int,
    out_dir: str | Path,
    workers: int = 1,
    save_videos: bool = True,
    run_missing: bool = True,
    **options: Any,
) -> EvalResults:
    """Evaluate `policy_factory()` on every task for `episodes` seeded episodes.

    `policy_factory` must be picklable (a module-level function or functools.partial) when
    workers > 1: each worker process builds its own policy and envs. Extra options go to
    EvalConfig (image_size, max_steps, video_fps, policy_id). With `run_missing=False` nothing
    is run: each task is summarised over its cached episodes with consecutive seeds from `seed`
    (the longest such run, so the sample does not depend on which episodes happened to finish).
    """
    config = EvalConfig(
        tasks=tuple(tasks),
        episodes=episodes,
        seed=seed,
        out_dir=Path(out_dir),
        workers=workers,
        save_videos=save_videos,
        **options,
    )
    config.out_dir.mkdir(parents=True, exist_ok=True)
    _claim_out_dir(config)
    wanted = [(t, config.seed + i) for t in config.tasks for i in range(config.episodes)]
    todo = [(t, s) for t, s in wanted if not _episode_path(config.out_dir, t, s).exists()]
    if not run_missing:
        first_missing = {t: min((s for u, s in todo if u == t), default=None) for t in config.tasks}
        wanted = [(t, s) for t, s in wanted if first_missing[t] is None or s < first_missing[t]]
        todo = []
    if todo and config.workers == 1:
        _run_jobs(policy_factory, config, todo)
    elif todo:
        shards = [todo[i :: config.workers] for i in range(config.workers)]
        context = multiprocessing.get_context("spawn")  # GL contexts do not survive fork
        with context.Pool(config.workers) as pool:
            pool.starmap(_run_jobs, [(policy_factory, config, shard) for shard in shards if shard])
    results = [
        EpisodeResult(**json.loads(_episode_path(config.out_dir, t, s).read_text()))
        for t, s in wanted
    ]
    evaluation = EvalResults(summarize(results, config.tasks), results)
    summary = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "summaries": {k: asdict(v) for k, v in evaluation.summaries.items()},
        "episodes": [asdict(e) for e in results],
    }
    (config.out_dir / "results.json").write_text(json.dumps(summary, indent=1))
    (config.out_dir / "results.md").write_text(evaluation.to_markdown())
    return evaluation
