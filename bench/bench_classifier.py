"""Classifier cost in-process: single-row inference (pipeline vs FastPredictor) and training time.

Run: python bench/bench_classifier.py [--reps 2000] [--train-runs 3] [--cases data/reference_cases.csv]
Targets: FastPredictor single-row median under 2 ms; training under 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scoring.classifier import (  # noqa: E402
    FastPredictor,
    features_frame,
    load_cases,
    profile_features,
    train_classifier,
)
from scoring.profile import CountryProfile, Stage  # noqa: E402

TRAINING_TARGET_S = 10.0
SINGLE_ROW_TARGET_MS = 2.0


def median_us(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median and 95th percentile of one call, in microseconds, after a short warm-up."""
    for _ in range(min(50, reps)):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1e3, times[int(0.95 * (len(times) - 1))] / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=ROOT / "data" / "reference_cases.csv")
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--train-runs", type=int, default=3)
    args = parser.parse_args()

    cases = load_cases(args.cases)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {len(cases)} cases")

    train_times, model = [], None
    for _ in range(args.train_runs):
        t0 = time.perf_counter()
        model = train_classifier(cases)
        train_times.append(time.perf_counter() - t0)
    assert model is not None
    train_median = statistics.median(train_times)
    print(
        f"training (CV of every candidate + baselines + final fit): median {train_median:.2f} s, "
        f"max {max(train_times):.2f} s over {args.train_runs} runs "
        f"[target < {TRAINING_TARGET_S:.0f} s: {'ok' if max(train_times) < TRAINING_TARGET_S else 'MISSED'}]"
    )
    print(f"chosen: {model.metrics['chosen']['label']}")

    profile = CountryProfile(
        innovation_stage=Stage.DEVELOPING, rd=1 / 6, public_investment_will=5 / 6, manufacturing_base=0.5
    )
    x = profile_features(profile)
    frame = features_frame(x)
    pipeline = model.pipeline
    fast = FastPredictor(pipeline)
    assert np.max(np.abs(fast.predict_proba(x) - pipeline.predict_proba(frame))) < 1e-9

    rows = [
        ("pipeline.predict_proba(prebuilt 1-row DataFrame)", lambda: pipeline.predict_proba(frame)),
        ("pipeline.predict_proba(features_frame(x))", lambda: pipeline.predict_proba(features_frame(x))),
        ("FastPredictor.predict_proba(x)", lambda: fast.predict_proba(x)),
        ("FastPredictor.explain(profile) [features+proba+contributions]", lambda: fast.explain(profile)),
    ]
    print(f"single-row inference, {args.reps} reps each (median / p95):")
    results = {}
    for name, fn in rows:
        med, p95 = median_us(fn, args.reps)
        results[name] = med
        print(f"  {name:<64} {med:9.1f} us / {p95:9.1f} us")
    pipe_med = results[rows[0][0]]
    fast_med = results[rows[2][0]]
    verdict = "ok" if fast_med / 1e3 < SINGLE_ROW_TARGET_MS else "MISSED"
    print(
        f"FastPredictor is {pipe_med / fast_med:.0f}x faster than the pipeline on one row "
        f"[target < {SINGLE_ROW_TARGET_MS:.0f} ms: {verdict}]"
    )

    batch = np.repeat(x[None, :], 10_000, axis=0)
    med_fast, _ = median_us(lambda: fast.predict_proba(batch), 20)
    med_pipe, _ = median_us(lambda: pipeline.predict_proba(features_frame(batch)), 20)
    print(
        f"10,000-row batch: FastPredictor {med_fast / 1e3:.2f} ms ({med_fast / 1e4:.3f} us/row), "
        f"pipeline {med_pipe / 1e3:.2f} ms ({med_pipe / 1e4:.3f} us/row)"
    )


if __name__ == "__main__":
    main()
