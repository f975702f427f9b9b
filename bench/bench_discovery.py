"""Target discovery: rank every reference country for one model, server-side (in-process).

Prepares a temp SQLite database with the shipped snapshot, then times `discovery.ranking` (what
`GET /v1/cluster-models/{id}/countries` runs) for each model. Target: median under 50 ms.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from sqlalchemy.orm import sessionmaker  # noqa: E402

from app.cli import migrate  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.services import discovery, reference  # noqa: E402

REPS = 200


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(url)
        sessions = sessionmaker(bind=make_engine(url))
        with sessions() as session, session.begin():
            reference.load_snapshot(session, path=PROJECT_ROOT / "data" / reference.SNAPSHOT_FILE)
        with sessions() as session:
            start = time.perf_counter()
            discovery.ranking(session, model_id="hospital")  # derives the reference table: once a process
            print(f"first call (derives 218 profiles): {(time.perf_counter() - start) * 1000:.1f} ms")
            for model in ("production", "hospital", "research", "composite"):
                times = []
                for _ in range(REPS):
                    start = time.perf_counter()
                    result = discovery.ranking(session, model_id=model)
                    times.append(time.perf_counter() - start)
                median = statistics.median(times) * 1000
                verdict = "within" if median < 50 else "MISSED"
                print(
                    f"{model:<10} {result['total']} countries ranked: median {median:.2f} ms, "
                    f"p95 {sorted(times)[int(0.95 * REPS)] * 1000:.2f} ms (target < 50 ms: {verdict})"
                )


if __name__ == "__main__":
    main()
