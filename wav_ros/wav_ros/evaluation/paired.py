"""Paired comparison of two policies evaluated on the same seeds.

Episode i of a task has the same layout under every policy, so the seeds pair the episodes:
what matters is how many layouts only one of the two solved. The exact McNemar test on those
counts sees a difference that two overlapping Wilson intervals hide (they ignore the pairing).

    python -m wav_ros.evaluation.paired --task insertion \\
        --a outputs/eval_k2 outputs/eval_report/wav/<id> \\
        --b outputs/eval_k0 outputs/eval_report/wav_k0/<id>

Each of --a and --b takes one or more harness out_dirs (several seed ranges pool); only seeds
evaluated under both are compared. The difference of the two success rates comes with its own
95 % interval (Newcombe's method 10 for paired data), which does use the pairing: A beats B
beyond the noise of these seeds when that interval lies above zero.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from wav_ros.evaluation.harness import task_episode_dir, wilson_interval


@dataclass(frozen=True)
class PairedComparison:
    """Outcomes of policies A and B on the seeds both were evaluated on."""

    task: str
    seeds: int
    successes_a: int
    successes_b: int
    only_a: int
    """Seeds A solved and B did not."""
    only_b: int
    p_value: float
    """Exact two-sided McNemar test of only_a against only_b."""
    difference: float
    """A's success rate minus B's."""
    difference_ci95: tuple[float, float]
    """95 % interval of `difference` for paired outcomes (Newcombe 1998, method 10)."""

    def summary(self) -> str:
        def rate(successes: int) -> str:
            return f"{successes}/{self.seeds} ({rate_with_interval(successes, self.seeds)})"

        difference = difference_with_interval(self.difference, self.difference_ci95, " points")
        return (
            f"{self.task}: A {rate(self.successes_a)}, B {rate(self.successes_b)}; "
            f"A - B {difference}; "
            f"only A {self.only_a}, only B {self.only_b}, exact McNemar p = {self.p_value:.4g}"
        )


def rate_with_interval(successes: int, trials: int) -> str:
    """'40.0 % [35.3, 44.9]': a success rate in percent with its 95 % Wilson interval."""
    low, high = wilson_interval(successes, trials)
    return f"{100 * successes / trials:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def difference_with_interval(
    difference: float, interval: tuple[float, float], unit: str = ""
) -> str:
    """'+10.8 [+6.2, +15.2]': a difference of rates in points (`unit` after it) with its
    interval."""
    low, high = interval
    return f"{100 * difference:+.1f}{unit} [{100 * low:+.1f}, {100 * high:+.1f}]"


def load_outcomes(out_dirs: list[Path], task: str) -> dict[int, bool]:
    """seed -> success over the episodes of `task` in these harness out_dirs; a seed found in
    two of them must agree (the same policy evaluated twice)."""
    outcomes: dict[int, bool] = {}
    for out_dir in out_dirs:
        folder = task_episode_dir(out_dir, task)
        if not folder.is_dir():
            raise FileNotFoundError(f"no {task} episodes under {out_dir} (looked in {folder})")
        for path in sorted(folder.glob("*.json")):
            episode = json.loads(path.read_text())
            seed, success = int(episode["seed"]), bool(episode["success"])
            if outcomes.get(seed, success) != success:
                raise ValueError(f"seed {seed} of {task} has two different outcomes in {out_dirs}")
            outcomes[seed] = success
    return outcomes


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under no difference each discordant seed is a fair
    coin, so the smaller count is binomial(only_a + only_b, 1/2)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a} and {only_b}")
    trials = only_a + only_b
    tail = sum(math.comb(trials, k) for k in range(min(only_a, only_b) + 1)) / 2**trials
    return min(1.0, 2 * tail)


def paired_difference_interval(
    both: int, only_a: int, only_b: int, neither: int, z: float = 1.959964
) -> tuple[float, float]:
    """Interval of p_A - p_B from a paired 2x2 table (Newcombe 1998, method 10).

    Each margin's Wilson interval gives the distances below and above its rate; they are added
    in quadrature, less twice the product weighted by the correlation of the pairs (with
    Newcombe's continuity correction), so that positively correlated outcomes, such as two
    policies on the same layouts, narrow the interval as they should.
    """
    counts = (both, only_a, only_b, neither)
    if min(counts) < 0 or sum(counts) == 0:
        raise ValueError(f"need counts >= 0 and at least one pair, got {counts}")
    n = sum(counts)
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n, z)
    low_b, high_b = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    association = both * neither - only_a * only_b
    if association > n / 2:
        association -= n / 2
    elif association > 0:
        association = 0
    phi = association / math.sqrt(margins) if margins else 0.0

    def spread(below: float, above: float) -> float:
        return math.sqrt(max(0.0, below**2 - 2 * phi * below * above + above**2))

    difference = p_a - p_b
    return (
        max(-1.0, difference - spread(p_a - low_a, high_b - p_b)),
        min(1.0, difference + spread(p_b - low_b, high_a - p_a)),
    )


def compare(
    a_dirs: list[Path], b_dirs: list[Path], task: str, seeds: range | None = None
) -> PairedComparison:
    """Policy A's harness out_dirs against policy B's on one task (on `seeds` only, if given)."""
    a, b = load_outcomes(a_dirs, task), load_outcomes(b_dirs, task)
    if seeds is not None:
        a = {seed: success for seed, success in a.items() if seed in seeds}
    return compare_outcomes(a, b, task)


def compare_outcomes(a: dict[int, bool], b: dict[int, bool], task: str) -> PairedComparison:
    """seed -> success of A against B, on the seeds both have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no {task} seed was evaluated under both A and B")
    both = sum(a[s] and b[s] for s in seeds)
    only_a = sum(a[s] and not b[s] for s in seeds)
    only_b = sum(b[s] and not a[s] for s in seeds)
    neither = len(seeds) - both - only_a - only_b
    return PairedComparison(
        task=task,
        seeds=len(seeds),
        successes_a=both + only_a,
        successes_b=both + only_b,
        only_a=only_a,
        only_b=only_b,
        p_value=mcnemar_exact(only_a, only_b),
        difference=(only_a - only_b) / len(seeds),
        difference_ci95=paired_difference_interval(both, only_a, only_b, neither),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--a", type=Path, nargs="+", required=True, help="policy A's out_dirs")
    parser.add_argument("--b", type=Path, nargs="+", required=True, help="policy B's out_dirs")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="compare only these seeds (inclusive), e.g. those run after a decision",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    seeds = range(args.seeds[0], args.seeds[1] + 1) if args.seeds else None
    try:
        result = compare(args.a, args.b, args.task, seeds)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    print(json.dumps(asdict(result)) if args.json else result.summary())


if __name__ == "__main__":
    main()
