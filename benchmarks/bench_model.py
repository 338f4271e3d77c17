"""Benchmark of the WAV model core on the CPU (tiny preset by default).

Prints: parameters per expert; peak memory; p50/p95 latency of one full plan (K=3, M=30, N=5,
10 value Euler steps) and of the no-planning decode (K=0); time and FLOPs per phase of a full
plan; the planner's achieved GFLOP/s next to a plain fp32 matmul's measured in the same run.

    PYTHONPATH=wav_ros .venv/bin/python benchmarks/bench_model.py [--runs 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from wav_ros.model import WAVConfig, WAVPolicy
from wav_ros.planning import PlannerConfig

INSTRUCTION = "transfer the cube to the other arm"


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def time_calls(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def count_flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def matmul_gflops(size: int, runs: int) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = statistics.median(time_calls(lambda: a @ b, runs))
    return 2 * size**3 / best / 1e9


OP_CATEGORIES = {
    "matmul (linear, mm, bmm)": ("addmm", "aten::mm", "bmm", "aten::matmul", "linear"),
    "attention (scaled_dot_product)": ("scaled_dot_product",),
    "convolution (VAE)": ("convolution", "conv2d", "mkldnn"),
    "norms (layer/group norm)": ("layer_norm", "group_norm"),
    "activations (gelu, silu, softmax)": ("gelu", "silu", "softmax"),
}


def op_time_shares(fn: Callable[[], object]) -> dict[str, float]:
    """Share of self CPU time per operator category during one call (the rest: copies, views,
    elementwise arithmetic and Python overhead between operators)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        fn()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    shares = dict.fromkeys(OP_CATEGORIES, 0.0)
    other = 0.0
    for event in events:
        category = next(
            (c for c, keys in OP_CATEGORIES.items() if any(k in event.key for k in keys)), None
        )
        if category is None:
            other += event.self_cpu_time_total / total
        else:
            shares[category] += event.self_cpu_time_total / total
    shares["other (copies, elementwise, views)"] = other
    return shares


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--runs", type=int, default=20, help="timed full plans")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = WAVConfig.tiny() if args.preset == "tiny" else WAVConfig.base()
    full = PlannerConfig(iterations=3, num_video_samples=30, num_value_samples=5)
    no_plan = PlannerConfig(iterations=0)
    policy = WAVPolicy(config, full)
    print(
        f"preset {args.preset}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average at start {os.getloadavg()[0]:.1f} (other processes share these cores)"
    )

    print("parameters:")
    for name in ("tokenizer", "video", "value", "action"):
        count = sum(p.numel() for p in getattr(policy, name).parameters())
        print(f"  {name:<10} {count / 1e6:8.3f} M")
    total = sum(p.numel() for p in policy.parameters())
    print(f"  {'total':<10} {total / 1e6:8.3f} M  (+ frozen text encoder, not in the checkpoint)")

    size = config.tokenizer.image_size
    rng = np.random.default_rng(0)
    images = {n: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for n in config.camera_names}
    state = np.zeros(config.state_dim, np.float32)
    rss_before = peak_rss_mib()

    def plan(planner: PlannerConfig) -> Callable[[], object]:
        return lambda: policy.plan(images, state, INSTRUCTION, planner)

    for _ in range(3):  # warm up: text encoder load, allocator, instruction cache
        plan(full)()
        plan(no_plan)()
    full_times = time_calls(plan(full), args.runs)
    none_times = time_calls(plan(no_plan), args.runs * 2)
    rss_after = peak_rss_mib()
    print("latency (ms):            p50      p95")
    for label, times in (("full plan K=3 M=30 N=5", full_times), ("no planning K=0", none_times)):
        p50, p95 = percentile(times, 50) * 1e3, percentile(times, 95) * 1e3
        print(f"  {label:<22} {p50:7.1f}  {p95:7.1f}")
    print(f"peak RSS: {rss_after:.0f} MiB (before planning {rss_before:.0f} MiB)")

    # Per phase of one full plan, as the planner calls them.
    context = policy.encode_observation(images, state, INSTRUCTION)
    video_noise = torch.randn(full.num_video_samples, *config.video_noise_shape)
    value_noise = torch.randn(
        full.num_video_samples, full.num_value_samples, *config.value_noise_shape
    )
    features = policy.imagine(context, video_noise)
    one = policy.imagine(context, video_noise[:1])
    chosen = policy.score(context, one, value_noise[:1, :1])
    phases = {
        "encode_observation": (
            lambda: policy.encode_observation(images, state, INSTRUCTION),
            1,
        ),
        "imagine M=30": (lambda: policy.imagine(context, video_noise), full.iterations),
        "score M=30 N=5": (
            lambda: policy.score(context, features, value_noise, return_features=False),
            full.iterations,
        ),
        "decode_actions": (lambda: policy.decode_actions(context, one, chosen.features), 1),
    }
    print("phases of a full plan:   calls  ms/call  MFLOP/call  GFLOP/s")
    for label, (fn, calls) in phases.items():
        seconds = statistics.median(time_calls(fn, 7))
        flops = count_flops(fn)
        print(
            f"  {label:<22} {calls:5d} {seconds * 1e3:8.1f} {flops / 1e6:11.1f} "
            f"{flops / seconds / 1e9:8.1f}"
        )

    plan_flops = count_flops(plan(full))
    plan_p50 = percentile(full_times, 50)
    achieved = plan_flops / plan_p50 / 1e9
    reference = matmul_gflops(1024, 20)
    print(f"full plan: {plan_flops / 1e9:.2f} GFLOP in {plan_p50 * 1e3:.1f} ms p50")
    print(
        f"planner {achieved:.1f} GFLOP/s vs plain fp32 matmul 1024^3 {reference:.1f} GFLOP/s "
        f"({100 * achieved / reference:.0f} %)"
    )
    print("where a full plan's time goes (torch profiler, self CPU time):")
    for category, share in op_time_shares(plan(full)).items():
        print(f"  {category:<34} {100 * share:5.1f} %")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    print(
        f"targets: full plan p50 <= 500 ms: {'met' if plan_p50 <= 0.5 else 'NOT met'}; "
        f"planner >= 50 % of matmul: {'met' if achieved >= 0.5 * reference else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
