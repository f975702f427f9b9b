"""What robustness costs a match: median time of the rule engine alone vs the engine plus robustness.

In-process, no database: `scoring.engine.evaluate` is what every match does; `scoring.robustness.robustness`
(1000 Dirichlet samples) is what it adds. Target: robustness adds under 5 ms at the median.

    python bench/bench_robustness.py [--repeat 2000] [--samples 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.criteria import DEFAULT_WEIGHTS
from scoring.engine import encode, evaluate
from scoring.profile import CountryProfile, Stage
from scoring.robustness import DEFAULT_SAMPLES, analyse, counterfactual, leave_one_out, robustness

TARGET_MS = 5.0
# A Kazakhstan-like chaser with every input known: the most work a match can ask of the engine.
PROFILE = CountryProfile(
    innovation_stage=Stage.CHASER,
    rd=0.5,
    public_investment_will=0.5,
    healthcare_capacity=0.83,
    research_capacity=0.37,
    manufacturing_base=0.79,
    private_sector_strength=0.56,
)


def median_ms(run: Callable[[], object], repeat: int) -> float:
    for _ in range(min(50, repeat)):  # warm caches and numpy's dispatch before timing
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    args = parser.parse_args()

    def engine_only() -> object:
        return evaluate(PROFILE, DEFAULT_WEIGHTS)

    def engine_and_robustness() -> object:
        evaluate(PROFILE, DEFAULT_WEIGHTS)
        return robustness(PROFILE, DEFAULT_WEIGHTS, samples=args.samples)

    def every_explanation() -> object:
        engine_and_robustness()
        leave_one_out(PROFILE, DEFAULT_WEIGHTS)
        return counterfactual(PROFILE, DEFAULT_WEIGHTS)

    row = encode(PROFILE)
    rng = np.random.default_rng(1)
    many = np.column_stack([rng.integers(0, 3, 1000), rng.random((1000, len(row) - 1))])

    def one_pass() -> object:  # what a match runs: scores, robustness, leave-one-out, counterfactual
        return analyse(row, DEFAULT_WEIGHTS, samples=args.samples)

    def thousand_in_one_pass() -> object:  # what a 1,000-item batch runs
        return analyse(many, DEFAULT_WEIGHTS, samples=args.samples)

    alone = median_ms(engine_only, args.repeat)
    both = median_ms(engine_and_robustness, args.repeat)
    full = median_ms(every_explanation, args.repeat)
    added = both - alone
    print(f"repetitions: {args.repeat}, robustness samples: {args.samples}")
    print(f"evaluate alone:             median {alone:.3f} ms")
    print(f"evaluate + robustness:      median {both:.3f} ms")
    verdict = "within" if added < TARGET_MS else "OVER"
    print(f"robustness adds:            {added:.3f} ms (target < {TARGET_MS:.0f} ms: {verdict})")
    # For context: a match response also carries leave-one-out and the counterfactual.
    print(f"+ leave-one-out + counterfactual: median {full:.3f} ms (three separate passes)")
    print(f"one analysis pass, all of it:     median {median_ms(one_pass, args.repeat):.3f} ms")
    # A scoring round (app/services/rounds.py) analyses the single matches of one event-loop turn
    # together: the cost per match of a round of n.
    for n in (1, 4, 8):
        round_ms = median_ms(lambda n=n: analyse(many[:n], DEFAULT_WEIGHTS, samples=args.samples), 500)
        print(
            f"a round of {n} profiles:            median {round_ms:.3f} ms, {round_ms / n:.3f} ms a profile"
        )
    print(f"1,000 profiles in one pass:       median {median_ms(thousand_in_one_pass, 20):.1f} ms")
    return 0 if added < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
